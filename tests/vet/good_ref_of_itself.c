// expect: none
/* `c = cctx_ref(c)` adds a reference to the one c holds: two are owed, one
 * handed to a thread (or released when the thread could not start), one
 * released at the end. It overwrites nothing. */
#include <cctx.h>
#include <pthread.h>

int work(cctx_t *c);
void *worker(void *);

int start(cctx_t *p, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (!c)
        return -1;
    c = cctx_ref(c); /* one for the thread, one for us */
    if (pthread_create(t, NULL, worker, c) != 0)
        cctx_release(c);
    work(c);
    cctx_release(c);
    return 0;
}

int borrowed(cctx_t *ctx)
{
    ctx = cctx_ref(ctx);
    int rc = work(ctx);
    cctx_release(ctx);
    return rc;
}
