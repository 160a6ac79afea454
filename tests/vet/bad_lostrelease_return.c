// expect: lostrelease@9 lostrelease@13
/* An early return between the derivation and its release leaks the context. */
#include <cctx.h>

int work(int);

int handle(cctx_t *parent, int job)
{
    cctx_t *ctx = cctx_with_timeout(parent, CCTX_SEC(1), NULL);
    if (!ctx)
        return -1;
    if (work(job) < 0)
        return -1; /* leaks ctx */
    cctx_release(ctx);
    return 0;
}
