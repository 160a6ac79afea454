/* SPDX-License-Identifier: MIT */
/*
 * The process timer: armed deadlines in a few 4-ary min-heaps (shards), served
 * by one thread started on first use.
 *
 * A thread arms into its own shard (assigned round-robin on first use), so
 * threads arming and disarming at once do not contend on one lock, and no
 * global lock is taken on the deadline path except to wake the timer thread
 * for a deadline earlier than it planned to wake for. Heap entries carry the
 * deadline next to the context pointer, so sifting compares without touching
 * contexts; each context keeps its shard and slot (index + 1), so disarming is
 * O(log n) too.
 *
 * Locks: a shard lock, or the wake lock, is taken alone: never two at once,
 * never a context lock under one, never one under a context lock (see
 * lock.h).
 *
 * Waking the timer thread. `sleep_until` is INT64_MAX while the thread is
 * awake and scanning, else the time it sleeps until. An armer pushes under its
 * shard lock and then, if its deadline is earlier than sleep_until, sets
 * `kicked` and signals under the wake lock. The thread resets sleep_until to
 * INT64_MAX before it scans the shards and, under the wake lock, rescans if it
 * was kicked meanwhile: an arm the scan missed always sees INT64_MAX or a
 * later value, and kicks.
 *
 * Firing pops a due entry under its shard lock and takes a reference on the
 * context (skipping one whose count reached zero: its releaser waits for that
 * shard lock to disarm it and finds it unarmed), then fires outside the lock.
 * Entries due together fire earliest first across shards, on either clock
 * (fire_due), so that a deadline never ends a context first whose own
 * deadline, in another shard, came before it.
 *
 * Under the fake clock the thread sleeps, and cctx_fake_clock_advance fires
 * due deadlines itself, on the calling thread, earliest first across shards.
 *
 * Firing on the real clock runs no user code and waits for no other thread
 * (cctx__timer_fire, firing.c): a slow after-function or destructor runs on
 * a runner (runner.c), so it never delays another deadline.
 *
 * fork(): the child gets the heaps but not the thread; the fork handlers
 * (fork.c) hold every timer lock across fork(), and the child starts the
 * thread on its first call that needs it. An entry popped for firing is in
 * no heap until its context is marked, so each popper (the timer thread, an
 * advancing thread) records it, under the shard lock it pops under, in
 * `in_flight` until the firing commits (cctx__timer_fire_committed). A fork
 * in between leaves that record, and the reference the popper took, in the
 * child without the thread: the child hands it to its own timer thread,
 * which fires it first (an orphan). A record of the thread that forks is
 * its own and stays: that thread goes on with the firing in the child.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "cctx_config.h"
#if CCTX_USE_PRCTL
#include <sys/prctl.h>
#endif

#include "internal.h"
#include "testhooks.h"

#define HEAP_SHARDS 8

struct heap_entry {
    int64_t when;
    struct cctx__timer *t;
};

struct heap_shard {
    _Atomic uint32_t lock;
    size_t n, cap;
    struct heap_entry *heap;
} __attribute__((aligned(64)));

static struct heap_shard shards[HEAP_SHARDS];
static _Atomic uint32_t next_shard;
static _Thread_local uint32_t my_shard1; /* shard + 1; 0: not assigned yet */

static struct {
    pthread_mutex_t lock; /* the wake lock */
    pthread_cond_t cond;
    int kicked;
    _Atomic int started; /* the thread runs in this process */
    _Atomic int64_t sleep_until;
} timer_thread = {.lock = PTHREAD_MUTEX_INITIALIZER, .sleep_until = INT64_MAX};

/* The firing each kind of popper has in hand (see fork above): set under the
 * shard lock the entry was popped under, or under the wake lock for an
 * orphan, both of which the fork handlers hold; cleared when the firing
 * commits, or handed to a runner's job as that is queued (runner.c). Only
 * the timer thread pops on the real clock, and advances are serialised by
 * fake_lock (a nested advance, on the same thread, puts the outer record
 * back when it is done). Not so in a child forked from inside such a firing
 * (an after-function run by an advance, or by the timer thread when no
 * runner can start): that thread goes on in the child beside the child's
 * own timer thread or advances, and a further fork may then lose a firing. */
