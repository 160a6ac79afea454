// expect: lostrelease@14 lostrelease@16 lostrelease@18
/* A null test written by one macro inside another whose definition holds the
 * opposite equality operator: the inner operator is not read (so the return
 * at line 16 is a finding, the documented limit), and never read as the
 * outer one, which would hide the real leak at line 18. */
#include <cctx.h>
int work(cctx_t *c);

#define IS_NULL(c) ((c) == NULL)
#define NULL_FLAG(c) (IS_NULL(c) != 0)

int nested_in_def(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (NULL_FLAG(c))
        return -1;
    work(c);
    return 0;
}
