// expect: unchecked@9 unchecked@10
/* A dropped derivation can never be released; cctx_wait's result says
 * whether the context ended. */
#include <cctx.h>

void f(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    cctx_with_timeout(ctx, CCTX_SEC(1), NULL);
    cctx_wait(ctx, CCTX_MSEC(10));
    cctx_release(ctx);
}
