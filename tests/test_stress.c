/* SPDX-License-Identifier: MIT */
/*
 * Stress: several threads randomly derive (every kind), cancel, release,
 * wait, register and stop after-functions on a shared pool of contexts while
 * the root of each epoch is canceled at a random moment. Deterministic PRNG
 * with a fixed seed (printed; CCTX_STRESS_SEED overrides it), time-bounded,
 * smaller under TSan. Checks: every after-function runs at most once, exactly
 * once unless stopped, cctx_after_stop's answer agrees with what ran, errors
 * never go back, and nothing leaks (library blocks, values, descriptors).
 *
 * Also: the library keeps working in a child after fork().
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

#define NTHREADS 4
#define NSLOTS 48
#define NREGS 24 /* registrations per thread */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static unsigned rnd(uint64_t *s, unsigned n)
{
    return (unsigned)(splitmix(s) % n);
}

static const char key_a, key_b;

struct slot {
    pthread_mutex_t mu;
    cctx_t *ctx;           /* one reference, owned by the slot */
    cctx_cancel_t *cancel; /* NULL for value / without_cancel contexts */
    bool never_ends;       /* nothing can ever end it */
};

struct reg {
    cctx_after_t after;
    atomic_int runs;
    bool registered;
    bool never_ends;
};

static struct {
    struct slot slots[NSLOTS];
    cctx_t *_Atomic root; /* the epoch's root, held by the main thread */
    atomic_int epoch_over;
    atomic_long values_made, values_destroyed;
    atomic_long failures; /* runs > 1 seen inside an after-function */
    atomic_long ops;
} S;

static void value_destroy(void *v)
{
    (void)v;
    atomic_fetch_add(&S.values_destroyed, 1);
}

static void reg_fn(void *arg)
{
    struct reg *r = arg;
    if (atomic_fetch_add(&r->runs, 1) != 0)
        atomic_fetch_add(&S.failures, 1);
}

/* Takes a reference on a slot's context (or the root if the slot is empty). */
static cctx_t *grab(struct slot *s, cctx_cancel_t **cancel, bool *never_ends)
{
    pthread_mutex_lock(&s->mu);
    cctx_t *c = s->ctx ? cctx_ref(s->ctx) : NULL;
    if (cancel)
        *cancel = s->cancel;
    if (never_ends)
        *never_ends = s->ctx ? s->never_ends : false;
    pthread_mutex_unlock(&s->mu);
    if (!c) {
        c = cctx_ref(atomic_load(&S.root));
        if (cancel)
            *cancel = NULL;
    }
    return c;
}

/* Puts a context into a slot; releases what was there, outside the lock. */
static void put(struct slot *s, cctx_t *c, cctx_cancel_t *cancel, bool never_ends)
{
    pthread_mutex_lock(&s->mu);
    cctx_t *old = s->ctx;
    s->ctx = c;
    s->cancel = cancel;
    s->never_ends = never_ends;
    pthread_mutex_unlock(&s->mu);
    cctx_release(old);
}

static void check_monotonic(cctx_t *c)
{
    int e1 = cctx_err(c);
    int w = cctx_wait(c, 0);
    cctx_cause_t cause;
    int e2 = cctx_cause(c, &cause);
    CHECK(e1 == 0 || e1 == ECANCELED || e1 == ETIMEDOUT);
    if (e1)
        CHECK_EQ(w, e1); /* an error never goes back or changes */
    if (w)
        CHECK_EQ(e2, w);
    if (e2) {
        CHECK(cause.msg != NULL);
        CHECK(cause.file != NULL);
    }
}

