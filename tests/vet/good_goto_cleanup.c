// expect: none
/* The goto-cleanup idiom: every exit goes through the release. */
#include <cctx.h>
#include <stdlib.h>

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    int rc = -1;
    char *buf = NULL;
    cctx_t *ctx = cctx_with_timeout(parent, CCTX_SEC(1), NULL);
    if (ctx == NULL)
        goto out;
    buf = malloc(64);
    if (!buf)
        goto out_ctx;
    if (work(ctx) < 0)
        goto out_buf;
    rc = 0;
out_buf:
    free(buf);
out_ctx:
    cctx_release(ctx);
out:
    return rc;
}
