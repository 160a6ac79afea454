// expect: lostrelease@10 lostrelease@16
/* A `continue` skips the release: the next iteration overwrites the context. */
#include <cctx.h>

int work(cctx_t *ctx, int job);

void handle_all(cctx_t *parent, const int *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        cctx_t *ctx = cctx_with_cancel(parent, NULL);
        if (jobs[i] < 0)
            continue; /* leaks ctx */
        work(ctx, jobs[i]);
        cctx_release(ctx);
    }
}
