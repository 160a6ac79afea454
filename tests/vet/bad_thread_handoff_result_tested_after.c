// expect: lostrelease@14 lostrelease@19 doublerelease@32 doublerelease@47
/* The result of pthread_create kept and tested by the next statement: the
 * failure branch still owes what the thread did not take, and the success
 * branch owes nothing more. A test that is not the next statement is not
 * linked to the hand-over. */
#include <cctx.h>
#include <pthread.h>

void *worker(void *arg);
int work(cctx_t *ctx);

int failure_leaks(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, cctx_ref(c));
    if (rc)
        return -1; /* the reference the thread never took, and c's own */
    cctx_release(c);
    return 0;
}

int success_released(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, c);
    if (rc == 0) {
        work(parent);
        cctx_release(c); /* the thread's reference */
        return 0;
    }
    cctx_release(c);
    return -1;
}

int tested_later(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, c);
    work(parent);
    if (rc)
        cctx_release(c);
    return rc;
}
