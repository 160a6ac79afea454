// expect: none
/* A leak is reported at the definition and at each return that leaks it; a
 * lostrelease comment at the definition silences them all. */
#include <cctx.h>

int work(cctx_t *ctx);

int above(cctx_t *parent)
{
    /* cctx-vet:ignore=lostrelease: work() hands it to a registry */
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (work(c) < 0)
        return -2;
    return 0;
}

int on_its_line(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL); // cctx-vet:ignore=lostrelease (registered)
    work(c);
    c = cctx_with_timeout(parent, CCTX_SEC(1), NULL); // cctx-vet:ignore=lostrelease
    work(c);
    return 0;
}
