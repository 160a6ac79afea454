// expect: none
/* A CCTX_AUTO context handed to the caller with a reference of its own, or
 * given up by setting the variable to NULL. */
#include <cctx.h>
int work(cctx_t *c);
struct holder {
    cctx_t *ctx;
};

cctx_t *returned_with_ref(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    work(c);
    return cctx_ref(c);
}

cctx_t *ref_then_return(cctx_t *parent)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return NULL;
    cctx_ref(c);
    return c;
}

int out_parameter_given_up(cctx_t *parent, cctx_t **out)
{
    CCTX_AUTO cctx_t *c = cctx_with_timeout(parent, 1000, NULL);
    if (!c)
        return -1;
    *out = c;
    c = NULL; /* the caller owns it now */
    return 0;
}

/* A store elsewhere may be taken back before the scope ends: not followed. */
void published_while_in_scope(cctx_t *parent, struct holder *h)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
    h->ctx = c;
    work(c);
    h->ctx = NULL;
}
