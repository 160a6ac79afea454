/*
 * The process timer: every armed deadline in one 4-ary min-heap, served by one
 * thread started on first use.
 *
 * Heap entries carry the deadline next to the context pointer, so sifting
 * compares without touching contexts; each context keeps its slot (index + 1)
 * so that disarming is O(log n) too. Arm and disarm take the timer lock; no
 * context lock is ever taken under it (see internal.h). The thread pops due
 * entries under the lock, takes a reference on each context (skipping one
 * whose count reached zero: its releaser is waiting for this lock to disarm
 * it, and finds it already unarmed) and fires it outside the lock.
 *
 * Under the fake clock the thread sleeps; cctx_fake_clock_advance fires due
 * deadlines itself, on the calling thread, through the same fire_due().
 *
 * fork(): the child gets the heap but not the thread; an atfork handler keeps
 * the lock consistent across fork and restarts the thread in the child.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "testhooks.h"

struct entry {
    int64_t when;
    struct cctx__timer *t;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct entry *heap;
    size_t n, cap;
    int started;        /* the thread runs (in this process) */
    int64_t sleep_until; /* when the sleeping thread wakes by itself */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .sleep_until = CCTX_NO_DEADLINE};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ---- The heap ------------------------------------------------------------- */

static void place(size_t i, struct entry e)
{
    T.heap[i] = e;
    atomic_store_explicit(&e.t->slot, (uint32_t)i + 1, memory_order_relaxed);
}

static void sift_up(size_t i, struct entry e)
{
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (T.heap[p].when <= e.when)
            break;
        place(i, T.heap[p]);
        i = p;
    }
    place(i, e);
}

static void sift_down(size_t i, struct entry e)
{
    for (;;) {
        size_t c = 4 * i + 1, best = i;
        int64_t least = e.when;
        for (size_t k = c; k < c + 4 && k < T.n; k++) {
            if (T.heap[k].when < least) {
                least = T.heap[k].when;
                best = k;
            }
        }
        if (best == i)
            break;
        place(i, T.heap[best]);
        i = best;
    }
    place(i, e);
}

static void heap_remove(size_t i)
{
    atomic_store_explicit(&T.heap[i].t->slot, 0, memory_order_relaxed);
    struct entry last = T.heap[--T.n];
    if (i == T.n)
        return;
    if (i > 0 && last.when < T.heap[(i - 1) / 4].when)
        sift_up(i, last);
    else
        sift_down(i, last);
}

/* ---- Firing ---------------------------------------------------------------- */

static void fire(struct cctx__timer *t)
{
    cctx__cancel(&t->c, ETIMEDOUT, t->code, t->msg, t->c.head.file, t->c.head.line,
                 t->c.head.func);
    cctx_release(&t->c.head);
}

/* Fires every deadline at or before now, earliest first. Called and returns
 * with the lock held; drops it around each firing. */
static void fire_due(int64_t now)
{
    while (T.n > 0 && T.heap[0].when <= now) {
        struct cctx__timer *t = T.heap[0].t;
        heap_remove(0);
        if (!cctx__try_ref(&t->c.head))
            continue;
        pthread_mutex_unlock(&T.lock);
        fire(t);
        pthread_mutex_lock(&T.lock);
    }
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&T.lock);
    for (;;) {
        if (atomic_load(&cctx__fake_on) || T.n == 0) {
            T.sleep_until = CCTX_NO_DEADLINE;
            pthread_cond_wait(&T.wake, &T.lock);
            continue;
        }
        fire_due(cctx__os_now());
        if (T.n == 0 || atomic_load(&cctx__fake_on))
            continue;
        int64_t when = T.heap[0].when;
        struct timespec ts = {when / 1000000000, when % 1000000000};
        T.sleep_until = when;
        pthread_cond_timedwait(&T.wake, &T.lock, &ts);
        T.sleep_until = CCTX_NO_DEADLINE;
    }
    return NULL;
}

static int start_thread(void)
{
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The thread must not take signals meant for the program. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&tid, &attr, timer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return err == EAGAIN ? ENOMEM : err;
    T.started = 1;
    return 0;
}

/* ---- fork ------------------------------------------------------------------- */

static void before_fork(void)
{
    pthread_mutex_lock(&T.lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&T.lock);
}

static void after_fork_child(void)
{
    pthread_mutex_init(&T.lock, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&T.wake, &a);
    pthread_condattr_destroy(&a);
    T.started = 0;
    T.sleep_until = CCTX_NO_DEADLINE;
    if (T.n > 0)
        start_thread();
}

static void init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&T.wake, &a);
    pthread_condattr_destroy(&a);
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* ---- Arming ----------------------------------------------------------------- */

int cctx__timer_arm(struct cctx__timer *t)
{
    pthread_once(&init_once, init);
    pthread_mutex_lock(&T.lock);
    if (T.n == T.cap) {
        size_t cap = T.cap ? T.cap * 2 : 64;
        struct entry *heap = realloc(T.heap, cap * sizeof *heap);
        if (!heap) {
            pthread_mutex_unlock(&T.lock);
            return ENOMEM;
        }
        T.heap = heap;
        T.cap = cap;
    }
    if (!T.started) {
        int err = start_thread();
        if (err) {
            pthread_mutex_unlock(&T.lock);
            return err;
        }
    }
    T.n++;
    sift_up(T.n - 1, (struct entry){t->deadline, t});
    if (t->deadline < T.sleep_until && T.heap[0].t == t)
        pthread_cond_signal(&T.wake);
    pthread_mutex_unlock(&T.lock);
    return 0;
}

void cctx__timer_disarm(struct cctx__timer *t)
{
    /* The slot only changes under the lock; a zero read without it is final
     * for a context that its caller holds or is freeing. */
    if (!atomic_load_explicit(&t->slot, memory_order_relaxed))
        return;
    pthread_mutex_lock(&T.lock);
    uint32_t slot = atomic_load_explicit(&t->slot, memory_order_relaxed);
    if (slot)
        heap_remove(slot - 1);
    pthread_mutex_unlock(&T.lock);
}

long cctx__test_armed_timers(void)
{
    pthread_mutex_lock(&T.lock);
    long n = (long)T.n;
    pthread_mutex_unlock(&T.lock);
    return n;
}

/* ---- The fake clock's side -------------------------------------------------- */

/* Switches the fake clock on or off, or moves it (on stays on), under the
 * timer lock so that the thread never fires real deadlines on fake time or
 * the reverse, then fires what is due on the fake clock. */
void cctx__timer_set_fake(int on, int64_t now, int64_t advance)
{
    pthread_once(&init_once, init);
    pthread_mutex_lock(&T.lock);
    if (advance > 0)
        now = cctx__sat_add(atomic_load(&cctx__fake_now), advance);
    if (on)
        atomic_store(&cctx__fake_now, now);
    atomic_store(&cctx__fake_on, on);
    if (on)
        fire_due(now);
    pthread_cond_signal(&T.wake);
    pthread_mutex_unlock(&T.lock);
}
