// expect: lostrelease@21 lostrelease@27 lostrelease@43 lostrelease@49 lostrelease@54 lostrelease@60
/* A macro that writes two prototypes, the never-returning one first: its
 * _Noreturn belongs to name##_fatal, not to name, which returns. And a
 * macro whose parameter is named noreturn: that word is the call's
 * argument, the function's name. Those functions return: a leak past their
 * call. The ones that never return end the path (no finding in fatal_first
 * and named_first). */
#include <cctx.h>
int work(cctx_t *c);
#define DECLARE_LOGGER(name)                                                                       \
    _Noreturn void name##_fatal(const char *m);                                                    \
    void name(const char *m)
DECLARE_LOGGER(logmsg);
#define DECLARE_HOOK(noreturn) void noreturn(const char *m)
DECLARE_HOOK(hook);
#define DECLARE_PAIR(quit, name) _Noreturn void quit(void); void name(const char *m)
DECLARE_PAIR(bail, note);

int second_of_two(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    logmsg("failed");
    return -1;
}

int fatal_first(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    logmsg_fatal("failed");
    return -1;
}

int parameter_named_noreturn(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    hook("failed");
    return -1;
}

int named_by_an_argument(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    note("failed");
    return -1;
}

int named_first(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    bail();
    return -1;
}
