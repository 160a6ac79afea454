// expect: lostrelease@30 lostrelease@34 lostrelease@39 lostrelease@41
/* The word noreturn in a callee's parameters or body (a parameter or a field
 * of that name, a block-scope _Noreturn prototype) says nothing of the
 * callee: a call to it ends no path, and the leaks after it are found. Only
 * the declaration's own specifiers and attributes count (as in die, whose
 * call below does end its path). */
#include <cctx.h>

int work(cctx_t *ctx);

struct fn {
    int noreturn;
};

static int check(struct fn *f)
{
    return f->noreturn;
}

static void helper(int noreturn)
{
    (void)noreturn;
    _Noreturn void inner(void);
}

__attribute__((noreturn)) void die(const char *why);

int field_in_callee(cctx_t *parent, struct fn *f)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (!ctx)
        return -1;
    check(f);
    return work(ctx);
}

int parameter_in_callee(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    helper(1);
    return work(ctx);
}

int attribute_of_the_callee(cctx_t *parent)
{
    cctx_t *ctx = cctx_with_cancel(parent, NULL);
    if (work(ctx) < 0)
        die("work failed");
    cctx_release(ctx);
    return 0;
}
