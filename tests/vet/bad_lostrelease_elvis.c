// expect: lostrelease@12 lostrelease@14 lostrelease@19 lostrelease@23 unchecked@29
/* GNU's `a ?: b` with a derivation as a: where a is not NULL it is the
 * value, a new reference that must be released; where it is NULL, b is. */
#include <cctx.h>

int work(cctx_t *ctx);

/* The fallback borrows: the reference made on the other branch is never
 * released. */
int fallback_parent(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL) ?: parent;
    work(c);
    return 0;
}

int fallback_null(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL) ?: NULL;
    if (!c)
        return -1;
    work(c);
    return 0;
}

void dropped(cctx_t *parent)
{
    cctx_t *fallback = parent;
    cctx_with_cancel(parent, NULL) ?: fallback;
}

/* No finding: released, or NULL on the branch that returns. */
int released(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL) ?: NULL;
    if (!c)
        return -1;
    work(c);
    cctx_release(c);
    return 0;
}

void voided(cctx_t *parent)
{
    (void)(cctx_with_cancel(parent, NULL) ?: parent);
}
