/* SPDX-License-Identifier: MIT */
/*
 * cctx — Go's context for C.
 *
 * A tree of contexts through which cancellation, deadlines and request-scoped
 * values flow from a caller to everything it starts, across threads and
 * blocking calls. Each call's comment states its behaviour, including the
 * choices where Go's package gives no answer.
 *
 * Conventions:
 *  - Every call is thread-safe on any context the caller holds a reference to.
 *  - Thread cancellation (pthread_cancel): no call of this header is a
 *    cancellation point. On a thread with a cancel pending a call finishes
 *    what it does (cctx_cancel signals the done descriptor and reaches
 *    every descendant, cctx_release closes the descriptor and lets go of
 *    the parent, cctx_dump and cctx_cancel_and_wait's report are written
 *    whole and let go of what they listed, cctx_trace_flush writes the
 *    trace), and the cancel acts at the thread's next cancellation point.
 *    The waits (cctx_wait, cctx_sleep, cctx_wait_any, cctx_cancel_and_wait)
 *    are none either: a cancel sent while one blocks acts after it returns.
 *    An after-function or a value destructor that a call runs is the
 *    program's code (see cctx_after_func).
 *  - Time is int64_t nanoseconds on cctx_now()'s monotonic clock. Deadline
 *    arithmetic saturates and never overflows: now + a huge timeout is
 *    CCTX_NO_DEADLINE, "no deadline". Only the fake clock can stand at
 *    INT64_MAX, the end of time: there every deadline has been reached, so
 *    a context derived then with any deadline or timeout is born done.
 *  - Errors are errno values: ECANCELED, ETIMEDOUT, EINVAL, ENOMEM. Calls that
 *    return a pointer return NULL and set errno.
 *  - Creating, cancelling, releasing and waiting calls are macros over *_at
 *    functions that record the call site; both forms are public.
 *    cctx_with_deadline and cctx_with_timeout are the *_cause_at forms with
 *    code 0 and no message: they have no _at function of their own.
 *  - Library threads. Deadlines are fired by one thread, started on first
 *    use. It runs no user code and never waits for a lock or a thread of
 *    yours: after-functions, and value destructors run by a release it would
 *    make, run on "runner" threads, started on demand (one more whenever
 *    work comes and none is idle, up to 256 running after-functions, and 4
 *    more for the library's own work: finishing a deadline's firing,
 *    dropping references, waking waits; one idle for 2 s exits). So a slow
 *    or blocking after-function never delays another context's deadline,
 *    and even with 256 of them blocked, deadlines still fire and
 *    cctx_wait_any, cctx_cond_wait and groups still wake (a 257th
 *    after-function waits for one of them to return). The library's own
 *    work can still run user code (a value destructor a release runs),
 *    which then holds one of those 4 while it blocks; the after-functions
 *    of a context ended there (by a watched signal, a release, such a
 *    destructor) wait for one of the 256, as a deadline's do. Only when no
 *    runner thread exists and none can be created (out of threads or
 *    memory) does the timer thread run that work itself. When runners exist
 *    but all are busy and no more can be created, the thread that ended the
 *    context (the timer thread, for a deadline) runs the library's wakers
 *    itself, the timer thread finishes a firing itself, and the signal
 *    thread delivers a watched signal itself (<cctx/signal.h>): a blocked
 *    after-function still holds up no deadline, wait, grace period nor
 *    watched signal of another context. The user's after-functions still go
 *    to the runners then, but a release made there may be a context's last,
 *    and then runs its value destructors and a grace context's stops on that
 *    thread, as when no runner exists. (Handing work to a runner takes a
 *    small block; out of memory, a few blocks kept for that case serve, and
 *    only when they are all in use too does the timer thread do the work.)
 *    Library threads have every signal blocked. User code that a library
 *    thread runs (an after-function, a value destructor) and changes its
 *    thread's signal mask or cancellation state puts them back before it
 *    returns: a runner does not reset them between jobs (that would cost a
 *    system call per after-function), so the next job, and the library's
 *    own work on that thread, would run with them. Library threads keep
 *    running while exit() runs atexit handlers and destructors, so
 *    deadlines keep firing and after-functions keep running until the
 *    process ends; nothing of the library is torn down at exit.
 *  - fork(). A child keeps every context, armed deadline and queued
 *    after-function, but starts no thread in the fork handlers: the timer
 *    thread and the runners start on the child's first call that arms a
 *    deadline or may wait for one (a derivation with a deadline, cctx_wait,
 *    cctx_sleep, cctx_wait_any, cctx_cancel_and_wait, cctx_done_fd,
 *    cctx_after_func, cctx_after_stop, the last cctx_release of a grace
 *    context, and the waits of <cctx/io.h>: cctx_mutex_lock, cctx_sem_wait
 *    and cctx_thread_join too, which only look at ctx between slices), and
 *    then inherited deadlines fire in the child too. A thread that cannot
 *    start then (no memory, a thread limit) is tried again by the next such
 *    call, by a wait in progress every 10 ms (cctx_wait, cctx_sleep,
 *    cctx_wait_any, cctx_cancel_and_wait, a cctx_cancel that waits for an
 *    earlier cancellation's marking to finish, the waits of <cctx/io.h> on
 *    a descriptor, cctx_proc_wait of <cctx/proc.h>, which looks for the
 *    exit every 10 ms then, a cctx_group_go blocked on a full group and a
 *    cctx_group_wait of <cctx/group.h>, and cctx_cond_wait, unless its
 *    condition variable keeps a clock other than CLOCK_REALTIME and the
 *    libc lacks glibc 2.30's pthread_cond_clockwait), and by a
 *    cctx_mutex_lock, cctx_sem_wait or cctx_thread_join in progress at each
 *    slice, until it starts. A runner that is busy is none there: in a child
 *    forked from an after-function the runner is the thread that called
 *    fork(), which goes on in that after-function. While none can start, the
 *    call that tried runs the library's wakers that the child inherited
 *    queued (a grace period's clock, its parent ended just before the
 *    fork), as the thread that ends a context does when every runner is
 *    busy (above). A child never uses its parent's done descriptors:
 *    cctx_done_fd makes it its own (the inherited copies stay open,
 *    close-on-exec), so neither process's cancellation wakes the other's
 *    pollers. As with any lock, a context that another thread was
 *    using at the moment of the fork (deriving from it, cancelling it) may
 *    block a child thread that touches it; it never stalls the child's
 *    timer, so the child's own deadlines always fire.
 *    A deadline that the timer thread, a runner or a fake-clock advance on
 *    another thread was firing at that very moment (taken off the timer's
 *    heap, its context not yet marked) is fired in the child too, first
 *    thing, once the child's timer thread and runners start. A fork from
 *    an after-function lets the cancellation that runs it go on in the
 *    child: a fork waits for a cctx_after_stop on another thread that is
 *    taking a registration out of that cancellation's queue (a matter of
 *    instructions), so the child's copy of the queue is whole.
 */
