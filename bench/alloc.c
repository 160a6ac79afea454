/* SPDX-License-Identifier: MIT */
/*
 * Allocation counting for B/op and allocs/op.
 *
 * Go's B/op is the bytes its allocator hands out (each object rounded up to its
 * size class), allocs/op the number of objects, frees not subtracted. The C
 * analogue: this executable defines malloc and friends, so every allocation in
 * the process (the library's, libc's, ours) comes here; each one counts once,
 * with malloc_usable_size of the block it got (the request rounded up to the
 * allocator's chunk, as a size class is). realloc counts as a new allocation of
 * the new size, as Go's growing append does. Memory the library might take
 * with mmap directly would not be seen; BENCHMARKS.md says how to check.
 *
 * The real allocator is reached through glibc's exported __libc_* entry
 * points, not dlsym(RTLD_NEXT), because dlsym may itself allocate.
 *
 * Counters are per thread so that counting adds no shared cache line to the
 * parallel benchmarks: each thread owns a slot (single writer: a relaxed load
 * and store, no read-modify-write); a reader sums the slots. A thread's slot
 * is folded into `retired` and recycled when the thread exits (pthread key
 * destructor), because DeepValueNewGoRoutine and RunParallel start threads by
 * the thousand. If the slots ever run out, a shared atomic takes the rest.
 *
 * Counting costs a few nanoseconds per allocation (malloc_usable_size, the
 * thread's slot), which Go's timed loops do not pay: its allocator keeps its
 * counts anyway, and testing.B only reads them around the run. So the harness
 * pauses the count while it times (bench_alloc_pause) and counts in a second
 * run of the same N; paused, each call costs one relaxed load more.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

enum { NSLOTS = 512 };

struct slot {
    _Alignas(64) _Atomic uint64_t allocs;
    _Atomic uint64_t bytes;
    _Atomic int used;
};

static struct slot slots[NSLOTS];
static struct slot overflow; /* shared: written with fetch_add */
static pthread_mutex_t retire_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t retired_allocs, retired_bytes; /* under retire_lock */
static pthread_key_t slot_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static __thread struct slot *my_slot;
static _Alignas(64) _Atomic bool paused; /* off retire_lock's line */

static void retire_slot(void *p)
{
    struct slot *s = p;
    pthread_mutex_lock(&retire_lock);
    retired_allocs += atomic_load_explicit(&s->allocs, memory_order_relaxed);
    retired_bytes += atomic_load_explicit(&s->bytes, memory_order_relaxed);
    atomic_store_explicit(&s->allocs, 0, memory_order_relaxed);
    atomic_store_explicit(&s->bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&s->used, 0, memory_order_release);
    pthread_mutex_unlock(&retire_lock);
    /* Allocations later in this thread's exit claim a fresh slot. */
    my_slot = NULL;
}

static void make_key(void)
{
    pthread_key_create(&slot_key, retire_slot);
}

static struct slot *claim_slot(void)
{
    pthread_once(&key_once, make_key);
    for (int i = 0; i < NSLOTS; i++) {
        int expect = 0;
        if (atomic_load_explicit(&slots[i].used, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&slots[i].used, &expect, 1,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            my_slot = &slots[i];
            /* The first keys live in the thread descriptor: this allocates nothing. */
            pthread_setspecific(slot_key, my_slot);
            return my_slot;
        }
    }
    return &overflow;
}

void bench_alloc_pause(bool pause)
{
    atomic_store_explicit(&paused, pause, memory_order_relaxed);
}

/* Whether to count: read before the allocator is called, so that a paused
 * wrapper is a tail call (a jump to glibc's entry and nothing else). */
static inline bool counting(void)
{
    return !atomic_load_explicit(&paused, memory_order_relaxed);
}

static inline void count(void *p)
{
    if (!p)
        return;
    uint64_t size = malloc_usable_size(p);
    struct slot *s = my_slot;
    if (__builtin_expect(s == NULL, 0))
        s = claim_slot();
    if (__builtin_expect(s == &overflow, 0)) {
        atomic_fetch_add_explicit(&s->allocs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->bytes, size, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&s->allocs, atomic_load_explicit(&s->allocs, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->bytes, atomic_load_explicit(&s->bytes, memory_order_relaxed) + size,
                          memory_order_relaxed);
}

void bench_alloc_totals(uint64_t *allocs, uint64_t *bytes)
{
    pthread_mutex_lock(&retire_lock);
    uint64_t a = retired_allocs, b = retired_bytes;
    for (int i = 0; i < NSLOTS; i++) {
        a += atomic_load_explicit(&slots[i].allocs, memory_order_relaxed);
        b += atomic_load_explicit(&slots[i].bytes, memory_order_relaxed);
    }
    a += atomic_load_explicit(&overflow.allocs, memory_order_relaxed);
    b += atomic_load_explicit(&overflow.bytes, memory_order_relaxed);
    pthread_mutex_unlock(&retire_lock);
    *allocs = a;
    *bytes = b;
}

void *malloc(size_t size)
{
    if (!counting())
        return __libc_malloc(size);
    void *p = __libc_malloc(size);
    count(p);
    return p;
}

void *calloc(size_t n, size_t size)
{
    if (!counting())
        return __libc_calloc(n, size);
    void *p = __libc_calloc(n, size);
    count(p);
    return p;
}

void *realloc(void *old, size_t size)
{
    if (!counting())
        return __libc_realloc(old, size);
    void *p = __libc_realloc(old, size);
    count(p);
    return p;
}

void *reallocarray(void *old, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, total);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t size)
{
    if (!counting())
        return __libc_memalign(align, size);
    void *p = __libc_memalign(align, size);
    count(p);
    return p;
}

void *aligned_alloc(size_t align, size_t size)
{
    return memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = memalign(align, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
