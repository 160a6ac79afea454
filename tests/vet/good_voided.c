// expect: none
/* A (void) cast says an ignored result is meant. */
#include <cctx.h>

void f(cctx_t *ctx)
{
    (void)cctx_wait(ctx, CCTX_MSEC(5));
    (void)cctx_wait_any(&ctx, 1, CCTX_MSEC(5));
}
