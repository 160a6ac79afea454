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
/* Set: the kernel is taken to be older than this one, so that the tests run
 * the library's paths for older kernels on this one. no_wait_pidfd: waitid
 * takes no pidfd (P_PIDFD: EINVAL), as on Linux 5.3, which has pidfd_open;
 * read by cctx_proc_spawn. no_group_pidfd: pidfd_send_signal takes no
 * PIDFD_SIGNAL_PROCESS_GROUP (EINVAL), as before Linux 6.9; read at each
 * signal. */
extern atomic_bool cctx__proc_no_wait_pidfd;
extern atomic_bool cctx__proc_no_group_pidfd;
/* Set: pidfd_send_signal fails with ENOSYS, as in a sandbox whose filter
 * lets pidfd_open through but not it; read at each signal. */
extern atomic_bool cctx__proc_no_pidfd_signal;

/* Called, when set, by cctx_proc_wait outside the handle's lock just before
 * it waits for the child's exit: a test holds a waiter there. */
struct cctx_proc;
typedef void (*cctx__proc_hook_fn)(struct cctx_proc *p);
extern _Atomic(cctx__proc_hook_fn) cctx__proc_before_wait;

/* Takes (hold) or lets go of (!hold) the handle's lock, the one its
 * signals, waits and reaping take. */
void cctx__test_proc_hold_lock(struct cctx_proc *p, bool hold);

#endif
