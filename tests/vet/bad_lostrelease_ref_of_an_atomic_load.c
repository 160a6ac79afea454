// expect: lostrelease@13 lostrelease@15
/* A context loaded atomically is borrowed, not NULL (the load's last operand
 * is its memory order, 0 for relaxed): a reference taken on it is owed. */
#include <cctx.h>

int work(cctx_t *ctx);

static cctx_t *slot;

int f(void)
{
    cctx_t *c = __atomic_load_n(&slot, __ATOMIC_RELAXED);
    cctx_ref(c);
    work(c);
    return 0;
}
