/* SPDX-License-Identifier: MIT */
/*
 * Test hooks of src/proc.c (not installed; hidden like the rest of the
 * library's internals).
 */
#ifndef CCTX_PROC_INTERNAL_H
#define CCTX_PROC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

/* Set: cctx_proc_spawn opens no pidfd, as on a kernel or a system without
 * pidfds, so that the tests run the PID path of the library too. */
extern atomic_bool cctx__proc_no_pidfd;

/* Called, when set, by cctx_proc_wait outside the handle's lock just before
 * it waits for the child's exit: a test holds a waiter there. */
struct cctx_proc;
typedef void (*cctx__proc_hook_fn)(struct cctx_proc *p);
extern _Atomic(cctx__proc_hook_fn) cctx__proc_before_wait;

#endif
