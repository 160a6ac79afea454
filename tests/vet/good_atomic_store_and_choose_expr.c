// expect: none
/* A context published with an atomic store is kept elsewhere (as with a
 * plain store to a global), and a release in the arm __builtin_choose_expr
 * picks is a release: an expression of several operands is no wrapper of its
 * last one. */
#include <cctx.h>
#include <stdatomic.h>

int work(cctx_t *ctx);

static _Atomic(cctx_t *) current;
static cctx_t *plain;

void publish(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return;
    atomic_store(&current, c);
}

void publish_builtin(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return;
    __atomic_store_n(&plain, c, __ATOMIC_RELEASE);
}

int chosen(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    work(c);
    __builtin_choose_expr(1, cctx_release(c), (void)0);
    return 0;
}
