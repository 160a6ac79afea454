// expect: lostrelease@9 lostrelease@12
/* CCTX_AUTO drops one reference; the cctx_ref taken here is a second one. */
#include <cctx.h>

void borrow(cctx_t *ctx);

int f(cctx_t *parent)
{
    CCTX_AUTO cctx_t *ctx = cctx_with_cancel(parent, NULL);
    cctx_ref(ctx);
    borrow(ctx);
    return 0;
}
