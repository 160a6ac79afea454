// expect: background@12 background@20
/* A root made where the context parameter is not NULL (or not known to be)
 * should have been derived from it. */
#include <cctx.h>
#include <stddef.h>

int work(cctx_t *ctx);

int reversed(cctx_t *ctx)
{
    if (ctx != NULL)
        return work(cctx_background());
    return work(ctx);
}

int after_the_default(cctx_t *ctx)
{
    if (ctx == NULL)
        ctx = cctx_background();
    return work(cctx_todo());
}
