/* SPDX-License-Identifier: MIT */
/*
 * Section 10: groups of threads (<cctx/group.h>). The first failure wins and
 * cancels the rest with its code and the go call's site; wait waits for
 * every task (nested ones too), then cancels; the limit holds and is reached;
 * threads are reused; a go blocked on a full group wakes when the context
 * ends (cancel from another thread, or a fake-clock deadline); free cancels
 * and waits; bad input and self-waits are refused.
 *
 * Nothing here relies on sleeping long enough: tasks and test threads meet on
 * latches, and "this thread is blocked in cctx_group_go" is read from
 * /proc/self/task/TID/stat (sleeping on five reads in a row, 1 ms apart), so
 * a correct library always passes and a broken one cannot pass by luck.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>
#include <cctx/testing.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* ---- helpers ----------------------------------------------------------------- */

/* A thread that calls cctx_group_go n times (stopping at the first failure),
 * counting the calls that returned 0. */
struct submitter {
    cctx_group_t *g;
    int (*fn)(cctx_t *ctx, void *arg);
    void *arg;
    int n;
    atomic_int tid;
    atomic_int returned;
    int result;
    pthread_t thread;
};

static void *submitter_main(void *arg)
{
    struct submitter *s = arg;
    atomic_store(&s->tid, (int)thread_id());
    for (int i = 0; i < s->n; i++) {
        s->result = cctx_group_go(s->g, s->fn, s->arg);
        if (s->result != 0)
            break;
        atomic_fetch_add(&s->returned, 1);
    }
    return NULL;
}

static void submitter_start(struct submitter *s)
{
    CHECK_EQ(pthread_create(&s->thread, NULL, submitter_main, s), 0);
    while (atomic_load(&s->tid) == 0)
        sched_yield();
}

/* Joins the submitter, failing the test if it does not return within 10 s. */
static void submitter_join(struct submitter *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int r = pthread_timedjoin_np(s->thread, NULL, &until);
    if (r == ETIMEDOUT) {
        fprintf(stderr, "cctx_group_go did not return within 10 s\n");
        abort();
    }
    CHECK_EQ(r, 0);
}

static void note_max(atomic_int *max, int now)
{
    int m = atomic_load(max);
    while (now > m && !atomic_compare_exchange_weak(max, &m, now))
        ;
}

static int count_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static int must_not_run(cctx_t *ctx, void *arg)
{
    (void)ctx, (void)arg;
    fprintf(stderr, "a task ran that must not have\n");
    abort();
}

/* ---- first error ------------------------------------------------------------- */

struct first_err {
    struct latch started;
    int blockers;
    atomic_int saw_cause; /* blockers that woke with ECANCELED, code 42, our message */
    atomic_int cause_line;
};

/* Waits for the group's context, checks why it ended, then fails too: a later
 * failure that must not replace the first. */
static int blocker_task(cctx_t *ctx, void *arg)
{
    struct first_err *s = arg;
    latch_add(&s->started);
    int e = cctx_wait(ctx, -1);
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    if (e == ECANCELED && c.code == 42 && c.msg && strcmp(c.msg, "group task failed") == 0)
        atomic_fetch_add(&s->saw_cause, 1);
    atomic_store(&s->cause_line, c.line);
    return 7;
}

static int failing_task(cctx_t *ctx, void *arg)
{
    struct first_err *s = arg;
    latch_wait_n(&s->started, s->blockers); /* fail while the others run */
    CHECK_EQ(cctx_err(ctx), 0);
    return 42;
}

