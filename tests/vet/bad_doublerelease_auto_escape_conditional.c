// expect: doublerelease@15 doublerelease@23 doublerelease@31 doublerelease@38
// says: c is returned here but CCTX_AUTO releases it as the function returns
/* A CCTX_AUTO context returned or stored for the caller through `?:` (or
 * GNU's `a ?: b`): the arm that is the context hands the caller a reference
 * that the cleanup still drops, as `return c` does. */
#include <cctx.h>
int work(cctx_t *c);

cctx_t *returned(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    int ok = work(c) == 0;
    return ok ? c : NULL;
}

cctx_t *returned_in_the_other_arm(cctx_t *parent, int failed)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    return failed ? NULL : (c);
}

int out_parameter(cctx_t *parent, cctx_t **out)
{
    CCTX_AUTO cctx_t *c = cctx_with_timeout(parent, 1000, NULL);
    if (!c)
        return -1;
    *out = work(c) == 0 ? c : NULL;
    return 0;
}

cctx_t *elvis(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    return c ?: NULL;
}
