// expect: none
/* Loops that release on every way out: continue, break, and for (;;)
 * whose only exits are breaks. */
#include <cctx.h>

int work(cctx_t *ctx, int i);

void each(cctx_t *parent, int n)
{
    for (int i = 0; i < n; i++) {
        cctx_t *ctx = cctx_with_cancel(parent, NULL);
        if (!ctx)
            continue;
        if (work(ctx, i) < 0) {
            cctx_release(ctx);
            continue;
        }
        if (work(ctx, i) > 0) {
            cctx_release(ctx);
            break;
        }
        cctx_release(ctx);
    }
}

int retry(cctx_t *parent)
{
    int rc;
    cctx_t *ctx = cctx_with_timeout(parent, CCTX_SEC(5), NULL);
    for (;;) {
        rc = work(ctx, 0);
        if (rc == 0)
            break;
        if (cctx_sleep(ctx, CCTX_MSEC(10)) != 0)
            break;
    }
    cctx_release(ctx);
    return rc;
}

void until(cctx_t *parent)
{
    int i = 0;
    do {
        cctx_t *ctx = cctx_with_cancel(parent, NULL);
        while (work(ctx, i) > 0)
            i++;
        cctx_release(ctx);
    } while (i < 10);
}

int pick(cctx_t *parent, int how)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    int rc = 0;
    switch (how) {
    case 0:
        rc = work(ctx, 0);
        break;
    case 1:
        rc = 1;
        /* fall through */
    default:
        rc += work(ctx, how);
        break;
    }
    cctx_release(ctx);
    return rc;
}