#ifndef CCTX_H
#define CCTX_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CCTX_API
#else
#define CCTX_API __attribute__((visibility("default")))
#endif

/* ---- Version ---------------------------------------------------------------- */

/* The version of these headers; the build reads it from here, so this is its
 * one source. Before 1.0 a minor version may change the API and the ABI. */
#define CCTX_VERSION_MAJOR 0
#define CCTX_VERSION_MINOR 3
#define CCTX_VERSION_PATCH 0
#define CCTX_VERSION_STRING "0.3.0"
/* One number that compares: 300 for 0.3.0, 10203 for 1.2.3. */
#define CCTX_VERSION \
    (CCTX_VERSION_MAJOR * 10000 + CCTX_VERSION_MINOR * 100 + CCTX_VERSION_PATCH)
/* The version of the library linked at run time ("0.3.0"), which may differ
 * from CCTX_VERSION_STRING when a shared library was upgraded alone. */
CCTX_API const char *cctx_version(void);

#ifdef __cplusplus /* CCTX__AS: a cast that C++'s -Wold-style-cast takes (internal) */
#define CCTX__AS(type, v) (static_cast<type>(v))
#else
#define CCTX__AS(type, v) ((type)(v))
#endif

/* ---- Time ---------------------------------------------------------------- */

#define CCTX_NSEC(n) CCTX__AS(int64_t, n)
#define CCTX_USEC(n) (CCTX__AS(int64_t, n) * INT64_C(1000))
#define CCTX_MSEC(n) (CCTX__AS(int64_t, n) * INT64_C(1000000))
#define CCTX_SEC(n) (CCTX__AS(int64_t, n) * INT64_C(1000000000))
#define CCTX_NO_DEADLINE INT64_MAX

/* The library's clock: CLOCK_MONOTONIC, or the fake clock of <cctx/testing.h>
 * while it runs. */
CCTX_API int64_t cctx_now(void);

/* ---- 1. Contexts and references -------------------------------------------- */

typedef struct cctx cctx_t;
/* The right to cancel one context. It names the same object as the context, so
 * it is valid exactly as long as the context is. */
typedef struct cctx_cancel cctx_cancel_t;

/* The two roots, static and never freed: never canceled, no deadline, no
 * values; named "background" and "todo" (Go's Background and TODO: use todo
 * where the right context is not known yet). Both calls always return the
 * same context; cctx_ref and cctx_release do nothing on them, so releasing a
 * root is harmless. */
CCTX_API cctx_t *cctx_background(void);
CCTX_API cctx_t *cctx_todo(void);

/* cctx_ref returns ctx (NULL for NULL). On the two static roots both calls do
 * nothing. When the last reference to a cancelable context goes, it is
 * canceled (ECANCELED, "context canceled", origin: the releasing call), so its
 * after-functions run (on the releasing thread, with cctx_after_func's one
 * exception, where they are handed to runners and may run after the free),
 * then it is detached and freed, and its parent loses
 * the reference the child held. It has no live children then: each holds a
 * reference on it, so a parent outlives its children. Releasing a long chain
 * is a loop, never a recursion.
 * Over-release (a release with no reference left) is a use after free: the
 * memory may already be reused. CCTX_DEBUG=checks always catches it (the
 * context is kept as a tombstone), reports the sites on stderr and aborts.
 * Without it the library catches it only while the memory still holds the
 * context (a release that finds the count at zero reports and aborts);
 * once reused, the damage is that of any double free. */
CCTX_API cctx_t *cctx_ref(cctx_t *ctx);
CCTX_API void cctx_release_at(cctx_t *ctx, const char *file, int line, const char *func);
#define cctx_release(ctx) cctx_release_at((ctx), __FILE__, __LINE__, __func__)

static inline void cctx__auto_release(cctx_t **ctx)
{
    cctx_release_at(*ctx, __FILE__, __LINE__, "CCTX_AUTO");
}
/* Releases a local context when it goes out of scope (GCC and Clang). */
#define CCTX_AUTO __attribute__((cleanup(cctx__auto_release)))

