// expect: unchecked@11 unchecked@13 unchecked@14 unchecked@15
/* The left operand of a comma and the increment of a `for` are evaluated
 * for their effects only: a derivation there is dropped. */
#include <cctx.h>

int work(cctx_t *ctx);

void f(cctx_t *parent, int k)
{
    int i = 0;
    for (; i < k; cctx_with_cancel(parent, NULL))
        i++;
    i++, cctx_with_cancel(parent, NULL);
    (work(parent), cctx_with_cancel(parent, NULL));
    for (i = 0; i < k; cctx_wait(parent, 0), i++)
        ;
    /* No finding: cast to (void), or released. */
    (void)(i++, cctx_with_cancel(parent, NULL));
    for (cctx_t *c = cctx_with_cancel(parent, NULL); c; cctx_release(c), c = NULL)
        work(c);
}
