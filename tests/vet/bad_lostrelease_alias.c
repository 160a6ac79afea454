// expect: lostrelease@6 lostrelease@9
/* `a = b` between two tracked contexts overwrites a's unreleased one. */
#include <cctx.h>
void overwrite(cctx_t *parent)
{
    cctx_t *a = cctx_with_cancel(parent, NULL);
    cctx_t *b = cctx_with_timeout(parent, 1000, NULL);
    cctx_sleep(a, 0);
    a = b;
    cctx_release(a);
}
