// expect: none
/* Contexts kept in arrays and struct fields are owned by those: no finding. */
#include <cctx.h>

struct job {
    cctx_t *ctx;
    int id;
};

void fill(cctx_t *parent, struct job *jobs, int n, cctx_t **all)
{
    for (int i = 0; i < n; i++) {
        jobs[i].ctx = cctx_with_cancel(parent, NULL);
        all[i] = cctx_ref(jobs[i].ctx);
    }
}

int local_array(cctx_t *parent)
{
    cctx_t *ctxs[2];
    ctxs[0] = cctx_with_cancel(parent, NULL);
    ctxs[1] = cctx_with_timeout(parent, CCTX_SEC(1), NULL);
    int i = cctx_wait_any(ctxs, 2, CCTX_MSEC(1));
    cctx_release(ctxs[0]);
    cctx_release(ctxs[1]);
    return i;
}

int local_struct(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    struct job j = {.ctx = ctx, .id = 1}; /* j owns it now */
    int err = cctx_err(j.ctx);
    cctx_release(j.ctx);
    return err;
}