/* CCTX_VET (off unless you define it before including <cctx.h>): for users
 * who also run `gcc -fanalyzer`, marks the derivations below as allocators
 * whose result cctx_release_at frees (GCC 11+'s malloc(deallocator, 1)) and
 * whose result must be used (warn_unused_result). The analyzer then finds a
 * leak on an early return, a double release and a use after release, and
 * models CCTX_AUTO. Its limits: passing the context to any function (a
 * borrow such as cctx_sleep, or deriving a child) ends its tracking, so a
 * leak through a loop's `continue` or a forgotten cctx_ref goes unseen, and
 * the valid `cctx_ref(c); cctx_release(c); cctx_release(c);` is reported as
 * a double free. cctx-vet (tools/vet) has none of these limits. Nothing
 * here says the arguments are non-null: the library checks them. */
#if defined(CCTX_VET) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define CCTX__OWNED __attribute__((malloc(cctx_release_at, 1), warn_unused_result))
#elif defined(CCTX_VET) && defined(__GNUC__)
#define CCTX__OWNED __attribute__((warn_unused_result))
#else
#define CCTX__OWNED
#endif

/* ---- 2. Deriving contexts ------------------------------------------------- */

/* Each returns a new context holding one reference that the caller owns, or
 * NULL with errno EINVAL (NULL parent, NULL key) or ENOMEM (nothing changed).
 * `cancel` may be NULL. A child of a context that is already done is born done
 * with the parent's error and cause.
 *
 * Deadlines: the effective deadline is the earliest on the chain. A deadline
 * that is not earlier than the parent's, or that is CCTX_NO_DEADLINE, gives a
 * plain cancelable context (the parent's deadline, if any, wins and its cause
 * is the one reported). A deadline at or before cctx_now() gives a context
 * born done with ETIMEDOUT whose cause names this call. A negative timeout is
 * such a deadline; a timeout too large to add saturates to no deadline.
 * Deadlines found due together (the timer thread woke late, or they lie
 * close) fire earliest first, so a child whose own deadline came before its
 * parent's reports its own cause, unless another thread held the child's
 * lock as its deadline fired: marking it is then left to a runner thread,
 * and the parent's ending may reach it first. */
CCTX_API CCTX__OWNED cctx_t *cctx_with_cancel_at(cctx_t *parent, cctx_cancel_t **cancel,
                                     const char *file, int line, const char *func);
CCTX_API CCTX__OWNED cctx_t *cctx_with_deadline_cause_at(cctx_t *parent, int64_t deadline, int code,
                                             const char *msg, cctx_cancel_t **cancel,
                                             const char *file, int line, const char *func);
CCTX_API CCTX__OWNED cctx_t *cctx_with_timeout_cause_at(cctx_t *parent, int64_t timeout, int code,
                                            const char *msg, cctx_cancel_t **cancel,
                                            const char *file, int line, const char *func);
/* The key is compared by address. destroy(value), if given, runs once when the
 * context is freed (also when the derivation itself fails with ENOMEM, so the
 * caller never has to clean up a value it handed over; not on EINVAL), on the
 * thread that drops the last reference: the program's, or a runner (see the
 * top of this file) when the last one was the library's (a deadline's
 * firing, a signal's delivery, a dump). Never the thread that fires
 * deadlines, nor the signal, inspect or laggy thread, unless no runner can
 * be started. */
CCTX_API CCTX__OWNED cctx_t *cctx_with_value_at(cctx_t *parent, const void *key, void *value,
                                    void (*destroy)(void *value),
                                    const char *file, int line, const char *func);
/* The parent's values; no deadline; never canceled (Go 1.21's WithoutCancel). */
CCTX_API CCTX__OWNED cctx_t *cctx_without_cancel_at(cctx_t *parent, const char *file, int line,
                                        const char *func);

#define CCTX__SITE __FILE__, __LINE__, __func__
#define cctx_with_cancel(parent, cancel) cctx_with_cancel_at((parent), (cancel), CCTX__SITE)
#define cctx_with_deadline(parent, deadline, cancel) \
    cctx_with_deadline_cause_at((parent), (deadline), 0, NULL, (cancel), CCTX__SITE)
#define cctx_with_timeout(parent, timeout, cancel) \
    cctx_with_timeout_cause_at((parent), (timeout), 0, NULL, (cancel), CCTX__SITE)
#define cctx_with_deadline_cause(parent, deadline, code, msg, cancel) \
    cctx_with_deadline_cause_at((parent), (deadline), (code), (msg), (cancel), CCTX__SITE)
#define cctx_with_timeout_cause(parent, timeout, code, msg, cancel) \
    cctx_with_timeout_cause_at((parent), (timeout), (code), (msg), (cancel), CCTX__SITE)
#define cctx_with_value(parent, key, value, destroy) \
    cctx_with_value_at((parent), (key), (value), (destroy), CCTX__SITE)
#define cctx_without_cancel(parent) cctx_without_cancel_at((parent), CCTX__SITE)

/* ---- 3. Cancelling -------------------------------------------------------- */

/* Idempotent and thread-safe; the first cancellation wins. When it returns,
 * cctx_err of the context and of every descendant is non-zero (if another
 * thread's cancellation reached part of the tree first, this call waits for
 * that thread to finish marking its part). After-functions run on the calling
 * thread after the marking, outside every lock (but in code that a runner
 * runs for the library, which hands them to runners: see cctx_after_func).
 * cctx_cancel(NULL) does nothing. A NULL msg means "context canceled".
 *
 * Allocation: on a context made by cctx_with_cancel, cctx_cancel and
 * cctx_cancel_cause without a message allocate nothing: the cause is kept in
 * the context itself, with a pointer to a record of the call site that the
 * macro makes once per site (static, with GCC and Clang; define
 * CCTX_NO_STATIC_SITE, or use another compiler, and they call the _at
 * functions instead). One that never was in a list (its parent can never
 * end) keeps its cause so even with children. One in its parent's list,
 * with no child or after-function of its own, canceled without a code
 * (cctx_cancel, or a code of 0; CCTX_TRACE unset) keeps it where it
 * stands and stays in that list until its last release takes it out (so
 * cctx_dump shows it, done, under its parent until then): the cancel takes
 * no lock of the parent's, so threads that derive from one parent and
 * cancel under it pass the parent's cache line once per child, not twice
 * (for a time beyond 2^60 ns either side of the clock's zero, it goes as
 * with a code). With a code, it leaves the list at once, as in Go, unless
 * its own lock is busy at that moment or its parent has ended and is still
 * marking its children. Those take one allocation instead, as
 * do a context in a list that still has children or after-functions, the
 * _at functions (a site given by hand), a message, and a deadline context's
 * cause. */
