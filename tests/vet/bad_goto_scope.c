// expect: lostrelease@16 lostrelease@31 lostrelease@39 doublerelease@48
/* A goto is followed out of scopes, forward and back: the reference a plain
 * variable owes is lost when a goto leaves its block, and CCTX_AUTO's
 * cleanup at the goto releases again what was released by hand. */
#include <cctx.h>
#include <errno.h>

int try_once(cctx_t *ctx);

/* The retry goes back without releasing: each turn's context is lost
 * (reported where the next one overwrites it). */
int retry(cctx_t *parent)
{
retry:
    {
        cctx_t *c = cctx_with_cancel(parent, NULL);
        if (!c)
            return -1;
        if (try_once(c) == EAGAIN)
            goto retry;
        cctx_release(c);
    }
    return 0;
}

/* Forward out of the block: c is still owed at the return. */
int forward(cctx_t *parent)
{
    int rc = 0;
    {
        cctx_t *c = cctx_with_cancel(parent, NULL);
        if (try_once(c) < 0) {
            rc = -1;
            goto out;
        }
        cctx_release(c);
    }
out:
    return rc;
}

/* Released by hand, then released again by the cleanup the goto runs. */
int twice(cctx_t *parent)
{
    {
        CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
        if (try_once(c) < 0) {
            cctx_release(c);
            goto out;
        }
    }
out:
    return 0;
}
