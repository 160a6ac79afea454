/* SPDX-License-Identifier: MIT */
/*
 * What the two halves of <cctx/io.h> share: src/io.c (descriptors) and
 * src/io_sync.c (condition variables, locks, semaphores, joins). Not
 * installed; with the library's hidden visibility nothing here is exported.
 */
#ifndef CCTX_IO_INTERNAL_H
#define CCTX_IO_INTERNAL_H

#include <cctx.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* What this libc offers (cmake/features.cmake). */
#include "cctx_config.h"

#include "atomics.h"

#define cctx__io_unlikely(x) __builtin_expect(!!(x), 0)

#if CCTX_USE_PREADV2
#include <sys/uio.h>
#if CCTX_USE_SYS_PREADV2
#include <sys/syscall.h>
#include <unistd.h>
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008 /* the kernel's, <linux/fs.h> */
#endif
/* The libc's wrappers, where it has none (musl): the position goes as two
 * longs, its low and high halves, as glibc passes it. */
static inline ssize_t cctx__preadv2(int fd, const struct iovec *v, int n, off_t at, int flags)
{
    return syscall(SYS_preadv2, fd, v, n, (long)at, (long)((uint64_t)at >> 32), flags);
}

static inline ssize_t cctx__pwritev2(int fd, const struct iovec *v, int n, off_t at, int flags)
{
    return syscall(SYS_pwritev2, fd, v, n, (long)at, (long)((uint64_t)at >> 32), flags);
}
#else
#define cctx__preadv2 preadv2
#define cctx__pwritev2 pwritev2
#endif
#endif

/* Slices of the waits that nothing can interrupt (mutex, semaphore, join,
 * a Unix connect on a full backlog): short at first, so that a cancel soon
 * after the wait starts is seen soon, then capped, so that a long wait costs
 * one wake-up per SLICE_MAX. SLICE_FLOOR keeps a wait whose deadline has
 * passed, but whose context the timer thread has not marked yet, from
 * spinning. */
#define CCTX__IO_SLICE_MIN CCTX_MSEC(1)
#define CCTX__IO_SLICE_MAX CCTX_MSEC(16)
#define CCTX__IO_SLICE_FLOOR CCTX_USEC(50)

static inline int64_t cctx__io_next_slice(int64_t slice)
{
    return slice < CCTX__IO_SLICE_MAX ? slice * 2 : CCTX__IO_SLICE_MAX;
}

/* fork.c: a child of fork() starts the library threads it needs (the timer
 * thread above all) on its first call that could wait for one, and calls that
 * register or make a done descriptor do that for themselves. A sliced wait
 * does neither: it only polls cctx_err, which an inherited deadline would
 * then never change, so it restarts them itself. One relaxed load outside a
 * child, as in internal.h. Returns whether a thread the child needs is
 * still to start (this try failed, or another thread's is under way). */
extern _Atomic int cctx__child_stale;
void cctx__child_restart_slow(void);
static inline bool cctx__io_child_restart(void)
{
    if (cctx__io_unlikely(cctx__atomic_load_relaxed(&cctx__child_stale))) {
        cctx__child_restart_slow();
        return cctx__atomic_load_relaxed(&cctx__child_stale) != 0;
    }
    return false;
}
/* While cctx__io_child_restart says a thread is still to start: the end,
 * on CLOCK_MONOTONIC, of a wait's next sleep before it tries again (in
 * 10 ms, as the core's waits), or `deadline` if that comes first. A wait
 * that only ctx's end could stop (a wait on a descriptor, cctx_cond_wait)
 * would else sleep for ever through a deadline it inherited. */
int64_t cctx__child_slice_slow(int64_t deadline);
/* The same as a length: how long such a wait sleeps before it tries again. */
static inline int64_t cctx__io_child_retry_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t at = (int64_t)now.tv_sec * CCTX_SEC(1) + now.tv_nsec;
    return cctx__child_slice_slow(CCTX_NO_DEADLINE) - at;
}

/* clock.c: whether the fake clock runs (<cctx/testing.h>), when the time
 * left before a deadline is virtual. */
extern _Atomic int cctx__fake_on;
static inline bool cctx__io_fake_clock_on(void)
{
    return cctx__atomic_load_relaxed(&cctx__fake_on);
}

/* Test hook: the library's threads of <cctx/io.h> are created through this
 * pointer (pthread_create unless a test swaps it to inject a failure).
 * Atomic because a test swaps it while other threads may read it. */
typedef int (*cctx__io_create_fn)(pthread_t *thread, const pthread_attr_t *attr,
                                  void *(*fn)(void *), void *arg);
extern _Atomic(cctx__io_create_fn) cctx__io_thread_create;

/* Test hook: called, when set, after a wait on a descriptor reported it
 * ready and before the call tries it, so a test can take what poll saw. */
typedef void (*cctx__io_ready_fn)(int fd);
extern _Atomic(cctx__io_ready_fn) cctx__io_ready_hook;

#endif
