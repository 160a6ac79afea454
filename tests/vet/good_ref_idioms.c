// expect: none
/* cctx_ref counted on the path: ref, release, release is valid. */
#include <cctx.h>

void keep(cctx_t *ctx);
static cctx_t *saved;

void twice(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    cctx_ref(ctx);
    cctx_release(ctx);
    keep(ctx); /* still one reference */
    cctx_release(ctx);
}

void save(cctx_t *ctx)
{
    saved = cctx_ref(ctx); /* kept in a global: released elsewhere */
}

cctx_t *make(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_timeout(parent, CCTX_SEC(2), NULL);
    return ctx; /* the caller owns it */
}

void out_param(cctx_t *parent, cctx_t **out)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    *out = ctx; /* the out-parameter owns it */
}

void take(cctx_t *ctx)
{
    keep(ctx);
    cctx_release(ctx); /* this function was given the caller's reference */
}

void release_reads_it(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    /* The other arguments are read before the release happens. */
    cctx_release_at(ctx, cctx_name(ctx), cctx_err(ctx), "release_reads_it");
}