CCTX_API void cctx_cancel_at(cctx_cancel_t *cancel, const char *file, int line, const char *func);
CCTX_API void cctx_cancel_cause_at(cctx_cancel_t *cancel, int code, const char *msg,
                                   const char *file, int line, const char *func);

/* ABI: the site record the cancel macros make, one per call site, static
 * and never written; only its address is passed. Its three fields and their
 * order are fixed. Not for direct use. */
struct cctx__site {
    const char *file;
    const char *func;
    int line;
};
CCTX_API void cctx__cancel_at_site(cctx_cancel_t *cancel, int code, const char *msg,
                                   const struct cctx__site *site);

#if !(defined(__GNUC__) || defined(__clang__)) || defined(CCTX_NO_STATIC_SITE)
#define cctx__cancel_cause_inline(cancel, code, msg)                                               \
    cctx_cancel_cause_at((cancel), (code), (msg), CCTX__SITE)
#else
#define cctx__cancel_cause_inline(cancel, code, msg)                                               \
    __extension__({                                                                                \
        static const struct cctx__site cctx__site_ = {__FILE__, __func__, __LINE__};               \
        cctx__cancel_at_site((cancel), (code), (msg), &cctx__site_);                               \
    })
#endif
#define cctx__cancel_inline(cancel) cctx__cancel_cause_inline((cancel), 0, NULL)
#define cctx_cancel(cancel) cctx__cancel_inline(cancel)
#define cctx_cancel_cause(cancel, code, msg) cctx__cancel_cause_inline((cancel), (code), (msg))

/* ---- 4. Reading a context ------------------------------------------------- */

/* 0 while active, ECANCELED or ETIMEDOUT after; EINVAL for NULL. One atomic
 * load for a cancelable context, made in the caller (an inline fast path:
 * define CCTX_NO_INLINE to call the library instead); a value context asks
 * its nearest cancelable ancestor. */
CCTX_API int cctx_err(const cctx_t *ctx);
/* false when there is no deadline on the chain (or ctx is NULL). */
CCTX_API bool cctx_deadline(const cctx_t *ctx, int64_t *deadline);
/* deadline - now, CCTX_NO_DEADLINE if none (or ctx is NULL). */
CCTX_API int64_t cctx_remaining(const cctx_t *ctx);
/* The value of the nearest context on the chain with this key, or NULL
 * (also for a NULL ctx or key, with errno EINVAL). */
CCTX_API void *cctx_value(const cctx_t *ctx, const void *key);

typedef struct cctx_cause {
    int err;          /* 0, ECANCELED or ETIMEDOUT, as cctx_err                   */
    int code;         /* the code given with the cause, 0 if none                  */
    const char *msg;  /* never NULL when err != 0                                   */
    const char *file; /* where the cancellation started: the cctx_cancel call, the */
    int line;         /* releasing call, or the cctx_with_deadline/timeout call    */
    const char *func; /* whose deadline fired                                      */
    int64_t when;     /* cctx_now() at the moment of cancellation                  */
} cctx_cause_t;
/* Fills out (all zero/NULL while active) and returns out->err; EINVAL for a
 * NULL argument. Strings stay valid while the caller holds ctx. A line
 * outside 0 to 2^28-1 (a site given to a _at call by hand) is clamped. A
 * cancellation that could not allocate its record (out of memory) leaves a
 * cause with the default message, file and func "?", and line, code and
 * when 0. */
CCTX_API int cctx_cause(const cctx_t *ctx, cctx_cause_t *out);

/* ---- 5. Waiting ----------------------------------------------------------- */

/* Readable (POLLIN) once ctx is done; never read, write or close it. Made on
 * first request (an eventfd on Linux; a pipe elsewhere, and in a build with
 * -DCCTX_PORTABLE=ON). A context that can never end shares one descriptor
 * that never becomes readable, one per process: a child of fork() makes its
 * own, as for any context. -1 with errno (EINVAL, EMFILE, ENFILE, ENOMEM) on
 * failure; EMFILE also when the lowest free descriptor is numbered 2^21-1 or
 * more (the library keeps the number in 21 bits; Linux allows no such
 * number unless fs.nr_open is raised above its default). */
CCTX_API int cctx_done_fd(cctx_t *ctx);

/* Timeouts below are measured on cctx_now()'s clock: under the fake clock they
 * end when cctx_fake_clock_advance moves the clock past them. A negative
 * timeout waits without limit (on a context that can never end, forever, as
 * receiving from Go's nil Done channel does). */

/* Returns cctx_err(ctx) once done, 0 if the timeout passed first, EINVAL for
 * NULL, ENOMEM if a fake-clock wait could not be set up. With a zero timeout
 * (a poll, Go's select with a default) it is cctx_err's inline load. */
CCTX_API int cctx_wait_at(const cctx_t *ctx, int64_t timeout, const char *file, int line,
                          const char *func);
