// expect: lostrelease@13 lostrelease@17 lostrelease@24 lostrelease@28
/* A derivation is never its parent, but a cctx_ref of the parameter is the
 * parameter itself: released only where it is not, it leaks. */
#include <cctx.h>

int work(cctx_t *ctx);

int a(cctx_t *parent, long timeout)
{
    cctx_t *c = parent;
    int rc = 0;
    if (timeout > 0)
        c = cctx_with_timeout(parent, timeout, NULL);
    if (!c)
        return -1;
    if (c != parent)
        return work(c);
    cctx_release(c);
    return rc;
}

int b(cctx_t *parent)
{
    cctx_t *c = cctx_ref(parent);
    int rc = work(c);
    if (c != parent)
        cctx_release(c);
    return rc;
}
