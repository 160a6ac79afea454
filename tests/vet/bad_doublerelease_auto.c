// expect: doublerelease@11
/* A manual release of a CCTX_AUTO context: the cleanup releases it again. */
#include <cctx.h>

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    CCTX_AUTO cctx_t *ctx = cctx_with_cancel(parent, NULL);
    int err = work(ctx);
    cctx_release(ctx);
    return err;
}
