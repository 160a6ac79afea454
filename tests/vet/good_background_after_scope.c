// expect: none
// args: --enable=blocking-local
/* A context whose variable's scope has ended is no longer at hand: a fresh
 * root, or a blocking call, after its block or after the loop whose header
 * declared it is what the program wants. */
#include <cctx.h>
#include <cctx/group.h>
#include <unistd.h>

int work(cctx_t *ctx);

int after_a_block(cctx_group_t *g)
{
    {
        cctx_t *gc = cctx_group_ctx(g); /* borrowed */
        work(gc);
    }
    cctx_t *root = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    if (!root)
        return -1;
    int r = work(root);
    cctx_release(root);
    sleep(1);
    return r;
}

int after_a_loop(int n)
{
    for (CCTX_AUTO cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL); c && n > 0;
         n--)
        work(c);
    sleep(1);
    return work(cctx_background());
}

int after_a_loop_left_by_break(cctx_group_t *g, int n)
{
    for (cctx_t *gc = cctx_group_ctx(g); n > 0; n--)
        if (work(gc) < 0)
            break;
    return work(cctx_background());
}
