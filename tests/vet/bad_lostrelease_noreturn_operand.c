// expect: lostrelease@19 lostrelease@22 lostrelease@29 lostrelease@32 lostrelease@39 lostrelease@42 lostrelease@49 lostrelease@52 lostrelease@59 lostrelease@62
/* A call that never returns in an operand that may not run ends only the
 * path that runs it: assert() as glibc writes it without GNU extensions
 * (`(e) ? (void)0 : __assert_fail(...)`) and as musl writes it (`(e) ||
 * (__assert_fail(...), 0)`) must not hide the leaks after it. */
#include <cctx.h>
#include <stdlib.h>

int work(cctx_t *ctx);
_Noreturn void die(const char *why);

/* glibc's assert without GNU extensions, and musl's: the operator is
 * written inside the macro, where its token cannot be read. */
#define ASSERT_C11(e) ((e) ? (void)0 : abort())
#define ASSERT_MUSL(e) ((void)((e) || (die(#e), 0)))

int conditional_operator(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    ASSERT_C11(ctx != NULL);
    if (work(ctx) < 0)
        return -1;
    cctx_release(ctx);
    return 0;
}

int or_in_a_macro(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    ASSERT_MUSL(ctx);
    if (work(ctx) < 0)
        return -1;
    cctx_release(ctx);
    return 0;
}

int or_written_here(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    ctx || (die("out of memory"), 0);
    if (work(ctx) < 0)
        return -1;
    cctx_release(ctx);
    return 0;
}

int and_written_here(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    !ctx && (abort(), 0);
    if (work(ctx) < 0)
        return -1;
    cctx_release(ctx);
    return 0;
}

int gnu_conditional(cctx_t *parent, int n)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    n = n ?: (abort(), 0);
    if (work(ctx) < n)
        return -1;
    cctx_release(ctx);
    return 0;
}