static void derive(uint64_t *rng)
{
    bool parent_never;
    cctx_t *parent = grab(&S.slots[rnd(rng, NSLOTS)], NULL, &parent_never);
    cctx_cancel_t *cancel = NULL;
    cctx_t *c = NULL;
    bool never = false;
    switch (rnd(rng, 7)) {
    case 0: c = cctx_with_cancel(parent, &cancel); break;
    case 1: c = cctx_with_timeout(parent, (int64_t)rnd(rng, 3000) * 1000, &cancel); break;
    case 2: c = cctx_with_timeout(parent, -1, &cancel); break; /* born done */
    case 3:
        c = cctx_with_deadline_cause(parent, cctx_now() + (int64_t)rnd(rng, 5000) * 1000, 7,
                                     "stress deadline", rnd(rng, 2) ? &cancel : NULL);
        break;
    case 4:
    case 5:
        atomic_fetch_add(&S.values_made, 1);
        c = cctx_with_value(parent, rnd(rng, 2) ? &key_a : &key_b, NULL, value_destroy);
        never = parent_never;
        break;
    default:
        c = cctx_without_cancel(parent);
        never = true;
    }
    CHECK(c != NULL);
    if (rnd(rng, 8) == 0)
        CHECK_EQ(cctx_set_name(c, "stress"), 0);
    cctx_release(parent);
    put(&S.slots[rnd(rng, NSLOTS)], c, cancel, never);
}

static void one_op(uint64_t *rng, struct reg *regs, FILE *devnull)
{
    unsigned op = rnd(rng, 100);
    struct slot *s = &S.slots[rnd(rng, NSLOTS)];
    if (op < 30) {
        derive(rng);
    } else if (op < 42) { /* cancel */
        cctx_cancel_t *cancel;
        cctx_t *c = grab(s, &cancel, NULL);
        if (cancel) {
            if (rnd(rng, 2))
                cctx_cancel(cancel);
            else
                cctx_cancel_cause(cancel, 9, "stress cancel");
            CHECK(cctx_err(c) != 0);
        }
        cctx_release(c);
    } else if (op < 54) { /* release */
        put(s, NULL, NULL, false);
    } else if (op < 80) { /* register or stop */
        struct reg *r = &regs[rnd(rng, NREGS)];
        if (!r->registered) {
            bool never;
            cctx_t *c = grab(s, NULL, &never);
            bool done_before = cctx_err(c) != 0;
            CHECK_EQ(cctx_after_func(c, &r->after, reg_fn, r), 0);
            if (done_before)
                CHECK_EQ(atomic_load(&r->runs), 1); /* ran before returning */
            r->registered = true;
            r->never_ends = never;
            cctx_release(c); /* the registration outlives our reference */
        } else {
            bool stopped = cctx_after_stop(&r->after);
            /* true: never ran and never will; false: ran, and has finished. */
            CHECK_EQ(atomic_load(&r->runs), stopped ? 0 : 1);
            CHECK(!cctx_after_stop(&r->after));
            r->registered = false;
            atomic_store(&r->runs, 0);
        }
    } else if (op < 94) { /* read and wait */
        cctx_t *c = grab(s, NULL, NULL);
        check_monotonic(c);
        if (rnd(rng, 4) == 0) {
            int fd = cctx_done_fd(c);
            CHECK(fd >= 0);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            /* Done before the poll: readable (promptly: another thread may
             * still be in the middle of the cancellation that marked it). */
            int e = cctx_err(c);
            int n = poll(&p, 1, e ? 5000 : 0);
            if (e)
                CHECK_EQ(n, 1);
            if (n == 1)
                CHECK(cctx_err(c) != 0); /* readable only once done */
        }
        if (rnd(rng, 16) == 0) {
            int w = cctx_wait(c, CCTX_USEC(rnd(rng, 200)));
            CHECK(w == 0 || w == cctx_err(c));
        }
        cctx_release(c);
    } else if (op < 99) {
        cctx_t *c = grab(s, NULL, NULL);
        cctx_t *arr[2] = {c, cctx_background()};
        int i = cctx_wait_any(arr, 2, 0);
        CHECK(i == -1 || (i == 0 && cctx_err(c) != 0));
        cctx_release(c);
    } else { /* dump the live tree while others change it */
        cctx_t *c = grab(s, NULL, NULL);
        CHECK_EQ(cctx_dump(c, devnull, (int)rnd(rng, 3)), 0);
        cctx_release(c);
    }
    atomic_fetch_add(&S.ops, 1);
}

