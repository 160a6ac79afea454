// expect: lostrelease@28 lostrelease@32
/* GNU local labels (__label__) of a macro used twice in one function are two
 * labels, not one: each goto goes to its own expansion's label. Merged, the
 * second expansion's goto would lead back into the first, where `a` is still
 * owed, and its release would look like a second one. */
#include <cctx.h>

int work(cctx_t *ctx);

#define TRY(e)                                                                                     \
    ({                                                                                             \
        __label__ done;                                                                            \
        int r_ = (e);                                                                              \
        if (r_ < 0)                                                                                \
            goto done;                                                                             \
        r_ = 0;                                                                                    \
    done:                                                                                          \
        r_;                                                                                        \
    })

int f(cctx_t *parent)
{
    cctx_t *a = cctx_with_cancel(parent, NULL);
    if (!a)
        return -1;
    int r = TRY(work(a));
    cctx_release(a);
    cctx_t *b = cctx_with_cancel(parent, NULL);
    if (!b)
        return -1;
    if (TRY(work(b)) < 0)
        return -1; /* the leak of b */
    cctx_release(b);
    return r;
}
