// expect: none
/* A call through a function pointer is lowered as a direct one: its
 * arguments once each (a definition in an argument is one definition, a
 * release one release), and the pointer's own expression before them. */
#include <cctx.h>

struct ops {
    int (*start)(cctx_t *ctx, int n);
};

int direct(cctx_t *ctx, int n);

int by_name(cctx_t *p, const struct ops *o)
{
    (void)o;
    cctx_t *c;
    int rc = direct(c = cctx_with_cancel(p, NULL), 1);
    cctx_release(c);
    return rc;
}

int by_pointer(cctx_t *p, const struct ops *o)
{
    cctx_t *c;
    int rc = o->start(c = cctx_with_cancel(p, NULL), 1);
    cctx_release(c);
    return rc;
}

int release_in_argument(cctx_t *p, const struct ops *o)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (!c)
        return -1;
    return o->start(p, (cctx_release(c), 0));
}
