// expect: none
/* A macro writes two prototypes, the never-returning one first, and that
 * one's name is not spelled out: in parentheses (`void (n)(...)`, which
 * keeps a function-like macro of the same name from expanding) or made by
 * another macro. The first declaration counts, up to its first `(`: a call
 * to it ends the path, and nothing is owed after it. */
#include <cctx.h>
int work(cctx_t *c);
#define DECL_PAREN(n) _Noreturn void(n)(const char *m); void n##_log(const char *m)
DECL_PAREN(fatal_p);
#define CAT(a, b) a##b
#define DECL_CAT(n) _Noreturn void CAT(n, _fatal)(const char *m); void n(const char *m)
DECL_CAT(logc);

int paren_name(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    fatal_p("x");
    return -1;
}

int cat_name(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    logc_fatal("x");
    return -1;
}
