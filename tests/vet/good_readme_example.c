// expect: none
/* The README's example: a worker thread handed a cctx_ref'd context. */
#include <cctx.h>
#include <pthread.h>
#include <stdio.h>

static void *worker(void *arg)
{
    cctx_t *ctx = arg;                             /* this thread owns one reference */
    while (cctx_sleep(ctx, CCTX_MSEC(30)) == 0)    /* work in 30 ms steps until ctx ends */
        puts("worker: tick");
    cctx_cause_t why;
    cctx_cause(ctx, &why);
    printf("worker: stopping: %s (set at %s:%d)\n", why.msg, why.file, why.line);
    cctx_release(ctx);
    return NULL;
}

int main(void)
{
    CCTX_AUTO cctx_t *request = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), NULL);
    CCTX_AUTO cctx_t *step = cctx_with_timeout(request, CCTX_SEC(10), NULL);
    pthread_t t;
    pthread_create(&t, NULL, worker, cctx_ref(step));  /* ref before handing over */
    pthread_join(t, NULL);
    printf("main: step ended with %s\n", cctx_err(step) == ETIMEDOUT ? "ETIMEDOUT" : "?");
}
