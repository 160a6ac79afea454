// expect: lostrelease@11 lostrelease@18 lostrelease@25 lostrelease@31
/* A parameter that the function writes may come to hold the derivation:
 * then the derivation is its parameter, and released only where it is not,
 * it leaks. */
#include <cctx.h>

int work(cctx_t *ctx);

int a(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (c == NULL)
        return -1;
    parent = cctx_ref(c);
    if (c != parent)
        cctx_release(c);
    cctx_release(parent);
    return 0;
}

void swap_in(cctx_t *with, cctx_t **slot);

int b(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (c == NULL)
        return -1;
    swap_in(c, &parent);
    int rc = work(parent);
    if (c == parent)
        return rc;
    cctx_release(c);
    return rc;
}
