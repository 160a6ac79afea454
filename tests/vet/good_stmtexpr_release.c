// expect: none
/* Released through a GNU statement-expression macro; a context made as a
 * statement expression's value, released. */
#include <cctx.h>
int work(cctx_t *c);
void trace(const char *what);
#define RELEASE_AND_CLEAR(c)                                                                       \
    ({                                                                                             \
        cctx_release(c);                                                                           \
        (c) = NULL;                                                                                \
        0;                                                                                         \
    })
#define DERIVE(p)                                                                                  \
    ({                                                                                             \
        trace("derive");                                                                           \
        cctx_with_cancel((p), NULL);                                                               \
    })

int release_macro(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    work(c);
    RELEASE_AND_CLEAR(c);
    return 0;
}

int made_by_one(cctx_t *parent)
{
    cctx_t *c = DERIVE(parent);
    if (!c)
        return -1;
    work(c);
    cctx_release(c);
    return 0;
}
