// expect: lostrelease@11 lostrelease@12 lostrelease@15
/* Each arm of `?:` assigns on its own path: a derivation in either one is
 * owed. */
#include <cctx.h>
#include <stdbool.h>

int work(cctx_t *ctx);

int either_derivation(cctx_t *parent, bool bounded, int64_t deadline_of_the_request)
{
    cctx_t *c = bounded ? cctx_with_deadline(parent, deadline_of_the_request, NULL)
                        : cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    return work(c);
}
