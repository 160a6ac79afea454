// expect: lostrelease@13 lostrelease@13 lostrelease@15 lostrelease@20 lostrelease@20 lostrelease@22 lostrelease@28 lostrelease@28 lostrelease@31
/* Leaks on one line are each reported: two definitions of one variable on
 * alternative paths written on one line (an if and its else, a conditional
 * expression), and two variables made by one macro call (one place). Each
 * return that leaks is one finding, whatever it leaks. */
#include <cctx.h>
int work(cctx_t *ctx);
#define MAKE_BOTH(x, y, p) x = cctx_with_cancel(p, NULL); y = cctx_with_cancel(p, NULL)

int either_branch(cctx_t *parent, int n)
{
    cctx_t *c;
    if (n) c = cctx_with_cancel(parent, NULL); else c = cctx_ref(parent);
    work(c);
    return 0;
}

int either_operand(cctx_t *parent, int n)
{
    cctx_t *c = n ? cctx_with_cancel(parent, NULL) : cctx_ref(parent);
    work(c);
    return 0;
}

int macro_of_two(cctx_t *parent)
{
    cctx_t *a, *b;
    MAKE_BOTH(a, b, parent);
    work(a);
    work(b);
    return 0;
}
// says: the context c from cctx_with_cancel is not released on every path
// says: the context c from cctx_ref is not released on every path
// says: the context b from cctx_with_cancel is not released on every path
