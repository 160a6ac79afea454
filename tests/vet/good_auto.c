// expect: none
/* CCTX_AUTO releases at every scope exit: returns, block ends, break and
 * continue out of a loop body, and a NULL-ed variable is not released twice. */
#include <cctx.h>

int work(cctx_t *ctx, int i);

int f(cctx_t *parent, int n)
{
    CCTX_AUTO cctx_t *ctx = cctx_with_timeout(parent, CCTX_SEC(1), NULL);
    if (!ctx)
        return -1;
    for (int i = 0; i < n; i++) {
        CCTX_AUTO cctx_t *step = cctx_with_cancel(ctx, NULL);
        if (work(step, i) < 0)
            continue;
        if (work(step, -i) > 0)
            break;
        {
            CCTX_AUTO cctx_t *inner = cctx_with_value(step, &n, NULL, NULL);
            if (work(inner, 0))
                return 1;
        }
    }
    CCTX_AUTO cctx_t *early = cctx_without_cancel(ctx);
    cctx_release(early);
    early = NULL; /* released by hand: the cleanup sees NULL */
    return 0;
}

cctx_t *g(cctx_t *parent)
{
    CCTX_AUTO cctx_t *ctx = cctx_with_cancel(parent, NULL);
    work(ctx, 0);
    return cctx_ref(ctx); /* the caller's reference; CCTX_AUTO drops ours */
}