enum { POP_REAL, POP_FAKE };
static struct {
    _Atomic(struct cctx__timer *) t;
    pthread_t owner;
} in_flight[2];
/* In a child of fork(): the records of popping threads the child lacks,
 * each with the reference its popper took; the timer thread fires them.
 * A child adds at most two to those it inherited and has not fired yet;
 * only a chain of forks each made before its child's timer thread ran,
 * each in a firing, could fill it (a further one is then lost). */
#define ORPHANS_MAX 8
static struct cctx__timer *orphans[ORPHANS_MAX];
static unsigned orphans_n;

_Atomic(cctx__timer_hook_fn) cctx__timer_popped;
_Atomic(cctx__timer_hook_fn) cctx__timer_arming;
_Atomic(cctx__timer_hook_fn) cctx__timer_armed;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fake_lock; /* see cctx__timer_set_fake */
static void init(void);
static void init_fake_lock(void);

/* ---- The heap of one shard ---------------------------------------------------- */

static void place(struct heap_shard *s, size_t i, struct heap_entry e)
{
    s->heap[i] = e;
    cctx__atomic_store_relaxed(&e.t->slot, (uint32_t)i + 1);
}

static void sift_up(struct heap_shard *s, size_t i, struct heap_entry e)
{
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (s->heap[p].when <= e.when)
            break;
        place(s, i, s->heap[p]);
        i = p;
    }
    place(s, i, e);
}

static void sift_down(struct heap_shard *s, size_t i, struct heap_entry e)
{
    for (;;) {
        size_t c = 4 * i + 1, best = i;
        int64_t least = e.when;
        for (size_t k = c; k < c + 4 && k < s->n; k++) {
            if (s->heap[k].when < least) {
                least = s->heap[k].when;
                best = k;
            }
        }
        if (best == i)
            break;
        place(s, i, s->heap[best]);
        i = best;
    }
    place(s, i, e);
}

/* Zeroing the slot is the last touch of the context here (release): a
 * releaser that reads zero without the lock may free it at once. */
static void heap_remove(struct heap_shard *s, size_t i)
{
    cctx__atomic_store_release(&s->heap[i].t->slot, 0);
    struct heap_entry last = s->heap[--s->n];
    if (i == s->n)
        return;
    if (i > 0 && last.when < s->heap[(i - 1) / 4].when)
        sift_up(s, i, last);
    else
        sift_down(s, i, last);
}

/* ---- Firing ---------------------------------------------------------------------- */

/* Pops s's earliest entry if due at now on the clock that runs (real: the
 * thread's calls, fake: the fake clock's) and returns it referenced, or NULL
 * (in *more: whether anything due may remain). */
static struct cctx__timer *pop_due(struct heap_shard *s, int64_t now, int fake, int *more)
{
    struct cctx__timer *t = NULL;
    cctx__word_lock(&s->lock);
    *more = 0;
    while (s->n > 0 && s->heap[0].when <= now &&
           cctx__atomic_load_seq_cst(&cctx__fake_on) == fake) {
        struct cctx__timer *top = s->heap[0].t;
        int referenced = cctx__try_ref(&top->c.head);
        heap_remove(s, 0);
        if (referenced) {
            t = top;
            *more = 1;
            in_flight[fake].owner = pthread_self();
            cctx__atomic_store_release(&in_flight[fake].t, t);
            break;
        }
    }
    cctx__word_unlock(&s->lock);
    cctx__timer_hook_fn popped = cctx__atomic_load_relaxed(&cctx__timer_popped);
    if (cctx__unlikely(t && popped))
        popped(t);
    return t;
}

void cctx__timer_fire_committed(void)
{
    cctx__atomic_store_release(&in_flight[POP_REAL].t, NULL);
}

void cctx__timer_fire_in_hand(struct cctx__timer *t)
{
    in_flight[POP_REAL].owner = pthread_self();
    cctx__atomic_store_release(&in_flight[POP_REAL].t, t);
}

/* Fires t, which its popper referenced; a fake firing then puts back the
 * record of the firing it is nested in (`outer`), if any. */
