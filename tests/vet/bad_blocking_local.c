// expect: blocking-local@13
// args: --enable=blocking-local
/* Opt-in: a blocking call while a local context is live. */
#include <cctx.h>
#include <unistd.h>

int main(void)
{
    CCTX_AUTO cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    if (!ctx)
        return 1;
    char c;
    return read(0, &c, 1) == 1 ? cctx_err(ctx) : 1;
}
