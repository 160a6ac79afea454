// expect: none
/* `x = y` between two tracked contexts overwrites x: it is no use of x's
 * old, released context. */
#include <cctx.h>
static int key;
int work(cctx_t *c);

/* Walking down a chain of derived contexts, as bench/bench.c does. */
cctx_t *chain(cctx_t *root, int depth)
{
    cctx_t *ctx = cctx_ref(root);
    for (int i = 0; i < depth; i++) {
        cctx_t *child = cctx_with_value(ctx, &key, NULL, NULL);
        cctx_release(ctx); /* the child holds it */
        ctx = child;
    }
    return ctx;
}
