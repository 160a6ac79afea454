// expect: none
/* `&&`, `||` and `?:` are branches: what a test tells holds on its side, the
 * arms of `?:` each assign on their own path, and a call that never returns
 * ends the path of its operand only. */
#include <cctx.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

int work(cctx_t *ctx);

int null_on_the_true_side(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c && errno == ENOMEM)
        return -1; /* c is NULL here */
    if (c == NULL || work(c) < 0) {
        cctx_release(c); /* cctx_release(NULL) does nothing */
        return -2;
    }
    cctx_release(c);
    return 0;
}

int either_derivation(cctx_t *parent, bool bounded)
{
    cctx_t *c =
        bounded ? cctx_with_timeout(parent, CCTX_SEC(1), NULL) : cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int r = work(c);
    cctx_release(c);
    return r;
}

int checked_then_released(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    c ? (void)0 : abort();
    int r = work(c);
    cctx_release(c);
    return r;
}

cctx_t *this_or_the_parent(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    return c ?: parent; /* c goes to the caller */
}

int unevaluated(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    cctx_release(c);
    return (int)sizeof(c ? work(c) : 0); /* not a use: sizeof runs nothing */
}
