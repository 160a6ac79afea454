// expect: none
/* A derivation kept in a variable, then tested, or tested as it is kept: the
 * variable still holds the context to release. None of these is `unchecked`
 * (nor a leak: the branch that finds it NULL owes nothing). */
#include <cctx.h>

#define likely(e) __builtin_expect(!!(e), 1)

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (c == NULL)
        return -1;
    cctx_release(c);
    if ((c = cctx_with_cancel(parent, NULL)) == NULL)
        return -1;
    cctx_release(c);
    if (NULL == (c = cctx_with_timeout(parent, CCTX_SEC(1), NULL)))
        return -1;
    cctx_release(c);
    if (!(c = cctx_with_cancel(parent, NULL)))
        return -1;
    cctx_release(c);
    if ((c = cctx_with_cancel(parent, NULL)) != NULL) {
        work(c);
        cctx_release(c);
    }
    if (likely((c = cctx_with_cancel(parent, NULL)) != NULL))
        cctx_release(c);
    c = cctx_with_cancel(parent, NULL) ?: cctx_ref(parent);
    work(c);
    cctx_release(c);
    return 0;
}
