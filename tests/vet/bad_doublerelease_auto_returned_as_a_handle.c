// expect: doublerelease@12 doublerelease@18 doublerelease@24
/* A CCTX_AUTO context returned as an _Atomic pointer, or cast to an integer
 * as wide as a pointer (a handle, a callback's cookie): the caller can turn
 * it back into the context, which the cleanup releases as the function
 * returns. Only a narrower value (a bool, an int) hands nothing over. */
#include <cctx.h>
#include <stdint.h>

_Atomic(cctx_t *) as_atomic(cctx_t *p)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    return c;
}

uintptr_t as_handle(cctx_t *p)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    return (uintptr_t)c;
}

long as_long(cctx_t *p)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    return (long)c;
}
