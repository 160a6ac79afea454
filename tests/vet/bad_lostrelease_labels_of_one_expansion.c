// expect: lostrelease@22 lostrelease@26
/* Two local labels of one macro expansion are two labels: the goto to the
 * second skips the release between them. Taken for one, the goto would lead
 * to the release and the leak would go unseen. */
#include <cctx.h>

int work(cctx_t *ctx);

#define DROP(c)                                                                                    \
    ({                                                                                             \
        __label__ first, last;                                                                     \
        if (work(c) < 0)                                                                           \
            goto last;                                                                             \
    first:                                                                                         \
        cctx_release(c);                                                                           \
    last:                                                                                          \
        0;                                                                                         \
    })

int f(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    DROP(c);
    return 0;
}
