// expect: unchecked@16 unchecked@18 unchecked@20 unchecked@22 unchecked@24 unchecked@26 unchecked@28 unchecked@30 unchecked@34 unchecked@36 unchecked@41 unchecked@46
// says: the context made by cctx_with_cancel is only tested, and never released
// says: the context made by cctx_with_timeout is only tested
/* A derivation compared with NULL, negated or tested as a condition, and
 * kept nowhere: the test reads its value, which is then lost, so the context
 * it made can never be released. Keep it in a variable and test that. */
#include <cctx.h>

#define likely(e) __builtin_expect(!!(e), 1)
#define FAILED(c) ((c) == NULL)

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    if (cctx_with_cancel(parent, NULL) == NULL)
        return -1;
    if (NULL == cctx_with_timeout(parent, CCTX_SEC(1), NULL))
        return -1;
    if (cctx_with_cancel(parent, NULL) != NULL)
        work(parent);
    if (!cctx_with_cancel(parent, NULL))
        return -1;
    if (cctx_with_cancel(parent, NULL))
        work(parent);
    if (likely(cctx_with_cancel(parent, NULL) != NULL))
        work(parent);
    if (FAILED(cctx_with_cancel(parent, NULL)))
        return -1;
    while (cctx_with_cancel(parent, NULL) == NULL)
        work(parent);
    int ok;
    (void)ok;
    ok = cctx_with_cancel(parent, NULL) != NULL;
    work(parent);
    return cctx_with_cancel(parent, NULL) ? 0 : -1;
}

int g(cctx_t *parent)
{
    return !cctx_with_timeout(parent, CCTX_SEC(1), NULL);
}

int h(cctx_t *parent, int k)
{
    return k && cctx_with_cancel(parent, NULL);
}
