// expect: lostrelease@14 lostrelease@20 lostrelease@25 lostrelease@31
/* Macros in a prototype that do not say _Noreturn: a storage class, and a
 * macro that writes the whole prototype with a parameter named noreturn
 * (a word that says nothing there). Those functions return: a leak. */
#include <cctx.h>
#define API extern
#define DECLARE_LOG(name) void name(const char *noreturn)
int work(cctx_t *c);
API void warn(const char *msg);
DECLARE_LOG(note);

int storage_class(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    warn("work failed");
    return -1;
}

int parameter_name(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    note("work failed");
    return -1;
}