struct worker {
    uint64_t rng;
    struct reg regs[NREGS];
    pthread_barrier_t *start, *end;
    int epochs;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(devnull != NULL);
    for (int e = 0; e < w->epochs; e++) {
        pthread_barrier_wait(w->start);
        while (!atomic_load(&S.epoch_over))
            one_op(&w->rng, w->regs, devnull);
        pthread_barrier_wait(w->end);
    }
    fclose(devnull);
    return NULL;
}

TEST(stress_random_tree_operations_after_funcs_once_no_leaks)
{
    uint64_t seed = UINT64_C(0xc0ffee5eed);
    const char *env = getenv("CCTX_STRESS_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    const int64_t total = TEST_UNDER_TSAN ? CCTX_SEC(1) : CCTX_SEC(2);
    const int epochs = 10;
    const int64_t epoch_len = total / epochs;
    printf("stress seed 0x%" PRIx64 " (set CCTX_STRESS_SEED to change), %d threads, %d epochs of %.0f ms\n",
           seed, NTHREADS, epochs, epoch_len / 1e6);

    uint64_t main_rng = seed;
    cctx__test_count_allocs(true);
    long live0 = cctx__test_live_allocs();

    for (int i = 0; i < NSLOTS; i++)
        pthread_mutex_init(&S.slots[i].mu, NULL);
    pthread_barrier_t start, end;
    pthread_barrier_init(&start, NULL, NTHREADS + 1);
    pthread_barrier_init(&end, NULL, NTHREADS + 1);
    static struct worker workers[NTHREADS];
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        workers[i] = (struct worker){.rng = seed ^ (UINT64_C(0x1234567) * (uint64_t)(i + 1)),
                                     .start = &start, .end = &end, .epochs = epochs};
        CHECK_EQ(pthread_create(&t[i], NULL, worker_main, &workers[i]), 0);
    }

    long total_runs_checked = 0, stopped_true = 0;
    for (int e = 0; e < epochs; e++) {
        cctx_cancel_t *root_cancel;
        cctx_t *root = cctx_with_cancel(cctx_background(), &root_cancel);
        atomic_store(&S.root, root);
        atomic_store(&S.epoch_over, 0);
        int64_t cancel_at = (int64_t)rnd(&main_rng, 1000) * epoch_len / 1000;
        pthread_barrier_wait(&start);
        int64_t t0 = cctx_now();
        usleep((useconds_t)(cancel_at / 1000));
        cctx_cancel_cause(root_cancel, 1, "root canceled");
        CHECK_EQ(cctx_err(root), ECANCELED);
        int64_t left = epoch_len - (cctx_now() - t0);
        if (left > 0)
            usleep((useconds_t)(left / 1000));
        atomic_store(&S.epoch_over, 1);
        pthread_barrier_wait(&end);

        /* Quiet: empty the pool, drop the root, settle every registration. */
        for (int i = 0; i < NSLOTS; i++)
            put(&S.slots[i], NULL, NULL, false);
        atomic_store(&S.root, NULL);
        cctx_release(root);
        for (int w = 0; w < NTHREADS; w++) {
            for (int i = 0; i < NREGS; i++) {
                struct reg *r = &workers[w].regs[i];
                if (!r->registered)
                    continue;
                bool stopped = cctx_after_stop(&r->after);
                if (r->never_ends) {
                    /* On a context nothing could end: still registered. */
                    CHECK(stopped);
                    CHECK_EQ(atomic_load(&r->runs), 0);
                    stopped_true++;
                } else {
                    /* Every other context ended (root canceled, all released):
                     * fn ran, or was still queued (a runner had yet to start
                     * it, for a deadline) and the stop took it out. */
                    CHECK_EQ(atomic_load(&r->runs), stopped ? 0 : 1);
                }
                total_runs_checked++;
                r->registered = false;
                atomic_store(&r->runs, 0);
            }
        }
    }
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&end);
    for (int i = 0; i < NSLOTS; i++)
        pthread_mutex_destroy(&S.slots[i].mu);

    CHECK_EQ(atomic_load(&S.failures), 0);
    /* A timer thread may still hold a context it was firing: let it settle. */
    int64_t until = cctx_now() + CCTX_SEC(5);
    while ((cctx__test_live_allocs() != live0 || cctx__test_armed_timers() != 0) &&
           cctx_now() < until)
        usleep(1000);
    printf("%ld ops, %ld values, %ld registrations settled at epoch ends (%ld on never-ending contexts)\n",
           atomic_load(&S.ops), atomic_load(&S.values_made), total_runs_checked, stopped_true);
    CHECK_EQ(cctx__test_live_allocs(), live0);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    CHECK_EQ(atomic_load(&S.values_destroyed), atomic_load(&S.values_made));
    cctx__test_count_allocs(false);
    CHECK(atomic_load(&S.ops) > 1000);
}

