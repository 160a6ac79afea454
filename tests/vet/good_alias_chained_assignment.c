// expect: none
/* a = b = derivation: b is assigned first, then a aliases it, and neither
 * name is followed, as for a = b. */
#include <cctx.h>

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    cctx_t *a, *b;
    a = b = cctx_with_cancel(parent, NULL);
    work(b);
    cctx_release(a);
    return 0;
}