TEST(group_first_error_wins_and_cancels_the_others)
{
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    cctx_t *ctx = cctx_group_ctx(g);
    static struct first_err s = {.started = LATCH_INIT, .blockers = 3};

    for (int i = 0; i < s.blockers; i++)
        CHECK_EQ(cctx_group_go(g, blocker_task, &s), 0);
    int go_line = __LINE__; CHECK_EQ(cctx_group_go(g, failing_task, &s), 0);

    CHECK_EQ(cctx_group_wait(g), 42); /* not the blockers' later 7 */
    CHECK_EQ(atomic_load(&s.saw_cause), s.blockers);
    CHECK_EQ(atomic_load(&s.cause_line), go_line);
    check_cause(ctx, ECANCELED, 42, "group task failed", go_line, __func__);
    check_active(parent); /* cancelling the group never reaches its parent */

    CHECK_EQ(cctx_group_wait(g), 42); /* again: the same answer at once */
    cctx_group_free(g);
    cctx_release(parent);
}

/* Many tasks fail at once: whichever wins, wait returns the code that the
 * cause carries. */
struct race {
    pthread_barrier_t start;
};

static int racing_failure(cctx_t *ctx, void *arg)
{
    (void)ctx;
    void **a = arg;
    struct race *r = a[0];
    int code = (int)(intptr_t)a[1];
    pthread_barrier_wait(&r->start);
    return code;
}

TEST(group_simultaneous_failures_wait_returns_the_cause_code)
{
    enum { N = 4, ROUNDS = TEST_UNDER_TSAN ? 20 : 100 };
    for (int round = 0; round < ROUNDS; round++) {
        struct race r;
        CHECK_EQ(pthread_barrier_init(&r.start, NULL, N), 0);
        void *args[N][2];
        cctx_group_t *g = cctx_group_new(cctx_background());
        CHECK(g != NULL);
        for (int i = 0; i < N; i++) {
            args[i][0] = &r;
            args[i][1] = (void *)(intptr_t)(100 + i);
            CHECK_EQ(cctx_group_go(g, racing_failure, args[i]), 0);
        }
        int err = cctx_group_wait(g);
        CHECK(err >= 100 && err < 100 + N);
        cctx_cause_t c;
        CHECK_EQ(cctx_cause(cctx_group_ctx(g), &c), ECANCELED);
        CHECK_EQ(c.code, err);
        CHECK_STR(c.msg, "group task failed");
        cctx_group_free(g);
        pthread_barrier_destroy(&r.start);
    }
}

/* ---- success, and what follows a wait ------------------------------------------- */

TEST(group_wait_returns_zero_when_all_succeed_and_cancels_ctx)
{
    enum { N = 16 };
    atomic_int ran = 0;
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    cctx_t *ctx = cctx_group_ctx(g);
    for (int i = 0; i < N; i++)
        CHECK_EQ(cctx_group_go(g, count_task, &ran), 0);
    check_active(ctx);

    int wait_line = __LINE__; CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&ran), N); /* every task returned before wait did */
    check_cause(ctx, ECANCELED, 0, "context canceled", wait_line, __func__);
    check_active(parent);

    /* After wait: go starts nothing and reports the context's error; wait
     * answers again at once. */
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    CHECK_EQ(cctx_group_wait(g), 0);
    check_cause(ctx, ECANCELED, 0, "context canceled", wait_line, __func__);
    cctx_group_free(g);
    cctx_release(parent);
}

struct waiter_arg {
    cctx_group_t *g;
    int result;
};

static void *wait_thread(void *arg)
{
    struct waiter_arg *w = arg;
    w->result = cctx_group_wait(w->g);
    return NULL;
}

static int gated_fail(cctx_t *ctx, void *arg)
{
    (void)ctx;
    latch_wait_open(arg);
    return 9;
}

TEST(group_concurrent_waits_all_return_the_first_error)
{
    static struct latch gate = LATCH_INIT;
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_go(g, gated_fail, &gate), 0);
    struct waiter_arg w[3] = {{g, -1}, {g, -1}, {g, -1}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
    latch_open(&gate);
    CHECK_EQ(cctx_group_wait(g), 9);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
        CHECK_EQ(w[i].result, 9);
    }
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    cctx_group_free(g);
}

