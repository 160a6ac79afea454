// expect: none
/* A CCTX_AUTO context returned from a function that returns no pointer (a
 * bool): the caller gets a value made of it, not the context, so its
 * cleanup is its only release. */
#include <cctx.h>
#include <stdbool.h>

bool made(cctx_t *p)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    return c;
}

bool made_or_parent(cctx_t *p)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    return c ?: p;
}

bool made_if_asked(cctx_t *p, int n)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    return n ? c : NULL;
}
