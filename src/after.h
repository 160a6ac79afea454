/* SPDX-License-Identifier: MIT */
/*
 * The library's own after-functions, for the parts built on the public API
 * (group.c, io_sync.c) as for the core.
 */
#ifndef CCTX_AFTER_H
#define CCTX_AFTER_H

#include <cctx.h>

/* cctx_after_func for the library's own after-functions: wakers (a wait to
 * end, a blocked call to wake) and the short work that keeps a promise made
 * about the moment a context ends (a grace period's clock, a process's
 * signal, a signal's disposition given back). fn never blocks (it takes
 * only locks held briefly) and returns; it runs ahead of the user's
 * after-functions queued by the same cancellation, and on the runners
 * kept for the library's own work, so that slow or blocking user fns, on
 * this context or on any other, cannot hold it up. */
int cctx__after_func_first(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                           const char *file, int line, const char *func);
/* In a child of fork(), about to stop a registration it inherited: false
 * when that stop could wait for ever on a thread the fork left behind (one
 * that was queuing, stopping or unqueuing it, or held its owner's lock);
 * the registration's storage must then be left as it is. Conservative: a
 * thread of the child itself doing any of that at the moment also gives
 * false. */
bool cctx__after_stoppable_in_child(const cctx_after_t *reg);

#endif
