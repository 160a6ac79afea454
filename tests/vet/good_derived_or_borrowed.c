// expect: none
/* A context either derived or borrowed from the parameter, and released
 * where it is not the parameter: a derivation returns a new context, so on
 * a path that made one, `c != parent` holds. */
#include <cctx.h>

int work(cctx_t *ctx);

int a(cctx_t *parent, long timeout)
{
    cctx_t *c = parent;
    if (timeout > 0)
        c = cctx_with_timeout(parent, timeout, NULL);
    if (!c)
        return -1;
    int rc = work(c);
    if (c != parent)
        cctx_release(c);
    return rc;
}

int b(cctx_t *parent, int detach)
{
    cctx_t *c = detach ? cctx_without_cancel(parent) : parent;
    if (c == NULL)
        return -1;
    int rc = work(c);
    if (c == parent)
        return rc;
    cctx_release(c);
    return rc;
}
