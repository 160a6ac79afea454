/* SPDX-License-Identifier: MIT */
/* Every call that hands its caller a context to release, with the result
 * thrown away: under CCTX_VET each one must be a warning (check.sh). */
#include <cctx.h>
#include <cctx/propagate.h>
#include <cctx/signal.h>
#include <signal.h>

static const int key;

void drops_every_owned_result(cctx_t *parent, const cctx_trace_t *trace)
{
    static const int sigs[] = {SIGTERM};
    cctx_with_cancel(parent, NULL);
    cctx_with_timeout(parent, CCTX_SEC(1), NULL);
    cctx_with_deadline(parent, CCTX_NO_DEADLINE, NULL);
    cctx_with_value(parent, &key, NULL, NULL);
    cctx_without_cancel(parent);
    cctx_with_grace(parent, CCTX_SEC(1), NULL);
    cctx_with_trace(parent, trace);
    cctx_with_signals(parent, sigs, 1, NULL);
}
