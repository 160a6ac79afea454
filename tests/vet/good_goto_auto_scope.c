// expect: none
// args: --enable=blocking-local
/* A goto out of a CCTX_AUTO variable's block runs its cleanup at the goto,
 * as in GCC and clang, backward or forward: each context below is released
 * once, by its cleanup, before the next one is made. */
#include <cctx.h>
#include <errno.h>
#include <unistd.h>

int try_once(cctx_t *ctx);

/* A retry loop written with a backward goto. */
int retry(cctx_t *parent)
{
retry:
    {
        CCTX_AUTO cctx_t *c = cctx_with_timeout(parent, CCTX_MSEC(100), NULL);
        if (!c)
            return -1;
        if (try_once(c) == EAGAIN)
            goto retry;
    }
    return 0;
}

/* Back to a label before the declaration, in the same block. */
int again(cctx_t *parent)
{
again:;
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (try_once(c) == EAGAIN)
        goto again;
    return 0;
}

/* Forward, out of a block to a later label in the loop's body: the next
 * turn's context is not an overwrite of one still owed. */
int forward(cctx_t *parent, int n)
{
    int failed = 0;
    for (int i = 0; i < n; i++) {
        {
            CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
            if (try_once(c) < 0)
                goto next;
            try_once(c);
        }
    next:
        failed++;
    }
    return failed;
}

/* Forward, out of a block to a later label: the sleep after it blocks while
 * no context is live, so blocking-local (enabled above) has nothing to say. */
int forward_out(void)
{
    {
        CCTX_AUTO cctx_t *d = cctx_with_cancel(cctx_background(), NULL);
        if (try_once(d) < 0)
            goto out;
        try_once(d);
    }
out:
    sleep(1);
    return 0;
}
