// expect: none
/* The C library's calls that never return, known by name where a system
 * header declares them: err() from <err.h>, exit, abort. */
#include <cctx.h>
#include <err.h>
#include <stdlib.h>

int work(cctx_t *ctx);

int main(void)
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    if (!c)
        err(1, "cctx_with_timeout");
    if (work(c) < 0)
        errx(2, "work failed");
    if (work(c) > 0)
        exit(3);
    if (work(c) > 1)
        abort();
    cctx_release(c);
    return 0;
}