static void fire(struct cctx__timer *t, int fake, struct cctx__timer *outer)
{
    /* A trace written at exit also waits for the release below, which may
     * be the last one (trace.c). */
    bool tracing = cctx__debug_on(CCTX__DEBUG_TRACE);
    if (tracing)
        cctx__trace_busy(1);
    if (fake) {
        /* The advancing thread runs the after-functions before it returns. */
        cctx__cancel(&t->c, ETIMEDOUT, t->code, t->msg, t->c.head.file,
                     cctx__line(&t->c.head), t->c.head.func);
        cctx__atomic_store_release(&in_flight[POP_FAKE].t, outer);
        cctx_release(&t->c.head);
    } else {
        cctx__timer_fire(t);
    }
    if (tracing)
        cctx__trace_busy(-1);
}

/* The earliest deadline armed in s; false when s is empty. */
static bool shard_top(struct heap_shard *s, int64_t *when)
{
    cctx__word_lock(&s->lock);
    bool any = s->n > 0;
    *when = any ? s->heap[0].when : INT64_MAX;
    cctx__word_unlock(&s->lock);
    return any;
}

/* Called with the wake lock held: an orphan, recorded as in hand. */
static struct cctx__timer *take_orphan(void)
{
    if (!orphans_n)
        return NULL;
    struct cctx__timer *t = orphans[--orphans_n];
    cctx__timer_fire_in_hand(t);
    return t;
}

/* Fires the deadlines due at now on the real clock, earliest first across
 * the shards, as an advance of the fake clock does: deadlines found due
 * together (the thread woke late, or they lie close) then end in the order
 * they were due, so that a child whose own deadline came first reports its
 * own cause, not that of an ancestor whose deadline came after it (shard
 * by shard, an ancestor in a lower shard would fire first and reach the
 * child). Each shard's top is looked at once, then again after each pop
 * from it; one armed meanwhile kicks the thread, which scans again.
 * Returns the earliest deadline left, as last seen (INT64_MAX: none). */
static int64_t fire_due(int64_t now)
{
    int64_t tops[HEAP_SHARDS];
    for (int i = 0; i < HEAP_SHARDS; i++)
        shard_top(&shards[i], &tops[i]);
    for (;;) {
        int best = -1;
        int64_t least = now;
        for (int i = 0; i < HEAP_SHARDS; i++) {
            if (tops[i] <= least) {
                least = tops[i];
                best = i;
            }
        }
        if (best < 0)
            break;
        /* By the top seen, not by now: that top may be gone (disarmed), and
         * the shard's next entry may be due after another shard's top. */
        int more;
        struct cctx__timer *t = pop_due(&shards[best], least, 0, &more);
        if (t)
            fire(t, 0, NULL);
        else if (cctx__atomic_load_seq_cst(&cctx__fake_on))
            return INT64_MAX; /* the fake clock came on: its advances fire now */
        shard_top(&shards[best], &tops[best]);
    }
    int64_t next = INT64_MAX;
    for (int i = 0; i < HEAP_SHARDS; i++)
        next = tops[i] < next ? tops[i] : next;
    return next;
}

static void *timer_main(void *arg)
{
    (void)arg;
#ifdef PR_SET_TIMERSLACK
    /* The default 50 us of slack would be added to every firing. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
    pthread_mutex_lock(&timer_thread.lock);
    for (;;) {
        timer_thread.kicked = 0;
        struct cctx__timer *orphan = take_orphan();
        pthread_mutex_unlock(&timer_thread.lock);
        if (orphan) {
            fire(orphan, 0, NULL); /* due already: its popper had it in hand */
            pthread_mutex_lock(&timer_thread.lock);
            continue;
        }
        cctx__atomic_store_seq_cst(&timer_thread.sleep_until, INT64_MAX);
        int64_t next = INT64_MAX;
        if (!cctx__atomic_load_seq_cst(&cctx__fake_on))
            next = fire_due(cctx__os_now());
        pthread_mutex_lock(&timer_thread.lock);
        if (timer_thread.kicked)
            continue;
        cctx__atomic_store_seq_cst(&timer_thread.sleep_until, next);
        if (next == INT64_MAX) {
            pthread_cond_wait(&timer_thread.cond, &timer_thread.lock);
        } else {
            struct timespec ts = {next / 1000000000, next % 1000000000};
            pthread_cond_timedwait(&timer_thread.cond, &timer_thread.lock, &ts);
        }
    }
    return NULL;
}