TEST(group_go_after_ctx_ended_returns_error_and_runs_nothing)
{
    /* A parent canceled before the group was made: born done. */
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    int cancel_line = __LINE__; cctx_cancel(pc);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    check_cause(cctx_group_ctx(g), ECANCELED, 0, "context canceled", cancel_line, __func__);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    CHECK_EQ(cctx_group_wait(g), 0);
    cctx_group_free(g);
    cctx_release(parent);

    /* A parent whose deadline has passed: ETIMEDOUT. */
    cctx_t *late = cctx_with_timeout(cctx_background(), -1, NULL);
    g = cctx_group_new(late);
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ETIMEDOUT);
    cctx_group_free(g);
    cctx_release(late);

    /* Canceled by a failing task, before anyone waits. */
    g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    static struct first_err s = {.started = LATCH_INIT, .blockers = 0};
    CHECK_EQ(cctx_group_go(g, failing_task, &s), 0);
    CHECK(cctx_wait(cctx_group_ctx(g), CCTX_SEC(10)) == ECANCELED);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    CHECK_EQ(cctx_group_wait(g), 42);
    cctx_group_free(g);
}

/* ---- the limit and the pool ------------------------------------------------------ */

struct limited {
    struct latch started;
    struct latch gate;
    atomic_int running, max_running;
};

static int limited_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct limited *l = arg;
    note_max(&l->max_running, atomic_fetch_add(&l->running, 1) + 1);
    latch_add(&l->started);
    latch_wait_open(&l->gate);
    atomic_fetch_sub(&l->running, 1);
    return 0;
}

TEST(group_limit_respected_and_reached)
{
    enum { LIMIT = 3, N = 30 };
    static struct limited l = {.started = LATCH_INIT, .gate = LATCH_INIT};
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, LIMIT), 0);
    static struct submitter s = {.fn = limited_task, .arg = &l, .n = N};
    s.g = g;
    submitter_start(&s);

    /* LIMIT tasks run and hold their slots; the next go blocks. */
    latch_wait_n(&l.started, LIMIT);
    wait_until_blocked(atomic_load(&s.tid));
    CHECK_EQ(atomic_load(&s.returned), LIMIT);
    CHECK_EQ(latch_count(&l.started), LIMIT);
    CHECK_EQ(atomic_load(&l.running), LIMIT);

    latch_open(&l.gate);
    submitter_join(&s);
    CHECK_EQ(s.result, 0);
    CHECK_EQ(atomic_load(&s.returned), N);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(latch_count(&l.started), N);
    CHECK_EQ(atomic_load(&l.max_running), LIMIT);
    cctx_group_free(g);
}

struct unlimited {
    int n;
    struct latch started;
};

/* Returns only once all n tasks run at the same time. */
static int all_at_once_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct unlimited *u = arg;
    latch_add(&u->started);
    latch_wait_n(&u->started, u->n);
    return 0;
}

TEST(group_limit_zero_or_negative_means_no_limit)
{
    for (int lim = 0; lim >= -1; lim--) {
        struct unlimited u = {.n = 8, .started = LATCH_INIT};
        cctx_group_t *g = cctx_group_new(cctx_background());
        CHECK(g != NULL);
        CHECK_EQ(cctx_group_limit(g, 2), 0);
        CHECK_EQ(cctx_group_limit(g, lim), 0); /* replaces the 2 */
        for (int i = 0; i < u.n; i++)
            CHECK_EQ(cctx_group_go(g, all_at_once_task, &u), 0);
        CHECK_EQ(cctx_group_wait(g), 0);
        CHECK_EQ(latch_count(&u.started), u.n);
        cctx_group_free(g);
    }
}

enum { MANY = 1000, MANY_LIMIT = 4 };

struct many {
    atomic_int runs[MANY];
    atomic_int running, max_running, threads;
};
static _Thread_local bool thread_counted;

struct many_arg {
    struct many *m;
    int i;
};

static int many_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct many_arg *a = arg;
    struct many *m = a->m;
    note_max(&m->max_running, atomic_fetch_add(&m->running, 1) + 1);
    if (!thread_counted) { /* a fresh thread has a fresh thread-local */
        thread_counted = true;
        atomic_fetch_add(&m->threads, 1);
    }
    atomic_fetch_add(&m->runs[a->i], 1);
    sched_yield();
    atomic_fetch_sub(&m->running, 1);
    return 0;
}

