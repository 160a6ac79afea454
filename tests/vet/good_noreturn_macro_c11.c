// expect: none
/* A function that never returns, whose _Noreturn a macro spells (NORET),
 * or whose whole prototype a macro writes: the path that calls it ends
 * there. */
#include <cctx.h>
#define NORET _Noreturn
#define DECLARE_FATAL(name) _Noreturn void name(const char *msg)
#define DECLARE_FATAL_ATTR(name) void name(const char *msg) __attribute__((noreturn))
int work(cctx_t *c);
NORET void die(const char *msg);
DECLARE_FATAL(fatal);
DECLARE_FATAL_ATTR(fatal_attr);

int spelled_by_a_macro(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    die("work failed"); /* never returns: no leak past it */
    return -1;
}

int prototype_written_by_a_macro(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    fatal("work failed");
    return -1;
}

int attribute_in_a_prototype_macro(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    fatal_attr("work failed");
    return -1;
}
