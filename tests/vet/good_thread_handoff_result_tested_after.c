// expect: none
/* The result of pthread_create kept in a variable that the next statement
 * tests: the hand-over happens on that test's success branch only, so the
 * release on its failure branch is the only one. */
#include <cctx.h>
#include <cctx/group.h>
#include <errno.h>
#include <pthread.h>

static void *worker(void *arg)
{
    cctx_t *ctx = arg; /* this thread owns one reference */
    cctx_sleep(ctx, CCTX_MSEC(1));
    cctx_release(ctx);
    return NULL;
}

int ref_handed(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, cctx_ref(c));
    if (rc)
        cctx_release(c); /* the reference the thread never took */
    cctx_release(c);
    return rc;
}

int assigned_then_tested(cctx_t *parent, pthread_t *t)
{
    int rc;
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    rc = pthread_create(t, NULL, worker, c);
    if (rc != 0) {
        cctx_release(c);
        errno = rc;
        return -1;
    }
    return 0;
}

int success_tested(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, c);
    if (rc == 0) {
        return 0;
    } else {
        cctx_release(c);
        return -1;
    }
}

int negated(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, c);
    if (!rc)
        return 0;
    cctx_release(c);
    return -1;
}

int error_code(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int rc = pthread_create(t, NULL, worker, c);
    if (rc == EAGAIN) {
        cctx_release(c);
        return -1;
    }
    return 0;
}