TEST(group_thousand_tasks_on_limit_four_reuse_threads)
{
    static struct many m;
    static struct many_arg args[MANY];
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, MANY_LIMIT), 0);
    for (int i = 0; i < MANY; i++) {
        args[i] = (struct many_arg){&m, i};
        CHECK_EQ(cctx_group_go(g, many_task, &args[i]), 0);
    }
    CHECK_EQ(cctx_group_wait(g), 0);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(atomic_load(&m.runs[i]), 1);
    printf("%d tasks ran on %d threads, at most %d at once\n", MANY, atomic_load(&m.threads),
           atomic_load(&m.max_running));
    CHECK(atomic_load(&m.threads) >= 1 && atomic_load(&m.threads) <= MANY_LIMIT);
    CHECK(atomic_load(&m.max_running) <= MANY_LIMIT);
    cctx_group_free(g);
}

struct multi {
    struct limited *l;
    cctx_group_t *g;
    int n;
};

static void submit_many(void *arg)
{
    struct multi *mu = arg;
    for (int i = 0; i < mu->n; i++)
        CHECK_EQ(cctx_group_go(mu->g, limited_task, mu->l), 0);
}

TEST(group_go_from_many_threads_at_once)
{
    enum { THREADS = 4, EACH = TEST_UNDER_TSAN ? 50 : 250, LIMIT = 3 };
    static struct limited l = {.started = LATCH_INIT, .gate = LATCH_INIT};
    latch_open(&l.gate); /* tasks only count */
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, LIMIT), 0);
    struct multi mu = {&l, g, EACH};
    struct gang gang;
    gang_init(&gang, THREADS, false);
    for (int i = 0; i < THREADS; i++)
        gang_spawn(&gang, submit_many, &mu);
    gang_join(&gang);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(latch_count(&l.started), THREADS * EACH);
    CHECK(atomic_load(&l.max_running) <= LIMIT);
    cctx_group_free(g);
}

/* ---- a go blocked on a full group ---------------------------------------------- */

TEST(group_go_blocked_on_full_limit_returns_ecanceled_on_parent_cancel)
{
    static struct limited l = {.started = LATCH_INIT, .gate = LATCH_INIT};
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    /* The slot holder ignores the context: only the cancellation itself can
     * wake the blocked go. */
    CHECK_EQ(cctx_group_go(g, limited_task, &l), 0);
    latch_wait_n(&l.started, 1);

    static struct submitter s = {.fn = must_not_run, .n = 1};
    s.g = g;
    submitter_start(&s);
    wait_until_blocked(atomic_load(&s.tid));
    CHECK_EQ(atomic_load(&s.returned), 0);

    int cancel_line = __LINE__; cctx_cancel(pc);
    submitter_join(&s);
    CHECK_EQ(s.result, ECANCELED);
    CHECK_EQ(atomic_load(&s.returned), 0);

    latch_open(&l.gate);
    CHECK_EQ(cctx_group_wait(g), 0); /* the holder returned 0 */
    check_cause(cctx_group_ctx(g), ECANCELED, 0, "context canceled", cancel_line, __func__);
    cctx_group_free(g);
    cctx_release(parent);
}

struct deadline_task {
    struct latch started;
    atomic_int result;
};

static int wait_ctx_task(cctx_t *ctx, void *arg)
{
    struct deadline_task *d = arg;
    latch_add(&d->started);
    int e = cctx_wait(ctx, -1);
    atomic_store(&d->result, e);
    return e; /* the context's error, as a task that gives up would */
}

