// expect: none
#include <cctx.h>
int work(cctx_t *c);

/* The caller's reference is taken right after the store: correct code. */
int store_then_ref(cctx_t *parent, cctx_t **out)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    work(c);
    *out = c;
    cctx_ref(c); /* for *out */
    return 0;
}

/* Returned on one path, released explicitly and cleared on another. */
cctx_t *take(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return c; /* NULL: nothing handed */
    cctx_t *r = c;
    c = NULL;
    return r;
}
