// expect: none
/* A thread handed cctx_ref(c): when pthread_create fails, the reference it
 * would have dropped is the caller's to release, beside c's own. Both
 * releases are right, with CCTX_AUTO too. */
#include <cctx.h>
#include <pthread.h>

void *worker(void *arg);

int start(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (pthread_create(t, NULL, worker, cctx_ref(c)) != 0)
        cctx_release(c); /* the reference the thread would have dropped */
    cctx_release(c);
    return 0;
}

int start_auto(cctx_t *parent, pthread_t *t)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (pthread_create(t, NULL, worker, cctx_ref(c)) != 0) {
        cctx_release(c);
        return -1;
    }
    return 0;
}