TEST(group_parent_deadline_on_fake_clock_ends_group_with_etimedout)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    int dl_line = __LINE__; cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    cctx_release(parent); /* the group's context keeps it alive */
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    static struct deadline_task d = {.started = LATCH_INIT};
    CHECK_EQ(cctx_group_go(g, wait_ctx_task, &d), 0);
    latch_wait_n(&d.started, 1);

    static struct submitter s = {.fn = must_not_run, .n = 1};
    s.g = g;
    submitter_start(&s);
    wait_until_blocked(atomic_load(&s.tid));

    cctx_fake_clock_advance(CCTX_SEC(5) - 1);
    CHECK_EQ(cctx_err(cctx_group_ctx(g)), 0);
    CHECK_EQ(atomic_load(&s.returned), 0);
    cctx_fake_clock_advance(1);
    submitter_join(&s);
    CHECK_EQ(s.result, ETIMEDOUT);

    CHECK_EQ(cctx_group_wait(g), ETIMEDOUT); /* what the task returned */
    CHECK_EQ(atomic_load(&d.result), ETIMEDOUT);
    /* The task's failure came after the deadline: the deadline's cause stays. */
    check_cause(cctx_group_ctx(g), ETIMEDOUT, 0, "context deadline exceeded", dl_line, __func__);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ETIMEDOUT);
    cctx_group_free(g);
    cctx_fake_clock_stop();
}

/* ---- free ------------------------------------------------------------------- */

struct free_watch {
    struct latch started;
    atomic_int finished, canceled, line;
};

static int watch_task(cctx_t *ctx, void *arg)
{
    struct free_watch *f = arg;
    latch_add(&f->started);
    if (cctx_wait(ctx, -1) == ECANCELED)
        atomic_fetch_add(&f->canceled, 1);
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    atomic_store(&f->line, c.line);
    atomic_fetch_add(&f->finished, 1);
    return 0;
}

TEST(group_free_while_tasks_run_cancels_and_waits)
{
    enum { N = 4 };
    static struct free_watch f = {.started = LATCH_INIT};
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    cctx_t *kept = cctx_ref(cctx_group_ctx(g)); /* outlives the group */
    for (int i = 0; i < N; i++)
        CHECK_EQ(cctx_group_go(g, watch_task, &f), 0);
    latch_wait_n(&f.started, N);
    CHECK_EQ(atomic_load(&f.finished), 0);

    int free_line = __LINE__; cctx_group_free(g);
    CHECK_EQ(atomic_load(&f.finished), N); /* free waited for every task */
    CHECK_EQ(atomic_load(&f.canceled), N);
    CHECK_EQ(atomic_load(&f.line), free_line);
    check_cause(kept, ECANCELED, 0, "context canceled", free_line, __func__);
    check_active(parent);
    cctx_release(kept);
    cctx_release(parent);
}

TEST(group_free_in_every_state)
{
    /* Never used. */
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    cctx_group_free(g);

    /* Tasks done, threads idle, never waited for. */
    atomic_int ran = 0;
    g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(cctx_group_go(g, count_task, &ran), 0);
    while (atomic_load(&ran) < 8)
        sched_yield();
    cctx_group_free(g);
    CHECK_EQ(atomic_load(&ran), 8);

    /* Waited for, then freed. */
    g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_go(g, count_task, &ran), 0);
    CHECK_EQ(cctx_group_wait(g), 0);
    cctx_group_free(g);
    CHECK_EQ(atomic_load(&ran), 9);

    cctx_group_free(NULL);
}

/* ---- tasks that use their own group ----------------------------------------------- */

struct nested {
    cctx_group_t *g;
    atomic_int ran;
    int self_wait;
    int other_wait;
};

static int leaf_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct nested *n = arg;
    atomic_fetch_add(&n->ran, 1);
    return 0;
}

static int other_group_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    return *(int *)arg;
}

static int parent_task(cctx_t *ctx, void *arg)
{
    struct nested *n = arg;
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cctx_group_go(n->g, leaf_task, n), 0);
    n->self_wait = cctx_group_wait(n->g); /* would wait for itself */
    /* Waiting for another group from a task is fine. */
    static int five = 5;
    cctx_group_t *other = cctx_group_new(ctx);
    CHECK(other != NULL);
    CHECK_EQ(cctx_group_go(other, other_group_task, &five), 0);
    n->other_wait = cctx_group_wait(other);
    cctx_group_free(other);
    atomic_fetch_add(&n->ran, 1);
    return 0;
}

