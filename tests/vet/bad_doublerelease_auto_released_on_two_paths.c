// expect: doublerelease@17 doublerelease@24 doublerelease@35 doublerelease@37 doublerelease@48 doublerelease@50
/* A CCTX_AUTO context released outright on two paths: its cleanup releases
 * it again after each, and each release line is a finding of its own, also
 * where the two paths meet before the scope ends (the released states are
 * told apart by where they were released, not only by where the context
 * was made). */
#include <cctx.h>
int work(cctx_t *c);

/* Released in one branch; released, made again and released in the other. */
int rederived(cctx_t *p, int n)
{
    CCTX_AUTO cctx_t *c = cctx_with_cancel(p, NULL);
    if (!c)
        return -1;
    if (n) {
        cctx_release(c);
    } else {
        cctx_release(c);
        c = cctx_with_cancel(p, NULL);
        if (!c)
            return -1;
        work(c);
        cctx_release(c);
    }
    return 0;
}

/* Two guarded releases in a loop's body. */
int in_a_loop(cctx_t *p, int n)
{
    while (n) {
        CCTX_AUTO cctx_t *a = cctx_ref(p);
        if (n == 1)
            cctx_release(a);
        if (n == 2)
            cctx_release(a);
        n--;
    }
    return 0;
}

/* The same without the loop. */
int guarded(cctx_t *p, int n)
{
    CCTX_AUTO cctx_t *a = cctx_ref(p);
    if (n == 1)
        cctx_release(a);
    if (n == 2)
        cctx_release(a);
    return 0;
}
