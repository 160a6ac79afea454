// expect: none
/* A failed derivation returns NULL: the error branch owes nothing. */
#include <cctx.h>

int work(cctx_t *ctx);

int a(cctx_t *parent)
{
    cctx_t *ctx;
    if ((ctx = cctx_with_cancel(parent, NULL)) == NULL)
        return -1;
    int rc = work(ctx);
    cctx_release(ctx);
    return rc;
}

int b(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (ctx) {
        int rc = work(ctx);
        cctx_release(ctx);
        return rc;
    }
    return -1;
}

int c(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (NULL == ctx)
        return -1;
    cctx_release(ctx);
    return 0;
}

int d(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx || work(ctx) < 0) {
        if (ctx)
            cctx_release(ctx);
        return -1;
    }
    cctx_release(ctx);
    return 0;
}
