// expect: none
// args: --enable=field
/* A struct handed to a thread or an after-function may carry the context. */
#include <cctx.h>
#include <pthread.h>

struct task {
    cctx_t *ctx;
    int n;
};

struct on_end {
    cctx_t *ctx;
};

static void *run(void *arg)
{
    struct task *t = arg;
    cctx_release(t->ctx);
    return NULL;
}

static void ended(void *arg)
{
    (void)arg;
}

int start(cctx_t *parent, struct task *t, struct on_end *e, cctx_after_t *reg)
{
    t->ctx = cctx_with_cancel(parent, NULL);
    e->ctx = parent;
    cctx_after_func(parent, reg, ended, e);
    pthread_t th;
    return pthread_create(&th, NULL, run, t);
}
