// expect: lostrelease@15 lostrelease@20 lostrelease@29 lostrelease@33
/* GNU statement expressions are lowered: a return from inside one skips the
 * release, and a context made as one's value is owed like any other. */
#include <cctx.h>
int work(cctx_t *c);
void trace(const char *what);
#define DERIVE(p)                                                                                  \
    ({                                                                                             \
        trace("derive");                                                                           \
        cctx_with_cancel((p), NULL);                                                               \
    })

int return_inside(cctx_t *parent, int x)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    int y = ({
        if (x)
            return 1;
        2;
    });
    cctx_release(c);
    return y;
}

int made_by_one(cctx_t *parent)
{
    cctx_t *c = DERIVE(parent);
    if (!c)
        return -1;
    work(c);
    return 0;
}
