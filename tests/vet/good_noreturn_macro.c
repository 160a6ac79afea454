// expect: none
/* A no-return helper declared through a macro, as most projects spell it. */
#include <cctx.h>
#define NORETURN __attribute__((noreturn))
int work(cctx_t *c);
NORETURN void die(const char *msg);

int noreturn_macro(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (work(c) < 0) {
        cctx_release(c);
        die("work failed"); /* never returns */
    }
    cctx_release(c);
    return 0;
}