/* 0 after the full duration, else cctx_err(ctx) (at once if already done);
 * EINVAL for NULL; ENOMEM, at once, if a fake-clock wait could not be set
 * up (as cctx_wait). A zero or negative duration returns cctx_err(ctx) at
 * once, as Go's time.Sleep returns at once (not the wait without limit of
 * a negative timeout above). */
CCTX_API int cctx_sleep_at(cctx_t *ctx, int64_t duration, const char *file, int line,
                           const char *func);
/* The lowest index of a done context, or -1: errno ETIMEDOUT when the timeout
 * passed first, EINVAL for a NULL array or element, n == 0 or n above
 * INT32_MAX (an index must fit the int returned), ENOMEM. */
CCTX_API int cctx_wait_any_at(cctx_t *const *ctxs, size_t n, int64_t timeout,
                              const char *file, int line, const char *func);
#define cctx_wait(ctx, timeout) cctx__wait_inline((ctx), (timeout), CCTX__SITE)
#define cctx_sleep(ctx, duration) cctx_sleep_at((ctx), (duration), CCTX__SITE)
#define cctx_wait_any(ctxs, n, timeout) cctx_wait_any_at((ctxs), (n), (timeout), CCTX__SITE)

/* Inline fast paths. cctx_err, and cctx_wait with a zero timeout (Go's
 * select with a default), answer from one load in the caller when the
 * context's state word says all there is to say, and call the library
 * otherwise: for a value context, which asks its ancestor; for a context
 * released under CCTX_DEBUG=checks, which is then reported; for NULL.
 *
 * ABI rule (binaries compiled with these paths rely on it, so changing it
 * changes the SONAME): the first 32 bits of every context are its state
 * word, read with an acquire load; when none of its bits 8-31 is set, bits
 * 0-7 are cctx_err's answer. Define CCTX_NO_INLINE before including <cctx.h>
 * to call the library every time (the exported cctx_err and cctx_wait_at
 * stay; the fallback name is object-like, so that cctx_wait's CCTX__SITE
 * still expands into three arguments). The calls are kept out of line and
 * marked cold, so that the compiler lays out the answer from the load as the
 * straight path: a poll in a tight loop then takes no jump but the loop's. */
#if defined(__GNUC__) && !defined(CCTX_NO_INLINE)
static __attribute__((cold, noinline, unused)) int cctx__err_call(const cctx_t *ctx)
{
    return cctx_err(ctx);
}
static __attribute__((cold, noinline, unused)) int
cctx__wait_call(const cctx_t *ctx, const char *file, int line, const char *func)
{
    return cctx_wait_at(ctx, 0, file, line, func);
}
static inline int cctx__err_inline(const cctx_t *ctx)
{
    if (ctx) {
        uint32_t state = __atomic_load_n(CCTX__AS(const uint32_t *, CCTX__AS(const void *, ctx)),
                                         __ATOMIC_ACQUIRE);
        if (__builtin_expect(!(state & ~UINT32_C(0xff)), 1))
            return CCTX__AS(int, state);
    }
    return cctx__err_call(ctx);
}
static inline int cctx__wait_inline(const cctx_t *ctx, int64_t timeout, const char *file,
                                    int line, const char *func)
{
    if (timeout != 0)
        return cctx_wait_at(ctx, timeout, file, line, func);
    if (ctx) {
        uint32_t state = __atomic_load_n(CCTX__AS(const uint32_t *, CCTX__AS(const void *, ctx)),
                                         __ATOMIC_ACQUIRE);
        if (__builtin_expect(!(state & ~UINT32_C(0xff)), 1))
            return CCTX__AS(int, state);
    }
    return cctx__wait_call(ctx, file, line, func);
}
#define cctx_err(ctx) cctx__err_inline(ctx)
#else
#define cctx__wait_inline cctx_wait_at
#endif

/* ---- 6. After-functions --------------------------------------------------- */

/* Caller-owned storage; registering allocates nothing. Zero it (or let
 * cctx_after_func fill it) before use; it must not move while registered.
 * The library never touches it after fn has returned, so it may be freed or
 * registered again as soon as fn has had an effect the caller can see (a
 * flag fn set, a condition fn signalled), with no cctx_after_stop; or once
 * cctx_after_stop has returned; or by fn itself after fn has stopped it.
 * Registering it again while it is still registered is undefined, as a
 * second free of a block is (the list it is in is cut: a cancel may never
 * end, another registration may be lost); CCTX_DEBUG=checks reports a
 * second registration on the same context and aborts. A child of fork()
 * inherits every registration, and reads it when its context ends there;
 * the stacks of the parent's other threads are not the child's (new
 * threads may be given their memory), so a registration kept on one of
 * them must be stopped before the fork, or its context never ended in the
 * child. */
typedef struct cctx_after {
    void *opaque[8];
} cctx_after_t;

/* fn(arg) runs exactly once after ctx is done, outside the library's locks,
 * unless cctx_after_stop stops it first: on the thread that cancelled (or
 * released) ctx, before that call returns; for a deadline, on a runner thread
 * (see the top of this file), never on the thread that fires deadlines; under
 * the fake clock, on the thread that advances it, before the advance returns;
 * for a signal of <cctx/signal.h>, on a runner too. One exception to the
 * first: a cancel or release made by user code that a runner runs for the
 * library (a value destructor of a context a deadline, a signal or a dump
 * let go) hands fn to a runner of its own and returns at once, so that
 * code must stop fn (cctx_after_stop) before it frees reg's storage.
 * If ctx is already done it runs now, before this returns. On a context that
 * can never end it is registered and never runs. Those that run on the
 * thread that cancelled run one after another, each context's last
 * registered first (no order is promised between different contexts);
 * those of a deadline or a signal start in that order, each on a runner of
 * its own, so they may run at the same time. The library's own waits on
 * ctx (cctx_wait, cctx_wait_any, cctx_cond_wait, a blocked cctx_group_go)
 * are woken without waiting for ctx's after-functions (before them on the
 * cancelling thread; on runners, at the same time), so fn may wait for a
 * thread blocked in one of them. fn must return: leaving it
 * by longjmp, pthread_exit or a thread cancellation is undefined. ctx is
 * not passed to fn and is not kept alive for it: when fn runs on a runner,
 * the last reference may go before fn starts or while it runs, and ctx be
 * freed, so an fn that reads ctx (its error, its cause) must hold a
 * reference of its own (cctx_ref before registering, cctx_release in fn;
 * and by the registrant when fn never runs: after a cctx_after_stop that
 * returned true, or on a context that can never end). 0, or EINVAL for
 * NULL ctx, reg or fn. */
