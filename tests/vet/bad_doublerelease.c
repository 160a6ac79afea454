// expect: doublerelease@13
/* Released on the error branch, then again after it. */
#include <cctx.h>

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_timeout(parent, CCTX_MSEC(100), NULL);
    int err = work(ctx);
    if (err)
        cctx_release(ctx);
    cctx_release(ctx);
    return err;
}
