// expect: none
/* The address of a variable whose context was released reads nothing of
 * that context: a call that makes the variable anew through it, or a memset,
 * is no use after release. */
#include <cctx.h>
#include <string.h>

int work(cctx_t *ctx);
int make_ctx(cctx_t *parent, cctx_t **out);

int made_anew(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    work(c);
    cctx_release(c);
    if (make_ctx(parent, &c) == 0) {
        work(c);
        cctx_release(c);
    }
    return 0;
}

int cleared(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    work(c);
    cctx_release(c);
    memset(&c, 0, sizeof c);
    return 0;
}