CCTX_API int cctx_after_func_at(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                                const char *file, int line, const char *func);
#define cctx_after_func(ctx, reg, fn, arg) cctx_after_func_at((ctx), (reg), (fn), (arg), CCTX__SITE)
/* true: fn will never run. That includes an fn whose context has ended but
 * which has not started yet (queued behind other after-functions): it is
 * taken out at once, without waiting for whoever would have run it, so two
 * after-functions that stop each other's queued registrations cannot
 * deadlock. false: it ran, is running, or reg was already stopped. For a
 * running fn this call first waits for it to return, except when called
 * from inside fn itself, or from inside an after-function whose own
 * registration that fn is (directly, or through other after-functions)
 * waiting to stop: two running after-functions that stop each other would
 * otherwise wait forever, so the second stop returns false at once. Storage
 * that was zeroed and never registered also gives false, except under
 * CCTX_DEBUG=checks, which reports it as a misuse (with the call site) and
 * aborts. */
CCTX_API bool cctx_after_stop(cctx_after_t *reg);
CCTX_API bool cctx_after_stop_at(cctx_after_t *reg, const char *file, int line, const char *func);
#define cctx_after_stop(reg) cctx_after_stop_at((reg), CCTX__SITE)

/* ---- 7. Seeing inside ----------------------------------------------------- */

/* Switches, read once from the environment before main (and ignored, as
 * if unset, in a set-user-ID or set-group-ID program, or, on Linux, one
 * with file capabilities: they write files and make directories where the
 * caller says):
 *
 *  CCTX_DEBUG, a comma-separated list:
 *   trees   keep a registry of every live context, so that cctx_dump(NULL, ...)
 *           can show every tree of the process. Off by default: it costs a
 *           lock on every derive and free, which the library otherwise
 *           never takes when deriving from a root.
 *   leaks   (implies trees) at exit, list on stderr every context never
 *           released: grouped by creation site with counts, the 10 biggest
 *           sites first, each with up to 5 of its contexts (address, name,
 *           state, references). It first waits, at most a second, for dumps
 *           under way on other threads (cctx_dump, the inspect switch's),
 *           and for the references they left a runner to drop, which are
 *           not leaks; an after-function that such a drop runs and that
 *           blocks delays exit by no more. A context let go of while the
 *           report walks the registry (by a thread still running at exit)
 *           is not listed, nor what it alone held: the report's reference
 *           is then the last, so the context's end and free (after-functions,
 *           value destructors) run on the exiting thread. A child of fork()
 *           made while another thread's dump was under way (the child has
 *           no such thread) lists the contexts that dump held as well: it
 *           cannot tell that reference from the program's.
 *   strict  with leaks: if any context leaked, exit with status 1 (after
 *           the report; from an atexit handler, so after the program's own).
 *           The stdio streams are flushed first, as exit() would; a stream
 *           whose lock another thread holds (one blocked reading stdin)
 *           is waited for at most a second, then left unflushed.
 *   laggy[=DURATION]  (implies trees) a context still referenced
 *           DURATION after it was canceled (200ms, 1s, 500us, 10ns; default
 *           1s) is reported once on stderr: creation site, name, references
 *           and cause, as a line of cctx_dump's text form. A library thread
 *           looks every DURATION/2 (1 ms to 1 s), so a report comes between
 *           DURATION and 1.5 DURATION after the cancel. It lets go of every
 *           context it looked at before its reports reach stderr, so a
 *           stderr that blocks holds no context.
 *   inspect (implies trees) the process serves its live tree (cctx_dump(NULL))
 *           on a Unix socket, $CCTX_INSPECT_DIR/PID.sock or /tmp/cctx-EUID/PID.sock,
 *           for `cctx-inspect PID [--json|--dot|--html]`. Only the process's
 *           own user can reach it: the directory must be that user's, mode
 *           0700 (made so if missing; otherwise the switch stays off, said
 *           on stderr), the socket is mode 0600, and each peer's
 *           credentials are checked (SO_PEERCRED). One library thread
 *           answers; the program's threads never pause (the dump takes a
 *           registry shard lock at a time and a reference on each context).
 *           The socket is removed at exit. A child of fork() serves nothing
 *           and runs no laggy thread. A program that closes the socket's
 *           descriptor (daemons close what they did not open) stops the
 *           serving: said on stderr, the socket removed, and a number the
 *           program gets again for its own socket is left alone (checked
 *           before each accept: a close and a reuse between the check and
 *           the accept could still lose the program one connection).
 *   checks  (implies trees) released contexts are kept as tombstones (the
 *           last 65,536), so that touching one is caught instead of reading
 *           reused memory: over-release, use after free (derive, ref, cancel
 *           through a stale handle, wait, read, name, dump),
 *           cctx_after_stop on storage never registered and
 *           cctx_after_func on storage still registered on the same
 *           context are reported on
 *           stderr with the call site (or, for calls that take none, the
 *           caller's address as object+offset for addr2line), where the
 *           context was made and where it was released, then abort().
 *  CCTX_TRACE, a file's path:
 *           write a Chrome trace-event JSON file (open it in
 *           https://ui.perfetto.dev or chrome://tracing): one track per
 *           thread; creations (with parent), cancellations (origin, error,
 *           cause; "deadline" when a deadline fired) with a flow arrow to
 *           every cancelable context each one reached, after-functions,
 *           releases. Each %p in the path becomes the process id. The file
 *           is opened at start-up (a path that cannot be written, or that
 *           is not a regular file, as a pipe or a terminal, is said on
 *           stderr, and tracing stays off) and written at exit (after
 *           waiting, at most a second, for cancellations under way on other
 *           threads, after-functions included), when a thread exits, and by
 *           cctx_trace_flush; it is a complete JSON
 *           document after each write. Each thread buffers its last 16,384
 *           events; older ones are dropped and counted in the file's
 *           otherData, and a slice or arrow whose start was dropped is left
 *           out; a slice whose end was dropped ends at the newest dropped
 *           event. Slices nested more than 32 deep on a thread are left
 *           out. A child of fork() does not trace (exec'd programs read
 *           CCTX_TRACE anew: use %p to give each its own file). A program
 *           that closes the file's descriptor ends the tracing (said on
 *           stderr at the next write), and a file it opens under the same
 *           number is not written (checked before each write, not during
 *           it).
 * With every switch off, making a context pays one predictable branch on a
 * global word, and nothing else on the hot paths changes (BENCHMARKS.md
 * counts the instructions). */

