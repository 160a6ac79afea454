// expect: none
/* The result of pthread_create tested with the zero on the left, or kept
 * on the way: the release on the failure branch is the only one. */
#include <cctx.h>
#include <errno.h>
#include <pthread.h>

static void *worker(void *arg)
{
    cctx_t *ctx = arg; /* this thread owns one reference */
    cctx_sleep(ctx, CCTX_MSEC(1));
    cctx_release(ctx);
    return NULL;
}

int result_kept(cctx_t *parent, pthread_t *t)
{
    int err;
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    if ((err = pthread_create(t, NULL, worker, ctx)) != 0) {
        cctx_release(ctx); /* the thread never started: still ours */
        errno = err;
        return -1;
    }
    return 0;
}

int zero_on_the_left(cctx_t *parent, pthread_t *t)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    if (0 != pthread_create(t, NULL, worker, ctx)) {
        cctx_release(ctx);
        return -1;
    }
    return 0;
}

int kept_and_tested_as_truth(cctx_t *parent, pthread_t *t)
{
    int err;
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    if ((err = pthread_create(t, NULL, worker, ctx))) {
        cctx_release(ctx);
        return err;
    }
    return 0;
}

int success_tested(cctx_t *parent, pthread_t *t)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    if (0 == pthread_create(t, NULL, worker, ctx))
        return 0;
    cctx_release(ctx);
    return -1;
}
