// expect: lostrelease@11 lostrelease@12
/* The value of `a, b` is b's: a derivation there, assigned, is a reference
 * to release. */
#include <cctx.h>

int work(cctx_t *ctx);

int leaked(cctx_t *parent)
{
    cctx_t *c;
    c = (work(parent), cctx_with_cancel(parent, NULL));
    return work(c);
}

int released(cctx_t *parent)
{
    cctx_t *c = (work(parent), cctx_with_cancel(parent, NULL));
    int rc = work(c);
    cctx_release(c);
    return rc;
}
