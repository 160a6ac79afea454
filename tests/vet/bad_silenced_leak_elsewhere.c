// expect: lostrelease@11 lostrelease@13 lostrelease@19 lostrelease@20 lostrelease@26 lostrelease@28 lostrelease@31
/* A comment silences the leak's findings at the returns only from the
 * context's definition: not from another line, nor for another rule, nor a
 * return that also leaks a context made elsewhere. */
#include <cctx.h>

int work(cctx_t *ctx);

int unrelated_line(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    work(c); // cctx-vet:ignore=lostrelease
    return 0;
}

int other_rule(cctx_t *parent)
{
    /* cctx-vet:ignore=doublerelease */
    cctx_t *c = cctx_with_cancel(parent, NULL);
    return work(c);
}

int two_leaks(cctx_t *parent)
{
    cctx_t *a = cctx_with_cancel(parent, NULL); // cctx-vet:ignore=lostrelease
    cctx_t *b = cctx_with_cancel(parent, NULL);
    if (!a || !b)
        return -1;
    work(a);
    work(b);
    return 0;
}
