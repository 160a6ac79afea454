/* SPDX-License-Identifier: MIT */
/*
 * The library's own after-functions, for the parts built on the public API
 * (group.c, io_sync.c) as for the core.
 */
#ifndef CCTX_AFTER_H
#define CCTX_AFTER_H

#include <cctx.h>

/* cctx_after_func for the library's own wakers (a wait to end, a blocked
 * call to wake): fn only wakes a thread and returns, and runs ahead of the
 * user's after-functions queued by the same cancellation, so that a slow or
 * blocking user fn cannot hold up the library's own waits on that context. */
int cctx__after_func_first(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                           const char *file, int line, const char *func);

#endif