static void kick(void)
{
    pthread_mutex_lock(&timer_thread.lock);
    timer_thread.kicked = 1;
    pthread_cond_signal(&timer_thread.cond);
    pthread_mutex_unlock(&timer_thread.lock);
}

/* Called with the wake lock held. */
/* How the timer thread is started (testhooks.h). */
_Atomic(cctx__thread_start_fn) cctx__timer_thread_start = cctx__os_thread_start;

static int start_thread(void)
{
    int err = cctx__atomic_load_relaxed(&cctx__timer_thread_start)(timer_main, NULL);
    if (err)
        return err;
    cctx__atomic_store_seq_cst(&timer_thread.started, 1);
    return 0;
}

/* ---- fork (fork.c) ---------------------------------------------------------- */

static void init_cond(void)
{
    cctx__os_cond_init_monotonic(&timer_thread.cond);
}

void cctx__timer_fork(int phase)
{
    switch (phase) {
    case FORK_PREPARE:
        pthread_mutex_lock(&timer_thread.lock);
        for (int i = 0; i < HEAP_SHARDS; i++)
            cctx__word_lock(&shards[i].lock);
        break;
    case FORK_PARENT:
        for (int i = 0; i < HEAP_SHARDS; i++)
            cctx__word_unlock(&shards[i].lock);
        pthread_mutex_unlock(&timer_thread.lock);
        break;
    default:
        /* No thread here: the child's first call that needs one starts it. */
        for (int i = 0; i < HEAP_SHARDS; i++)
            cctx__atomic_store_relaxed(&shards[i].lock, 0);
        pthread_mutex_init(&timer_thread.lock, NULL);
        init_cond();
        /* Not held across fork (an advance runs after-functions, which may
         * take any time): a fresh one, in case another thread held it. */
        init_fake_lock();
        timer_thread.kicked = 0;
        cctx__atomic_store_seq_cst(&timer_thread.started, 0);
        cctx__atomic_store_seq_cst(&timer_thread.sleep_until, INT64_MAX);
        for (int k = 0; k < 2; k++) {
            struct cctx__timer *t = cctx__atomic_load_relaxed(&in_flight[k].t);
            if (t && !pthread_equal(in_flight[k].owner, pthread_self())) {
                if (orphans_n < ORPHANS_MAX)
                    orphans[orphans_n++] = t;
                cctx__atomic_store_relaxed(&in_flight[k].t, NULL);
            }
        }
        break;
    }
}

int cctx__timer_start(void)
{
    pthread_once(&init_once, init);
    pthread_mutex_lock(&timer_thread.lock);
    bool armed = orphans_n > 0;
    pthread_mutex_unlock(&timer_thread.lock);
    for (int i = 0; i < HEAP_SHARDS && !armed; i++) {
        cctx__word_lock(&shards[i].lock);
        armed = shards[i].n > 0;
        cctx__word_unlock(&shards[i].lock);
    }
    pthread_mutex_lock(&timer_thread.lock);
    int err = cctx__atomic_load_seq_cst(&timer_thread.started) || !armed ? 0 : start_thread();
    pthread_mutex_unlock(&timer_thread.lock);
    return err;
}

static void init_fake_lock(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&fake_lock, &a);
    pthread_mutexattr_destroy(&a);
}

static void init(void)
{
    init_fake_lock();
    init_cond();
    cctx__fork_watch();
}

/* ---- Arming ---------------------------------------------------------------------- */

uint32_t cctx__timer_shard(void)
{
    if (cctx__unlikely(!my_shard1))
        my_shard1 = cctx__atomic_fetch_add_relaxed(&next_shard, 1) % HEAP_SHARDS + 1;
    return my_shard1 - 1;
}