/* ---- fork ---------------------------------------------------------------- */

static int child_checks(cctx_t *inherited)
{
    /* A deadline armed before fork fires in the child too. */
    if (cctx_wait(inherited, CCTX_SEC(5)) != ETIMEDOUT)
        return 9;
    /* The timer thread did not survive fork: a new deadline must still fire. */
    int64_t t0 = cctx_now();
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    if (!c)
        return 10;
    int r = cctx_wait(c, CCTX_SEC(5));
    int64_t el = cctx_now() - t0;
    if (r != ETIMEDOUT)
        return 11;
    if (el < CCTX_MSEC(20) || el > CCTX_SEC(3))
        return 12;
    /* A descriptor waiter, too. */
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    struct pollfd p = {.fd = cctx_done_fd(d), .events = POLLIN};
    if (p.fd < 0)
        return 13;
    if (poll(&p, 1, 3000) != 1)
        return 14;
    if (cctx_err(d) != ETIMEDOUT)
        return 15;
    /* Cancellation works as before. */
    cctx_cancel_t *cc;
    cctx_t *e = cctx_with_cancel(cctx_background(), &cc);
    cctx_cancel(cc);
    if (cctx_wait(e, -1) != ECANCELED)
        return 16;
    return 0;
}

TEST(stress_fork_child_deadlines_still_fire)
{
    /* The library restarts its timer thread in the child: a thread started
     * in a child of a multi-threaded fork, which ThreadSanitizer kills and
     * AddressSanitizer's allocator may hang. */
    SKIP_FORK_UNDER_SANITIZERS();
    /* Armed deadlines (the timer thread runs), one of them already fired. */
    cctx_cancel_t *lc;
    cctx_t *longer = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &lc);
    cctx_t *shorter = cctx_with_timeout(longer, CCTX_SEC(1800), NULL);
    cctx_t *fired = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    CHECK_EQ(cctx_wait(fired, CCTX_SEC(5)), ETIMEDOUT);
    cctx_t *soon = cctx_with_timeout(cctx_background(), CCTX_MSEC(30), NULL);
    CHECK(longer && shorter && soon);

    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        int rc = child_checks(soon);
        if (rc == 0 && cctx_err(shorter) != 0)
            rc = 17; /* the inherited deadlines are far away */
        _exit(rc); /* no atexit handlers, no leak check of the parent's copies */
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    /* The parent is unharmed: its deadlines still fire. */
    cctx_t *p = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    CHECK_EQ(cctx_wait(p, CCTX_SEC(5)), ETIMEDOUT);
    CHECK_EQ(cctx_err(shorter), 0);
    cctx_cancel(lc);
    CHECK_EQ(cctx_err(shorter), ECANCELED);

    CHECK_EQ(cctx_wait(soon, CCTX_SEC(5)), ETIMEDOUT);
    cctx_release(soon);
    cctx_release(p);
    cctx_release(fired);
    cctx_release(shorter);
    cctx_release(longer);
}
