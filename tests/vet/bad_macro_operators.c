// expect: lostrelease@14 lostrelease@15 lostrelease@20 lostrelease@22
/* An assignment written by a macro defines the context like one written out;
 * a null test written by a macro keeps its polarity (the branch on which the
 * context is set still owes its release). */
#include <cctx.h>
int work(cctx_t *c);

#define SET(dst, src) ((dst) = (src))
#define IS_SET(c) ((c) != NULL)

int leak_through_set(cctx_t *parent)
{
    cctx_t *c;
    SET(c, cctx_with_cancel(parent, NULL));
    return work(c); /* c is never released */
}

int leak_when_set(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (IS_SET(c))
        return work(c); /* c is set here, and not released */
    return -1;
}
