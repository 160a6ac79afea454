// expect: doublerelease@17 doublerelease@17 doublerelease@26 doublerelease@26 doublerelease@34 doublerelease@34 doublerelease@34 doublerelease@34 doublerelease@42 doublerelease@42 doublerelease@50 doublerelease@50 lostrelease@50 lostrelease@50 lostrelease@52
/* Findings on one line are each reported: two releases of a CCTX_AUTO
 * context on alternative paths written on one line (each one is released
 * again by the cleanup), three releases of one context (two double
 * releases), two variables' double releases written by one macro call (one
 * place), and leaks beside double releases. The same double release
 * reached on two paths is still one finding (line 26's first). */
#include <cctx.h>
int work(cctx_t *ctx);
#define RELEASE_BOTH(x, y) do { cctx_release(x); cctx_release(y); } while (0)
// says: a is released again: it was already released at line 41
// says: b is released again: it was already released at line 41

int auto_either(cctx_t *parent, int n)
{
    CCTX_AUTO cctx_t *a = cctx_ref(parent);
    if (n) cctx_release(a); else cctx_release(a);
    return work(parent);
}

int three_releases(cctx_t *parent, int n)
{
    cctx_t *a = cctx_with_cancel(parent, NULL);
    if (n)
        work(a);
    cctx_release(a); cctx_release(a); cctx_release(a);
    return 0;
}

int two_autos_either(cctx_t *parent, int n)
{
    CCTX_AUTO cctx_t *a = cctx_ref(parent);
    CCTX_AUTO cctx_t *b = cctx_ref(parent);
    if (n) { cctx_release(a); cctx_release(b); } else { cctx_release(b); cctx_release(a); }
    return 0;
}

int macro_of_two(cctx_t *parent)
{
    cctx_t *a = cctx_with_cancel(parent, NULL), *b = cctx_with_cancel(parent, NULL);
    cctx_release(a); cctx_release(b);
    RELEASE_BOTH(a, b);
    return 0;
}

int leak_beside_double(cctx_t *parent, int n)
{
    CCTX_AUTO cctx_t *a = cctx_ref(parent);
    cctx_t *b;
    if (n) { cctx_release(a); b = cctx_ref(parent); } else { b = cctx_with_cancel(parent, NULL); cctx_release(a); }
    work(b);
    return 0;
}
