// expect: lostrelease@13 lostrelease@14
/* A declaration a macro writes, whose name comes from the macro's argument:
 * its initializer (a derivation) is the initializer, wherever the macro puts
 * it, and the leak is found. */
#include <cctx.h>

#define CHILD(name, parent) cctx_t *name = cctx_with_cancel(parent, NULL)

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    CHILD(c, parent);
    return work(c);
}
