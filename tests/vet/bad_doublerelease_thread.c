// expect: doublerelease@18
/* The forgotten cctx_ref: the thread gets the only reference and releases
 * it, so the caller's release is a second one. */
#include <cctx.h>
#include <pthread.h>

static void *worker(void *arg)
{
    cctx_release(arg);
    return NULL;
}

void start(cctx_t *parent, pthread_t *t)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (pthread_create(t, NULL, worker, ctx) != 0)
        cctx_release(ctx); /* fine: the thread never started */
    cctx_release(ctx);
}
