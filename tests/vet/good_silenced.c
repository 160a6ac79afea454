// expect: none
/* Findings silenced by a comment on their line or the line above. */
#include <cctx.h>
#include <unistd.h>

void poll_slowly(cctx_t *ctx)
{
    while (cctx_err(ctx) == 0)
        usleep(1000); // cctx-vet:ignore=blocking (a 1 ms tick, and the loop checks ctx)
}

void detach(cctx_t *ctx)
{
    /* cctx-vet:ignore=background,unchecked: a fire-and-forget context on purpose */
    cctx_with_cancel(cctx_background(), NULL);
    (void)ctx;
}

int order(int fd, cctx_t *ctx); // cctx-vet:ignore=ctxfirst (a callback signature)
