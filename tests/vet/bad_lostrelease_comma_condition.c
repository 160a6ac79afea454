// expect: lostrelease@12 lostrelease@13 unchecked@19
/* A null test after a comma keeps its meaning on the other branch: the
 * context made is owed there, and a derivation as the comma's left operand
 * is dropped. */
#include <cctx.h>

int work(cctx_t *ctx);

int a(cctx_t *parent)
{
    cctx_t *ctx;
    if (ctx = cctx_with_cancel(parent, NULL), ctx != NULL)
        return work(ctx);
    return -1;
}

int b(cctx_t *parent)
{
    if (cctx_with_cancel(parent, NULL), work(parent))
        return -1;
    return 0;
}
