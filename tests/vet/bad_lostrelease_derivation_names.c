// expect: lostrelease@26 lostrelease@27 lostrelease@28 lostrelease@29 lostrelease@30 lostrelease@31 lostrelease@32 lostrelease@34
// says: the context a from cctx_with_timeout is not released
// says: the context b from cctx_with_timeout_cause is not released
// says: the context c from cctx_with_deadline_cause is not released
// says: the context d from cctx_with_grace is not released
// says: the context e from cctx_with_trace is not released
// says: the context g from cctx_with_signals is not released
// says: the context h from cctx_with_timeout is not released
/* Each derivation is named in the message as the user wrote it: the macros
 * cctx_with_timeout and cctx_with_timeout_cause call one function, and
 * cctx_with_grace, cctx_with_trace and cctx_with_signals are derivations
 * as much as cctx_with_cancel is. A project's macro names the one it calls. */
#include <cctx.h>
#include <cctx/propagate.h>
#include <cctx/signal.h>
#include <signal.h>

/* A project's own macro: the one it calls names the derivation. */
#define WITH_SECOND(p) cctx_with_timeout((p), CCTX_SEC(1), NULL)

int work(cctx_t *ctx);

int f(cctx_t *p, const cctx_trace_t *tr)
{
    static const int sigs[] = {SIGINT};
    cctx_t *a = cctx_with_timeout(p, CCTX_SEC(1), NULL);
    cctx_t *b = cctx_with_timeout_cause(p, CCTX_SEC(1), 1, "slow", NULL);
    cctx_t *c = cctx_with_deadline_cause(p, CCTX_SEC(1), 1, "late", NULL);
    cctx_t *d = cctx_with_grace(p, CCTX_SEC(1), NULL);
    cctx_t *e = cctx_with_trace(p, tr);
    cctx_t *g = cctx_with_signals(p, sigs, 1, NULL);
    cctx_t *h = WITH_SECOND(p);
    work(a), work(b), work(c), work(d), work(e), work(g), work(h);
    return 0;
}
