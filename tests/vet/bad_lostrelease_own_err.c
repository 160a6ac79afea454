// expect: lostrelease@17 lostrelease@22
/* A project's own function named like a C library call that never returns
 * (err from <err.h>) is judged by its declaration: this one returns, and the
 * return after it leaks. */
#include <cctx.h>
#include <stdio.h>

int work(cctx_t *ctx);

static void err(const char *msg)
{
    fprintf(stderr, "error: %s\n", msg);
}

int own_err(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    if (work(c) < 0) {
        err("work failed");
        return -1;
    }
    cctx_release(c);
    return 0;
}