/* Writes the events recorded since the last flush to CCTX_TRACE's file,
 * which is a complete JSON document after each flush. 0 (also when tracing
 * is off), or an errno value (the file could not be opened or written). */
CCTX_API int cctx_trace_flush(void);

/* The name is copied. EINVAL for NULL ctx or for the static roots (their
 * names are fixed: "background" and "todo"); ENOMEM. A NULL name clears it.
 * A string cctx_name returns stays valid until ctx is freed, even if ctx is
 * renamed or cleared meanwhile (by another thread, say, while a dump reads
 * it): every name ctx was given is kept until then. Setting a name ctx
 * already had costs no memory, so renaming among a few names never grows;
 * a context given ever new names keeps them all while it lives.
 * cctx_name returns NULL for a context without a name (errno untouched) and
 * for NULL ctx (errno EINVAL). */
CCTX_API int cctx_set_name(cctx_t *ctx, const char *name);
CCTX_API const char *cctx_name(const cctx_t *ctx);

/* CCTX_DUMP_HTML writes one self-contained page (no network access needed)
 * that shows the same tree as CCTX_DUMP_JSON, which it embeds: collapsible,
 * coloured by state, each deadline as it stood at the dump ("in 2.5 s",
 * labelled "at dump time": the page does not count down from its opening),
 * causes with their code ("code 504") and time before the dump, details on
 * hover. */
enum { CCTX_DUMP_TEXT = 0, CCTX_DUMP_JSON = 1, CCTX_DUMP_DOT = 2, CCTX_DUMP_HTML = 3 };
/* Writes the live tree under root, oldest child first: every cancelable
 * descendant still attached, with the value contexts between them shown on
 * the way ("via"). A canceled context hands its children over as Go's does:
 * they are not shown under it (it stays listed under an active parent until
 * released). Contexts derived from a root or through cctx_without_cancel are
 * attached to nothing that can end, so they appear only when dumped
 * themselves: cctx_dump(cctx_background(), ...) shows the root alone.
 * cctx_dump(NULL, ...) writes every live context of the process, each under
 * its own parent (value and without-cancel contexts as nodes of their own):
 * the background tree, the todo tree if it has any, then contexts whose
 * parent predates the registry. It needs the registry (CCTX_DEBUG=trees,
 * leaks or checks); without it, it writes nothing and returns ENOTSUP.
 * Any dump begun once the leak report at exit (CCTX_DEBUG=leaks) has
 * begun writes nothing and returns ENOTSUP too: its references would be
 * reported as leaks.
 * The text form writes a line per context, indented two spaces a level;
 * past 40 levels the indentation stays and the line starts with its depth
 * ("[41] "), so that the dump of a deep chain stays linear in its size.
 * DOT labels are shorter than the other forms' lines: kind, name, creation
 * file and line, state or error with the cause's code and age, and the
 * deadline (the cause's message and site, the references and the children
 * are in the text and JSON forms).
 * Times are taken at one moment, the dump's. The text and DOT forms show
 * them as durations from it, to one decimal in ns, us, ms, s, min or h:
 * "deadline in 299.7 ms", "deadline passed 1.2 s ago", a cause's
 * "ended 3.4 ms ago". JSON keeps the raw values on cctx_now()'s clock
 * ("deadline", "remaining", the cause's "when"), and each tree's top object
 * ends with the dump's moment on that clock, "dump_time".
 * Names, messages and sites are written whole, whatever their bytes, and
 * never break the format: JSON (and the page around it) is valid UTF-8, with
 * each byte that is not part of well-formed UTF-8 as U+FFFD and '<' as
 * \u003c; the text form keeps one line per context, escaping quotes,
 * backslashes and control characters C-style (those of C1, U+2028 and
 * U+2029 as \uXXXX) and such bytes as \xHH; DOT has a space for a control
 * character and U+FFFD for such a byte.
 * The dump holds a reference on each context it writes. When its owner
 * lets go meanwhile, the dump's is the last: ending and freeing the
 * context (its after-functions, value destructors) is left to a runner
 * thread, so no user code runs in cctx_dump, nor on the library threads
 * of the inspect and laggy switches, which a blocking after-function would
 * otherwise hold up (only when no runner can be started does it run here).
 * The references are held while `out` is written, up to the dump's end:
 * a stream whose writes block keeps the contexts alive meanwhile, and a
 * cctx_cancel_and_wait on any of them waits for it; a pthread_cancel sent
 * meanwhile acts only after the dump returns. Where `out` may block
 * (a pipe, a socket, a cookie stream), dump into memory (open_memstream)
 * and write that, as the inspect switch does.
 * 0, EINVAL (NULL out, unknown format), ENOTSUP, ENOMEM, or EIO (out could
 * not be written: the dump flushes out at its end, so that a write error
 * shows in its result, not only at a later fflush or fclose). */