int cctx__timer_arm(struct cctx__timer *t)
{
    cctx__child_restart();
    if (cctx__unlikely(!cctx__atomic_load_acquire(&timer_thread.started))) {
        pthread_once(&init_once, init);
        pthread_mutex_lock(&timer_thread.lock);
        int err = cctx__atomic_load_seq_cst(&timer_thread.started) ? 0 : start_thread();
        pthread_mutex_unlock(&timer_thread.lock);
        if (err)
            return err;
    }
    cctx__timer_hook_fn arming = cctx__atomic_load_relaxed(&cctx__timer_arming);
    if (cctx__unlikely(arming != NULL))
        arming(t);
    struct heap_shard *s = &shards[t->shard];
    cctx__word_lock(&s->lock);
    if (cctx__unlikely(s->n == s->cap)) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct heap_entry *heap = realloc(s->heap, cap * sizeof *heap);
        if (!heap) {
            cctx__word_unlock(&s->lock);
            return ENOMEM;
        }
        s->heap = heap;
        s->cap = cap;
    }
    s->n++;
    sift_up(s, s->n - 1, (struct heap_entry){t->deadline, t});
    cctx__word_unlock(&s->lock);
    cctx__timer_hook_fn armed = cctx__atomic_load_relaxed(&cctx__timer_armed);
    if (cctx__unlikely(armed != NULL))
        armed(t);
    /* An advance that moved the fake clock past t's deadline after the
     * caller read the clock, and scanned this shard before t was in it, has
     * not fired t, and no other will until the next advance. It stored the
     * time before it scanned, so that store happened before this load if
     * its scan took the shard lock first: here t is seen due. Then whoever
     * takes t out of the heap fires it: the caller, if it is still in, else
     * the advance (or timer thread) that popped it meanwhile, never both
     * (they would both write a cause record built into t). */
    if (cctx__unlikely(cctx__atomic_load_seq_cst(&cctx__fake_on)) &&
        t->deadline <= cctx__atomic_load_seq_cst(&cctx__fake_now)) {
        cctx__word_lock(&s->lock);
        uint32_t slot = cctx__atomic_load_relaxed(&t->slot);
        if (slot)
            heap_remove(s, slot - 1);
        cctx__word_unlock(&s->lock);
        if (slot)
            return CCTX__TIMER_DUE;
    }
    if (t->deadline < cctx__atomic_load_seq_cst(&timer_thread.sleep_until))
        kick();
    return 0;
}

void cctx__timer_disarm(struct cctx__timer *t)
{
    /* The slot goes from non-zero to zero once, under the shard lock, and the
     * armer set it before the context was handed to its caller: a zero read
     * is final, but for two cancels that can come before the arm: one from
     * above, through the source's list the context was put in first
     * (tree.c), and a grace context's own (grace.c). Both arms look for such
     * a cancel after (cctx__timer_disarm_if_ended). */
    if (!cctx__atomic_load_acquire(&t->slot))
        return;
    struct heap_shard *s = &shards[t->shard];
    cctx__word_lock(&s->lock);
    uint32_t slot = cctx__atomic_load_relaxed(&t->slot);
    if (slot)
        heap_remove(s, slot - 1);
    cctx__word_unlock(&s->lock);
}

void cctx__timer_disarm_if_ended(struct cctx__timer *t)
{
    /* A cancel of t marks it under t's lock and reads the slot after (its
     * disarm). (A timer is only ever marked that way, by mark_locked: the
     * marks in place in cancel.c take cancel contexts only.) This look is
     * one read-modify-write of the lock's word that changes nothing, made
     * when the lock is free, and all writes of that word are ordered: if it
     * comes after that cancel's unlock, it reads from it (acquire) and sees
     * the error; if before its lock, that lock reads from it, or from a
     * later read-modify-write of the word, which continues its release
     * (every write of a reachable context's word is one: lock.h), and the
     * disarm sees the slot the arm wrote. A lock held now may be that
     * cancel's: then the look waits for it, under the lock. One locked
     * instruction on t's own line, where the lock and unlock took two. */
    _Atomic uint32_t *word = &t->c.head.word;
    uint32_t w = cctx__atomic_load_relaxed(word);
    bool ended;
    if (!(w & WORD_LOCK) && cctx__atomic_cas_strong_acq_rel(word, &w, w)) {
        ended = cctx__atomic_load_relaxed(&t->c.head.state) & STATE_ERR;
    } else {
        cctx__lock(&t->c.head);
        ended = cctx__atomic_load_relaxed(&t->c.head.state) & STATE_ERR;
        cctx__unlock(&t->c.head);
    }
    if (ended)
        cctx__timer_disarm(t);
}

struct cctx__timer *cctx__test_timer_in_hand(bool fake)
{
    return cctx__atomic_load_acquire(&in_flight[fake ? POP_FAKE : POP_REAL].t);
}

