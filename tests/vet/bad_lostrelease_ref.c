// expect: lostrelease@11 lostrelease@14
/* A cctx_ref whose reference is never dropped. */
#include <cctx.h>

void keep(cctx_t *ctx);

void f(cctx_t *parent)
{
    cctx_t *ctx = cctx_without_cancel(parent);
    keep(ctx);
    cctx_t *extra = cctx_ref(ctx); /* never released */
    keep(extra);
    cctx_release(ctx);
}
