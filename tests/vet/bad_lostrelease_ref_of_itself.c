// expect: lostrelease@12 lostrelease@16 lostrelease@21 lostrelease@22
// says: the context c from cctx_with_cancel is not released on every path
/* `c = cctx_ref(c)` owes one reference more than c held: released once, the
 * other leaks from where the context was made (a local's derivation, or the
 * cctx_ref of a parameter). */
#include <cctx.h>

int work(cctx_t *c);

int local(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    c = cctx_ref(c);
    work(c);
    cctx_release(c);
    return 0;
}

int parameter(cctx_t *ctx)
{
    ctx = cctx_ref(ctx);
    return work(ctx);
}
