// expect: none
/* A null test as the right operand of a comma in a condition is the
 * condition's test: the left operand runs first, its value dropped, and the
 * branch on which the variable is NULL owes nothing. */
#include <cctx.h>

int work(cctx_t *ctx);
void note(void);

int a(cctx_t *parent)
{
    cctx_t *ctx;
    if (ctx = cctx_with_cancel(parent, NULL), ctx == NULL)
        return -1;
    int rc = work(ctx);
    cctx_release(ctx);
    return rc;
}

int b(cctx_t *parent)
{
    cctx_t *ctx;
    if ((note(), ctx = cctx_with_cancel(parent, NULL)), !ctx)
        return -1;
    cctx_release(ctx);
    return 0;
}

int c(cctx_t *parent, int n)
{
    cctx_t *ctx;
    while (n-- > 0 && (ctx = cctx_with_timeout(parent, CCTX_SEC(1), NULL), ctx != NULL)) {
        work(ctx);
        cctx_release(ctx);
    }
    return 0;
}
