// expect: useafterrelease@13 useafterrelease@20
/* Reading a context after the last reference was dropped. */
#include <cctx.h>

int f(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    cctx_ref(ctx);
    cctx_release(ctx);
    cctx_release(ctx);
    return cctx_err(ctx); /* released twice, owned once plus one ref: gone */
}

int g(cctx_t *ctx)
{
    /* A parameter this function takes over: released, then read. */
    cctx_release(ctx);
    return cctx_err(ctx);
}
