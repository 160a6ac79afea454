// expect: none
/* A hand-over retried while it fails with one error: `== EAGAIN` (a
 * non-zero constant) is a failed hand-over where it holds, so each try
 * hands the context over once, on the branch that leaves the loop. The
 * release after the loop tests rc apart from the call, which is not
 * modelled (docs/vet.md), hence its comment. */
#include <cctx.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>

void *worker(void *);

int start(cctx_t *p, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (!c)
        return -1;
    int rc;
    while ((rc = pthread_create(t, NULL, worker, c)) == EAGAIN)
        sched_yield();
    if (rc != 0) {
        cctx_release(c); // cctx-vet:ignore=doublerelease (rc is tested apart from the call)
        return rc;
    }
    return 0;
}

int start_constant_first(cctx_t *p, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (!c)
        return -1;
    int rc;
    while (EAGAIN == (rc = pthread_create(t, NULL, worker, c)))
        sched_yield();
    if (rc != 0)
        cctx_release(c); // cctx-vet:ignore=doublerelease (rc is tested apart from the call)
    return rc;
}
