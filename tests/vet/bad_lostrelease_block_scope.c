// expect: lostrelease@12 lostrelease@17 background@14 background@24
/* A context still owed when its variable's scope ends is a leak, reported
 * at the return as before; while the variable is in scope, a fresh root is
 * one too many. */
#include <cctx.h>

int work(cctx_t *ctx);

int leaked_in_a_block(void)
{
    {
        cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
        work(c);
        work(cctx_background());
    }
    work(cctx_background()); /* c is out of scope: no finding here */
    return 0;
}

int root_in_the_loop(int n)
{
    for (CCTX_AUTO cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL); c && n > 0;
         n--)
        work(cctx_background());
    return 0;
}
