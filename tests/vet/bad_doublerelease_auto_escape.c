// expect: doublerelease@14 doublerelease@24 doublerelease@33
/* A CCTX_AUTO context that leaves the function without a reference of its
 * own: its cleanup releases it anyway, so the caller gets a released
 * context. */
#include <cctx.h>
int work(cctx_t *c);

cctx_t *returned(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    work(c);
    return c;
}

int out_parameter(cctx_t *parent, cctx_t **out)
{
    CCTX_AUTO cctx_t *c = cctx_with_timeout(parent, 1000, NULL);
    if (!c)
        return -1;
    if (work(c) < 0)
        return -1;
    *out = c;
    return 0;
}

/* A pointer by another name is still a pointer the caller gets. */
typedef cctx_t *ctx_handle;
ctx_handle returned_by_a_typedef(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    return c;
}