CCTX_API int cctx_dump(cctx_t *root, FILE *out, int format);

/* ---- 8. Shutdown ---------------------------------------------------------- */

/* A context for cleanup that must outlive a cancellation, but not forever
 * (flushing a log, saying goodbye to a peer, a drain). It has the parent's
 * values and is NOT canceled when the parent is: it ends `grace` after the
 * parent ends (the parent's cause.when + grace), or `grace` after this call
 * if the parent had already ended, with ETIMEDOUT, the message
 * "grace period of <d> after: <the parent's message>" (<d> as 5s, 250ms,
 * 10us or 7ns; the whole message cut at 511 bytes) and this call as its
 * origin; or earlier by its own cancel, like any cancelable context. A
 * parent that can never end gives a plain cancelable context. A zero or
 * negative grace ends it as soon as the parent ends. Its clock starts ahead
 * of the after-functions of the parent's end, and waits for none that
 * block. cctx_deadline reports
 * no deadline until the parent ends, then the grace period's end (a context
 * derived from it before that keeps its own deadline, if it had one; it
 * still ends when the grace context does). Children, after-functions,
 * cctx_wait, cctx_done_fd, release: as for cctx_with_deadline. NULL with
 * errno EINVAL (NULL parent) or ENOMEM. */
CCTX_API CCTX__OWNED cctx_t *cctx_with_grace_at(cctx_t *parent, int64_t grace,
                                                cctx_cancel_t **cancel, const char *file,
                                                int line, const char *func);
#define cctx_with_grace(parent, grace, cancel) \
    cctx_with_grace_at((parent), (grace), (cancel), CCTX__SITE)

/* Cancels the context (as cctx_cancel) and waits until nothing else holds it
 * or any of its descendants: every reference but the caller's released (the
 * caller must hold one), so no descendant is alive either, since each holds
 * a reference on its parent. Returns 0 the moment the last other holder lets
 * go (it sleeps on the reference count: a futex on Linux; no polling, but
 * for a timeout on the fake clock, which it looks at every 10 ms), or
 * ETIMEDOUT when `timeout` passed first (0: do not wait, only look once the
 * cancellation and the after-functions it ran on this thread are done;
 * negative: no limit;
 * measured as cctx_wait's). Then, if `report` is not NULL, it writes the
 * contexts still held, one line each in cctx_dump's text format (creation
 * site, name, references, cause), indented by depth under the context (as
 * cctx_dump's text form: past 40 levels, the depth in brackets): the
 * context itself, and every cancelable descendant that was alive when the
 * call began (with the value contexts between, as "via" lines) and still is
 * (a context canceled before the call has handed its descendants over to
 * that cancellation: then only the context itself is named). Without the
 * registry, only descendants reached through the lists of cancelable
 * children are named: a grace context, and a cancelable context under a
 * without-cancel one, are in no list, and show only in the references of
 * the context they derive from.
 * Value and without-cancel contexts with no cancelable descendant are not
 * listed by name: they show in the references of the context they derive
 * from. With the registry on (CCTX_DEBUG=trees, or a switch that implies
 * it) the report lists every live descendant instead, whatever its kind and
 * whenever it was canceled, each under its own parent, oldest first.
 * Holders released while the report is written are not listed; the report
 * holds each context it lists while it writes it, so a `report` stream
 * whose writes block keeps that context alive meanwhile (as cctx_dump's
 * stream does), and a pthread_cancel sent meanwhile acts only after the
 * call returns. Out of
 * memory while it gathers them, the report lists what it could (with the
 * registry, the context alone) and says so in a last line,
 * "(out of memory: ...)". With a report, and the registry off, the call
 * walks the descendants before it cancels, holding each for a moment; one
 * whose owner lets go during that moment is released by the call itself
 * once the cancellation is done (what its release frees, destructors of
 * value contexts included, is freed on the caller's thread), so a report
 * never changes the answer.
 * EINVAL for NULL (nothing else is done). ENOMEM (canceled, but neither
 * waited for nor reported) when a timeout on the fake clock could not be
 * set up. When nothing holds the context, the call costs a cancellation
 * and two loads. Two threads waiting on one
 * context each hold a reference, so neither can see the other's go: both
 * wait until their timeouts. For the same reason, a value destructor, or an
 * after-function that a context's last release runs, must not wait on an
 * ancestor of that context: the context is being freed, but still holds its
 * reference on its parent until they return, so the wait lasts its whole
 * timeout (for ever with -1). */
CCTX_API int cctx_cancel_and_wait_at(cctx_cancel_t *cancel, int64_t timeout, FILE *report,
                                     const char *file, int line, const char *func);
#define cctx_cancel_and_wait(cancel, timeout, report) \
    cctx_cancel_and_wait_at((cancel), (timeout), (report), CCTX__SITE)

#ifdef __cplusplus
}
#endif

#endif /* CCTX_H */
