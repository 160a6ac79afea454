// expect: none
/* A cleanup attribute is a release however a project spells it: systemd's
 * _cleanup_(f), a macro over that one, or CCTX_AUTO behind a project's own
 * name. */
#include <cctx.h>

int work(cctx_t *ctx);

#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void ctx_unrefp(cctx_t **c)
{
    if (*c)
        cctx_release(*c);
}
#define AUTO_CTX _cleanup_(ctx_unrefp)
#define SCOPED CCTX_AUTO

int systemd_style(cctx_t *parent)
{
    _cleanup_(ctx_unrefp) cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    return work(c);
}

int macro_over_macro(cctx_t *parent)
{
    AUTO_CTX cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    return work(c);
}

int cctx_auto_renamed(cctx_t *parent)
{
    SCOPED cctx_t *c = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    return work(c);
}

int written_out(cctx_t *parent)
{
    cctx_t *c __attribute__((__cleanup__(ctx_unrefp))) = cctx_with_cancel(parent, NULL);
    if (!c)
        return -1;
    return work(c);
}
