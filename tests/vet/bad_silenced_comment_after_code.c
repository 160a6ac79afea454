// expect: blocking@13 blocking@15
/* A comment whose opener follows code on its line speaks for that line
 * only, even when a later line of it holds the text that opens a comment
 * (`/etc/` then `*.conf`); a directive in an earlier comment does not reach
 * past the code that follows it. */
#include <cctx.h>
#include <unistd.h>

int f(cctx_t *ctx)
{
    int n = 0; /* cctx-vet:ignore=blocking: for this line only,
                  not the call below: /etc/*.conf */
    usleep(1000);
    /* cctx-vet:ignore=blocking */ n++; /* code between: /a/*.b */
    usleep(1000);
    return n + cctx_err(ctx);
}
