// expect: none
/* A loop that only a return leaves, its header written by a macro without a
 * condition: what follows it is unreachable. */
#include <cctx.h>
int work(cctx_t *c, int i);

#define COUNT_FOREVER(i) for ((i) = 0;; (i)++)

int forever(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int i;
    COUNT_FOREVER(i)
    {
        if (work(c, i) < 0) {
            cctx_release(c);
            return i;
        }
    }
}

#define SKIP_FIRST(p) for (; (p); (p) = (p)->next)
struct node {
    struct node *next;
};
int walk(cctx_t *parent, struct node *n)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    SKIP_FIRST(n)
    work(c, 0);
    cctx_release(c);
    return 0;
}
