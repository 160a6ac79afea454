// expect: lostrelease@11 lostrelease@14
/* A for whose init declares a struct: the semicolons inside the struct's
 * braces are not the header's, so the loop keeps its condition (its exit)
 * and the leak after it is found. */
#include <cctx.h>

int work(cctx_t *ctx);

int f(cctx_t *parent, int n)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    for (struct { int i; } s = {0}; s.i < n; s.i++)
        work(c);
    return 0;
}
