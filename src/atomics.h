/* SPDX-License-Identifier: MIT */
/*
 * Atomic operations that name their memory order.
 *
 * Every atomic access in the library goes through one of these, so a reader
 * sees at the call which order it asks for, and a search for "_acquire" finds
 * every reader that pairs with a "_release" writer. They are C11 atomics and
 * nothing else: each one is the `_explicit` form with its order spelled out.
 *
 * A failed compare-and-swap reads the current value with the load half of
 * the success order: relaxed for relaxed and release, acquire for acquire and
 * acq_rel, seq_cst for seq_cst. (On x86-64 every order compiles to the same
 * instruction; elsewhere this is never weaker than the caller needs.)
 *
 * The `plain` loads and stores are for a field that is not _Atomic in its
 * declaration (it is written once before publication, or read by code that
 * must compile to a plain access) but that one thread may write while another
 * reads it: a relaxed atomic access makes that no data race.
 */
#ifndef CCTX_ATOMICS_H
#define CCTX_ATOMICS_H

#include <stdatomic.h>

#define cctx__atomic_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define cctx__atomic_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define cctx__atomic_load_seq_cst(p) atomic_load_explicit((p), memory_order_seq_cst)

#define cctx__atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define cctx__atomic_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define cctx__atomic_store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)

#define cctx__atomic_exchange_relaxed(p, v) atomic_exchange_explicit((p), (v), memory_order_relaxed)
#define cctx__atomic_exchange_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)
#define cctx__atomic_exchange_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define cctx__atomic_exchange_seq_cst(p, v) atomic_exchange_explicit((p), (v), memory_order_seq_cst)

#define cctx__atomic_fetch_add_relaxed(p, v)                                                       \
    atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define cctx__atomic_fetch_add_seq_cst(p, v)                                                       \
    atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define cctx__atomic_fetch_sub_relaxed(p, v)                                                       \
    atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
#define cctx__atomic_fetch_sub_release(p, v)                                                       \
    atomic_fetch_sub_explicit((p), (v), memory_order_release)
#define cctx__atomic_fetch_sub_acq_rel(p, v)                                                       \
    atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define cctx__atomic_fetch_sub_seq_cst(p, v)                                                       \
    atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst)
#define cctx__atomic_fetch_or_relaxed(p, v) atomic_fetch_or_explicit((p), (v), memory_order_relaxed)
#define cctx__atomic_fetch_or_release(p, v) atomic_fetch_or_explicit((p), (v), memory_order_release)
#define cctx__atomic_fetch_or_seq_cst(p, v) atomic_fetch_or_explicit((p), (v), memory_order_seq_cst)
#define cctx__atomic_fetch_and_release(p, v)                                                       \
    atomic_fetch_and_explicit((p), (v), memory_order_release)
#define cctx__atomic_fetch_and_acq_rel(p, v)                                                       \
    atomic_fetch_and_explicit((p), (v), memory_order_acq_rel)
#define cctx__atomic_fetch_and_seq_cst(p, v)                                                       \
    atomic_fetch_and_explicit((p), (v), memory_order_seq_cst)

/* Compare-and-swap: true when *p held *expected and now holds desired; else
 * *expected is updated to what *p holds. `weak` may fail spuriously (use it
 * in a loop). */
#define cctx__atomic_cas_weak_relaxed(p, expected, desired)                                        \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_relaxed,        \
                                          memory_order_relaxed)
#define cctx__atomic_cas_weak_acquire(p, expected, desired)                                        \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_acquire,        \
                                          memory_order_acquire)
#define cctx__atomic_cas_weak_acq_rel(p, expected, desired)                                        \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_acq_rel,        \
                                          memory_order_acquire)
#define cctx__atomic_cas_strong_acq_rel(p, expected, desired)                                      \
    atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_acq_rel,      \
                                            memory_order_acquire)
#define cctx__atomic_cas_strong_seq_cst(p, expected, desired)                                      \
    atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_seq_cst,      \
                                            memory_order_seq_cst)

#define cctx__plain_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define cctx__plain_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* The CPU's spin-wait hint, for a loop that watches a word another core is
 * about to write: it yields the core's resources to a sibling thread and
 * spares the pipeline a mis-speculated exit from the loop. */
static inline void cctx__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield");
#endif
}

#endif
