// expect: none
/* The expression of a typeof in a declarator is no initializer, and the
 * operand of sizeof is not evaluated: neither makes a context nor blocks. */
#include <cctx.h>
#include <unistd.h>

int work(cctx_t *ctx);
cctx_t *get(void);

int f(cctx_t *parent, int fd)
{
    __typeof__(cctx_with_cancel(parent, NULL)) c;
    if (!parent)
        return -1;
    c = get();
    char buf[1];
    return work(c) + (int)sizeof(read(fd, buf, 1));
}