TEST(group_tasks_start_tasks_and_wait_from_own_task_is_edeadlk)
{
    static struct nested n;
    n.g = cctx_group_new(cctx_background());
    CHECK(n.g != NULL);
    CHECK_EQ(cctx_group_go(n.g, parent_task, &n), 0);
    CHECK_EQ(cctx_group_wait(n.g), 0);
    CHECK_EQ(atomic_load(&n.ran), 11); /* wait waited for the nested tasks too */
    CHECK_EQ(n.self_wait, EDEADLK);
    CHECK_EQ(n.other_wait, 5);
    cctx_group_free(n.g);
}

static int free_own_group_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    cctx_group_free((cctx_group_t *)arg);
    return 0;
}

TEST(group_free_from_own_task_aborts_with_a_message)
{
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        cctx_group_t *g = cctx_group_new(cctx_background());
        if (!g || cctx_group_go(g, free_own_group_task, g) != 0)
            _exit(3);
        cctx_group_wait(g);
        _exit(4); /* not reached */
    }
    close(pipefd[1]);
    char buf[1024];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(pipefd[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    CHECK(strstr(buf, "cctx_group_free") != NULL);
    CHECK(strstr(buf, "test_group.c") != NULL);
}

/* ---- sites, references, bad input --------------------------------------------------- */

TEST(group_ctx_made_at_the_callers_line)
{
    int new_line = __LINE__; cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    CHECK(out != NULL);
    CHECK_EQ(cctx_dump(cctx_group_ctx(g), out, CCTX_DUMP_TEXT), 0);
    fclose(out);
    char want[512];
    snprintf(want, sizeof want, "made at %s:%d in %s", __FILE__, new_line, __func__);
    if (!strstr(text, want))
        fprintf(stderr, "dump: %s\nwanted: %s\n", text, want);
    CHECK(strstr(text, want) != NULL);
    free(text);
    cctx_group_free(g);
}

TEST(group_ctx_is_a_child_of_parent)
{
    static const char key = 0;
    cctx_cancel_t *pc;
    cctx_t *base = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *parent = cctx_with_value(base, &key, (void *)&key, NULL);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    cctx_release(parent); /* the group's context holds its parent */
    cctx_t *ctx = cctx_group_ctx(g);
    CHECK(ctx != NULL);
    CHECK(cctx_group_ctx(g) == ctx);
    CHECK(cctx_value(ctx, &key) == &key);
    check_active(ctx);
    int cancel_line = __LINE__; cctx_cancel(pc);
    check_cause(ctx, ECANCELED, 0, "context canceled", cancel_line, __func__);
    cctx_group_free(g);
    cctx_release(base);
}

TEST(group_bad_input)
{
    CHECK_ERRNO(cctx_group_new(NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_group_ctx(NULL), NULL, EINVAL);
    CHECK_EQ(cctx_group_limit(NULL, 4), EINVAL);
    CHECK_EQ(cctx_group_go(NULL, count_task, NULL), EINVAL);
    CHECK_EQ(cctx_group_wait(NULL), EINVAL);
    cctx_group_free(NULL);

    atomic_int ran = 0;
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_go(g, NULL, NULL), EINVAL);
    CHECK_EQ(cctx_group_limit(g, 4), 0); /* a go refused for EINVAL does not count */
    CHECK_EQ(cctx_group_go(g, count_task, &ran), 0);
    CHECK_EQ(cctx_group_limit(g, 2), EINVAL); /* after the first go */
    CHECK_EQ(cctx_group_limit(g, 0), EINVAL);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&ran), 1);
    cctx_group_free(g);

    /* A go refused because the context ended still fixes the limit. */
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel(pc);
    g = cctx_group_new(parent);
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    CHECK_EQ(cctx_group_limit(g, 2), EINVAL);
    cctx_group_free(g);
    cctx_release(parent);
}
