// expect: unchecked@18 unchecked@23 unchecked@31 unchecked@39
// says: the context made by cctx_with_timeout is passed straight to fetch and never released
// says: the context made by cctx_with_timeout is passed straight to cctx_with_cancel
/* A derivation passed straight to a call leaves its context no name to be
 * released by: as a dropped one, it is `unchecked`. So is one made as
 * another's parent, or given to cctx_ref, or to a call through a pointer.
 * A thread's argument (pthread_create, cctx_group_go) takes the reference
 * over, and cctx_release drops it: no finding there. */
#include <cctx.h>
#include <cctx/group.h>
#include <pthread.h>

int fetch(cctx_t *ctx, const char *url);
void *worker(void *arg);

int passed(cctx_t *ctx, const char *url)
{
    return fetch(cctx_with_timeout(ctx, CCTX_SEC(5), NULL), url);
}

int parent(cctx_t *ctx, const char *url)
{
    cctx_t *c = cctx_with_cancel(cctx_with_timeout(ctx, CCTX_SEC(5), NULL), NULL);
    int rc = fetch(c, url);
    cctx_release(c);
    return rc;
}

int referenced(cctx_t *ctx, const char *url)
{
    cctx_t *c = cctx_ref(cctx_without_cancel(ctx));
    int rc = fetch(c, url);
    cctx_release(c);
    return rc;
}

int through_pointer(cctx_t *ctx, int (*f)(cctx_t *, const char *))
{
    return f((cctx_t *)cctx_with_cancel(ctx, NULL), "x");
}

int handed_over(cctx_t *ctx, pthread_t *t, cctx_group_t *g)
{
    cctx_release(cctx_with_cancel(ctx, NULL));
    if (pthread_create(t, NULL, worker, cctx_with_cancel(ctx, NULL)) != 0)
        return -1;
    return cctx_group_go(g, NULL, cctx_with_cancel(ctx, NULL));
}
