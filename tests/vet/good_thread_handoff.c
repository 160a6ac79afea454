// expect: none
/* Handing a context to a thread: the thread owns one reference. Either a
 * cctx_ref for it, or the caller's own reference, handed over on success. */
#include <cctx.h>
#include <cctx/group.h>
#include <pthread.h>

static void *worker(void *arg)
{
    cctx_t *ctx = arg; /* this thread owns one reference */
    cctx_sleep(ctx, CCTX_MSEC(1));
    cctx_release(ctx);
    return NULL;
}

int start_ref(cctx_t *parent, pthread_t *t)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    int err = pthread_create(t, NULL, worker, cctx_ref(ctx));
    cctx_release(ctx);
    return err;
}

int start_move(cctx_t *parent, pthread_t *t)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    if (pthread_create(t, NULL, worker, ctx) != 0) {
        cctx_release(ctx); /* the thread never started: still ours */
        return -1;
    }
    return 0;
}

static int task(cctx_t *ctx, void *arg)
{
    (void)arg;
    return cctx_err(ctx);
}

int group(cctx_t *parent)
{
    cctx_group_t *g = cctx_group_new(parent);
    if (!g)
        return -1;
    cctx_group_go(g, task, NULL);
    int err = cctx_group_wait(g);
    cctx_group_free(g);
    return err;
}
