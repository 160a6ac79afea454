// expect: none
/* A function that returns a pointer to a function taking a context has no
 * context parameter of its own: the ctx of the returned type is not handed
 * to it, and its cctx_background() is no finding. */
#include <cctx.h>

int handler(cctx_t *ctx, int fd);
void set_root(cctx_t *root);

int (*pick(int kind))(cctx_t *ctx, int fd)
{
    if (kind == 0)
        set_root(cctx_background());
    return handler;
}
