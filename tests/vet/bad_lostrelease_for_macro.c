// expect: lostrelease@17 lostrelease@23 lostrelease@29 lostrelease@35 lostrelease@42 lostrelease@47
/* A for loop written through a macro (sys/queue.h's TAILQ_FOREACH, or a
 * project's own FOR_EACH) still exits through its condition: the leak after
 * the loop is found. */
#include <cctx.h>
#include <sys/queue.h>
int work(cctx_t *c, int i);

struct item {
    TAILQ_ENTRY(item) link;
    int v;
};
TAILQ_HEAD(list, item);

int tailq(cctx_t *parent, struct list *l)
{
    cctx_t *c = cctx_with_timeout(parent, 1000, NULL);
    if (!c)
        return -1;
    struct item *it;
    TAILQ_FOREACH(it, l, link)
    work(c, it->v);
    return 0; /* c is never released */
}

#define FOR_EACH(i, n) for ((i) = 0; (i) < (n); (i)++)
int for_each(cctx_t *parent, int n)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int i;
    FOR_EACH(i, n)
    work(c, i);
    return 0; /* c is never released */
}

/* A header with the condition only. */
#define UNTIL_DONE(c) for (; cctx_err(c) == 0;)
int until_done(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    UNTIL_DONE(c)
    work(c, 0);
    return 0; /* c is never released */
}
