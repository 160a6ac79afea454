// expect: doublerelease@20
/* A cleanup attribute spelled through a project's macro releases too: an
 * explicit release before it is a second one. */
#include <cctx.h>

int work(cctx_t *ctx);

#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void ctx_unrefp(cctx_t **c)
{
    if (*c)
        cctx_release(*c);
}

int released_twice(cctx_t *parent)
{
    _cleanup_(ctx_unrefp) cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    cctx_release(c);
    return 0;
}
