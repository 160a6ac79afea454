// expect: lostrelease@25 lostrelease@26
/* A plain variable whose initializer is a statement expression that declares
 * a CCTX_AUTO temporary: only the temporary is released by its cleanup, the
 * variable owes the reference cctx_ref made. Released, it is fine; not
 * released, it leaks. */
#include <cctx.h>

int work(cctx_t *c);
#define FRESH_REF(p)                                                                               \
    ({                                                                                             \
        CCTX_AUTO cctx_t *t_ = cctx_with_cancel((p), NULL);                                        \
        cctx_ref(t_);                                                                              \
    })

int released(cctx_t *p)
{
    cctx_t *c = FRESH_REF(p);
    work(c);
    cctx_release(c);
    return 0;
}

int leaked(cctx_t *p)
{
    cctx_t *c = FRESH_REF(p);
    return work(c);
}

int automatic(cctx_t *p)
{
    CCTX_AUTO cctx_t *c = FRESH_REF(p);
    return work(c);
}
