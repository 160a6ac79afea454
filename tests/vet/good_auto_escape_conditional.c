// expect: none
/* A CCTX_AUTO context returned through `?:` with a reference of its own, and
 * a context without CCTX_AUTO returned so: the caller owns what it gets. */
#include <cctx.h>
int work(cctx_t *c);

cctx_t *returned_with_ref(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    return work(c) == 0 ? cctx_ref(c) : NULL;
}

cctx_t *not_auto(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    if (work(c) == 0)
        return c;
    cctx_release(c);
    return NULL;
}

int out_parameter_with_ref(cctx_t *parent, cctx_t **out)
{
    CCTX_AUTO cctx_t *c = cctx_with_timeout(parent, 1000, NULL);
    if (!c)
        return -1;
    *out = work(c) == 0 ? cctx_ref(c) : NULL;
    return 0;
}
