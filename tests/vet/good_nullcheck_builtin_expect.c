// expect: none
/* A null test or a pthread_create test inside likely()/unlikely(), which
 * wrap it in __builtin_expect (and often `!!`), is still the test: the value
 * of __builtin_expect is its first argument's. */
#include <cctx.h>
#include <pthread.h>
#include <stddef.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define expect_false(x) __builtin_expect((x), 0)

int work(cctx_t *ctx);

int not_unlikely(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (unlikely(!c))
        return -1;
    work(c);
    cctx_release(c);
    return 0;
}

int equal_builtin(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (__builtin_expect(c == NULL, 0))
        return -1;
    work(c);
    cctx_release(c);
    return 0;
}

int not_equal_likely(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (likely(c != NULL)) {
        work(c);
        cctx_release(c);
        return 0;
    }
    return -1;
}

int bare_likely(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!likely(c))
        return -1;
    cctx_release(c);
    return 0;
}

int with_probability(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (__builtin_expect_with_probability(!c, 0, 0.9))
        return -1;
    cctx_release(c);
    return 0;
}

int without_bangs(cctx_t *parent)
{
    cctx_t *c;
    if (expect_false((c = cctx_with_cancel(parent, NULL)) == NULL))
        return -1;
    cctx_release(c);
    return 0;
}

int not_not(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!!c) {
        cctx_release(c);
        return 0;
    }
    return -1;
}

int or_unlikely(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (unlikely(!c || work(c) < 0)) {
        if (c)
            cctx_release(c);
        return -1;
    }
    cctx_release(c);
    return 0;
}

static void *worker(void *arg)
{
    cctx_release(arg);
    return NULL;
}

/* The thread takes c only when pthread_create succeeds. */
int handover_unlikely(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (unlikely(pthread_create(t, NULL, worker, c) != 0)) {
        cctx_release(c);
        return -1;
    }
    return 0;
}

int handover_likely(cctx_t *parent, pthread_t *t)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (likely(pthread_create(t, NULL, worker, c) == 0))
        return 0;
    cctx_release(c);
    return -1;
}
