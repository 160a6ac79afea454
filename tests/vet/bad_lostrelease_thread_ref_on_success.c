// expect: lostrelease@12 lostrelease@17 lostrelease@19
/* A thread handed cctx_ref(c) takes that reference, not c's own: the caller
 * still owes one once the thread started, and two when it did not start
 * (here the failure branch releases one, the other branch none). */
#include <cctx.h>
#include <pthread.h>

void *worker(void *arg);

int start(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (pthread_create(t, NULL, worker, cctx_ref(c)) != 0) {
        cctx_release(c);
        return -1;
    }
    return 0;
}
