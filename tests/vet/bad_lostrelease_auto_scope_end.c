// expect: lostrelease@14 lostrelease@19 lostrelease@20
// says: its scope ends at line 20 with a reference owed beyond the one CCTX_AUTO releases
// says: the scope of c, made at line 14, may end here with a reference still owed
/* A CCTX_AUTO context with one more reference owed when its scope ends at a
 * break or a closing brace: the finding names the end of the scope, not a
 * return. */
#include <cctx.h>

int work(cctx_t *ctx);

int each(cctx_t *parent, int n)
{
    for (int i = 0; i < n; i++) {
        CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
        if (!c)
            break;
        cctx_ref(c);
        if (work(c))
            break;
    }
    return work(parent);
}
