/* SPDX-License-Identifier: MIT */
/*
 * Internal hooks for the library's own tests (not installed, not exported from
 * the shared library; the test runner links the library's objects directly).
 */
#ifndef CCTX_TESTHOOKS_H
#define CCTX_TESTHOOKS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Make the library's n-th allocation from now fail (n = 1: the next one);
 * n <= 0 turns failures off. */
void cctx__test_fail_alloc(long n);
/* The same, but that allocation and every later one fail, until
 * cctx__test_fail_alloc(0). */
void cctx__test_fail_allocs_from(long n);
/* How many allocations are still to come before the one set to fail: 0 once
 * it has failed (or when none is set). */
long cctx__test_fail_alloc_pending(void);
/* How many of the spare job blocks (runner.c: cctx__job_block) are taken. */
unsigned cctx__test_spare_jobs_used(void);
/* A registration's state, by name: "registered", "queuing", "running"... */
const char *cctx__test_after_state(const void *reg);
/* Count the library's live heap blocks (contexts, causes, names, timer heap
 * excluded) from now on; counting is off unless turned on. */
void cctx__test_count_allocs(bool on);
long cctx__test_live_allocs(void);
/* How many times a waiter for a word lock (a context's, a timer shard's)
 * has gone to sleep in the kernel, since the program started. */
long cctx__test_lock_sleeps(void);
/* Takes (hold) or lets go of (!hold) a group's lock, the one its go, wait
 * and pool threads take (group.c). */
struct cctx_group;
void cctx__test_group_hold_lock(struct cctx_group *g, bool hold);
/* How a group's pool creates a thread (group.c): pthread_create, or a test's
 * that fails (as at a thread limit) or acts at that moment. Called with the
 * group's lock held. */
typedef int (*cctx__pthread_create_fn)(pthread_t *thread, const pthread_attr_t *attr,
                                       void *(*fn)(void *), void *arg);
extern _Atomic(cctx__pthread_create_fn) cctx__group_thread_create;
/* How long a group's pool thread back from a task watches for the next one
 * before it sleeps, and a go on a full group for a free slot before it
 * waits (group.c: 20 µs), in nanoseconds; 0: no watching. And how many
 * times, since the start, pool threads have gone to sleep, and go calls
 * have watched and waited for a slot. */
extern _Atomic int64_t cctx__group_spin_ns;
long cctx__test_group_idle_sleeps(void);
long cctx__test_group_slot_watches(void);
long cctx__test_group_slot_waits(void);
/* What cctx__os_several_cpus answers (os.c): 0 the machine's answer, 1 one
 * CPU, 2 several. A group reads it when it is made. */
extern _Atomic int cctx__test_cpus;
/* Called, when set, by cctx_cancel_and_wait's walk of the descendants (a
 * report given, the registry off) with each one it watches, before it lets
 * go of its reference to it (quiesce.c). */
struct cctx;
typedef void (*cctx__ctx_hook_fn)(struct cctx *c);
extern _Atomic(cctx__ctx_hook_fn) cctx__quiesce_walk_hook;
/* How long the leak report at exit waits for other threads' dumps under
 * way (debug.c): a second; a test makes it long, so that a report that
 * waits when it must not shows beyond doubt. */
extern _Atomic int64_t cctx__leak_report_dump_wait;
/* Called, when set, by the leak report at exit with each context it has
 * just taken a reference on, before it reads the count (debug.c). */
extern _Atomic(cctx__ctx_hook_fn) cctx__leak_walk_hook;
/* Called, when set, by a stop that has just claimed a queued registration,
 * before it unlinks it from its queue (after.c). */
typedef void (*cctx__plain_hook_fn)(void);
extern _Atomic(cctx__plain_hook_fn) cctx__after_unqueuing;
/* Called, when set, by a runner that held a place and found no
 * registration to run, before it gives the place back; and by one that
 * found every place taken and no waker to run, before it looks again or
 * goes idle (runner.c). */
extern _Atomic(cctx__plain_hook_fn) cctx__runner_found_nothing;
extern _Atomic(cctx__plain_hook_fn) cctx__runner_was_turned_away;
/* Takes (hold) or lets go of (!hold) the lock under which stops made from
 * inside after-functions list their waits (after.c). */
void cctx__test_after_hold_stop_waits_lock(bool hold);
/* How the runners' pool starts a thread (runner.c): a test puts in one that
 * fails, as at a thread limit. */
typedef int (*cctx__thread_start_fn)(void *(*fn)(void *), void *arg);
extern _Atomic(cctx__thread_start_fn) cctx__runner_thread_start;
/* The same for the timer thread (timer.c). */
extern _Atomic(cctx__thread_start_fn) cctx__timer_thread_start;
/* Called, when set, by the timer thread or an advancing thread just after it
 * takes a due deadline off its heap, before firing it (timer.c): a test
 * holds a firing there. */
struct cctx__timer;
typedef void (*cctx__timer_hook_fn)(struct cctx__timer *t);
extern _Atomic(cctx__timer_hook_fn) cctx__timer_popped;
/* Called, when set, by cctx__timer_arm before it puts t in its heap, and
 * just after: a test moves the fake clock there. */
extern _Atomic(cctx__timer_hook_fn) cctx__timer_arming;
extern _Atomic(cctx__timer_hook_fn) cctx__timer_armed;
/* In a child of fork(): how many firings that threads the child lacks had in
 * hand, the child's timer thread has still to fire (timer.c). */
int cctx__test_timer_orphans(void);
/* The firing the timer thread (!fake) or an advance (fake) has in hand:
 * taken off its heap and not yet committed (timer.c); NULL if none. */
struct cctx__timer *cctx__test_timer_in_hand(bool fake);
/* Number of deadlines armed on the process timer. */
long cctx__test_armed_timers(void);
/* The size of a grace context's allocation (grace.c). */
size_t cctx__test_grace_block_size(void);
/* Called as the release that frees a grace context begins its stops, on its
 * thread (grace.c: cctx__grace_freeing). */
extern _Atomic(cctx__plain_hook_fn) cctx__grace_freeing_hook;
/* Called as the after-function of a grace context's parent's end begins,
 * before it gives the grace context its deadline (grace.c). */
extern _Atomic(cctx__plain_hook_fn) cctx__grace_parent_ended_hook;
/* How cctx_dump grows its stack of contexts to visit (dump.c): realloc, or
 * a test's, to fail it at a chosen moment. */
typedef void *(*cctx__realloc_fn)(void *p, size_t size);
extern _Atomic(cctx__realloc_fn) cctx__dump_stack_realloc;
/* How the registry's snapshot grows (debug.c; cctx_dump(NULL) and
 * cctx_cancel_and_wait's report under CCTX_DEBUG=trees): the same. */
extern _Atomic(cctx__realloc_fn) cctx__registry_snapshot_realloc;
/* Takes (hold) or lets go of (!hold) the lock of the table of names
 * (names.c), or the lock a trace's flush holds while it writes (trace.c). */
void cctx__test_hold_names_lock(bool hold);
void cctx__test_hold_trace_lock(bool hold);
/* The longest chain of the table of names (names.c): how many entries a
 * lookup may walk. */
size_t cctx__test_names_longest_chain(void);
/* Takes (hold) or lets go of (!hold) the lock of the table of pipes that
 * stand for done descriptors where there is no eventfd (os.c); a no-op
 * with eventfd. */
void cctx__test_hold_pipes_lock(bool hold);
/* Empties the calling thread's pool of random bytes for trace and span ids
 * (propagate.c), so the next id draws from the kernel. */
void cctx__random_pool_empty(void);

#endif