int cctx__test_timer_orphans(void)
{
    pthread_mutex_lock(&timer_thread.lock);
    int n = (int)orphans_n;
    pthread_mutex_unlock(&timer_thread.lock);
    return n;
}

long cctx__test_armed_timers(void)
{
    long n = 0;
    for (int i = 0; i < HEAP_SHARDS; i++) {
        cctx__word_lock(&shards[i].lock);
        n += (long)shards[i].n;
        cctx__word_unlock(&shards[i].lock);
    }
    return n;
}

/* ---- The fake clock's side -------------------------------------------------------- */

/* fake_lock serialises changes of the fake clock and the firings they cause.
 * It is recursive because an after-function run by an advance may advance
 * the clock itself; the outer advance then goes on from the clock's new time. */
static unsigned fake_restarts; /* starts and stops of the clock, under fake_lock */

void cctx__timer_set_fake(int on, int64_t now, int64_t advance)
{
    pthread_once(&init_once, init);
    cctx__child_restart();
    pthread_mutex_lock(&fake_lock);
    int64_t target = now;
    if (advance > 0 && !cctx__atomic_load_seq_cst(&cctx__fake_on)) {
        /* Stopped since the caller looked: an advance of a stopped clock is
         * nothing, and must not turn it back on. */
        pthread_mutex_unlock(&fake_lock);
        return;
    }
    if (advance > 0) {
        target = cctx__sat_add(cctx__atomic_load_seq_cst(&cctx__fake_now), advance);
    } else {
        fake_restarts++;
        if (on)
            cctx__atomic_store_seq_cst(&cctx__fake_now, now);
    }
    unsigned restarts = fake_restarts;
    cctx__atomic_store_seq_cst(&cctx__fake_on, on);
    /* A barrier: the timer thread's pops check the clock under a shard lock,
     * so from here on none of them fires a fake deadline on real time. */
    int64_t top;
    for (int i = 0; i < HEAP_SHARDS; i++)
        shard_top(&shards[i], &top);
    /* Earliest first across shards: each round fires the shard whose top is
     * the earliest entry due by the target, after stepping the clock to its
     * deadline, so that its cause and its after-functions see the time it
     * was due, as with a real clock. When none is due, the clock steps to
     * the target, and one more round looks: a deadline armed meanwhile, which
     * a round looked for too early, either is in the heap for it, or was
     * armed after that step and its arm sees it due (cctx__timer_arm).
     *
     * An after-function fired here may advance the clock (the target is
     * then the clock's time if that is later), or stop it or start it anew,
     * so each round reads the clock's state afresh. Once it is stopped or
     * started anew, this advance ends: its target means nothing on the new
     * clock, and once the clock is stopped pop_due would refuse every entry
     * (they are no longer fake deadlines), and the loop would spin on a due
     * top. The deadlines this advance had still to fire are then due by the
     * new clock; once stopped, they are points on the real monotonic clock,
     * like every deadline armed when the clock stops: the timer thread fires
     * them when that clock reaches them (at once, if it is past them
     * already), not this thread. */
    while (on && cctx__atomic_load_seq_cst(&cctx__fake_on) && restarts == fake_restarts) {
        int64_t clock = cctx__atomic_load_seq_cst(&cctx__fake_now);
        target = clock > target ? clock : target;
        int best = -1;
        int64_t least = target;
        for (int i = 0; i < HEAP_SHARDS; i++) {
            if (shard_top(&shards[i], &top) && top <= least) {
                least = top;
                best = i;
            }
        }
        if (best < 0) {
            if (clock == target)
                break;
            cctx__atomic_store_seq_cst(&cctx__fake_now, target);
            continue;
        }
        /* The step comes before the pop: once popped, the entry is in hand,
         * and a child of fork() fires what is in hand at once, so the clock
         * it inherits must have reached that entry's deadline. */
        if (least > clock)
            cctx__atomic_store_seq_cst(&cctx__fake_now, least);
        int more;
        struct cctx__timer *outer = cctx__atomic_load_relaxed(&in_flight[POP_FAKE].t);
        struct cctx__timer *t = pop_due(&shards[best], least, 1, &more);
        if (t)
            fire(t, 1, outer);
    }
    pthread_mutex_unlock(&fake_lock);
    kick(); /* the thread re-reads which clock runs */
}
