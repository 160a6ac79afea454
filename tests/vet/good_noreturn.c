// expect: none
/* Paths that end in a call that never returns leak nothing. */
#include <cctx.h>
#include <stdio.h>
#include <stdlib.h>

_Noreturn static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void fatal(const char *what) __attribute__((noreturn));
static void fatal(const char *what)
{
    perror(what);
    abort();
}

int work(cctx_t *ctx);

int main(void)
{
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    if (!ctx)
        die("cctx_with_timeout");
    if (work(ctx) < 0)
        fatal("work");
    if (work(ctx) > 0)
        exit(2);
    cctx_release(ctx);
    return 0;
}
