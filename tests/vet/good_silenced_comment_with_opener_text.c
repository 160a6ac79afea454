// expect: none
/* A block comment above a finding whose text holds the two characters that
 * open a comment (a glob, `/var/spool/` then `*.job`) still stands alone
 * above it: C comments do not nest, so it opens where it starts. */
#include <cctx.h>
#include <unistd.h>

int poll_dir(cctx_t *ctx)
{
    /* cctx-vet:ignore=blocking: a 1 ms tick between scans
     * of /var/spool/*.job; the loop checks ctx */
    usleep(1000);
    int n = 0; /* a comment after code, then one of its own */
    /* cctx-vet:ignore=blocking: the same tick, after code and
     * a comment on the line above: /tmp/*.lock */
    usleep(1000);
    /* cctx-vet:ignore=blocking */ /* and a second comment /x/*.y */
    usleep(1000);
    return n + cctx_err(ctx);
}
