// expect: none
/* __builtin_choose_expr evaluates only the operand its constant picks: a
 * release in the other one is none, so the release after it is the only
 * one. */
#include <cctx.h>

#define OWN 0

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    work(c);
    __builtin_choose_expr(OWN, cctx_release(c), (void)0);
    cctx_release(c);
    return 0;
}
