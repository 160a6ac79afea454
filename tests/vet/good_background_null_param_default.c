// expect: none
/* A function that gives a NULL context parameter a default root: where the
 * root is made the parameter is NULL, so there is nothing to derive from. */
#include <cctx.h>
#include <stddef.h>

int work(cctx_t *ctx);

int assigned(cctx_t *ctx)
{
    if (ctx == NULL)
        ctx = cctx_background();
    return work(ctx);
}

int conditional(cctx_t *ctx)
{
    return work(ctx ? ctx : cctx_todo());
}

int elvis(cctx_t *ctx)
{
    return work(ctx ?: cctx_background());
}

int early(cctx_t *ctx)
{
    if (!ctx)
        return work(cctx_background());
    return work(ctx);
}
