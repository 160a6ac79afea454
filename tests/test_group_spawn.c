/* SPDX-License-Identifier: MIT */
/*
 * A group whose pool cannot create a thread (pthread_create failing with
 * EAGAIN, as under RLIMIT_NPROC or a cgroup's pids.max, which a test cannot
 * set for itself when it runs as root). group.c creates its threads through
 * the hook cctx__group_thread_create; the tests here swap in one that fails
 * the n-th creation from now, or several, or every one. What <cctx/group.h>
 * promises then: that go returns EAGAIN (ENOMEM for ENOMEM) having started
 * nothing, that the group, its context and its pool are as they were (the
 * tasks already running go on, an idle thread still takes the next task
 * without a creation, a later go may succeed), and that cctx_group_wait
 * returns what the tasks returned, with every created thread joined.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- the hook --------------------------------------------------------------------- */

/* The pool's threads that have started and not yet returned from their
 * start function: when a wait returns, none, as it joined them all. */
static atomic_int threads_live;

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void *counted_start(void *arg)
{
    struct start s = *(struct start *)arg;
    free(arg);
    void *r = s.fn(s.arg);
    atomic_fetch_sub(&threads_live, 1);
    return r;
}

/* pthread_create, counting the thread in threads_live. */
static int create_counted(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    struct start *s = malloc(sizeof *s);
    CHECK(s != NULL);
    *s = (struct start){fn, arg};
    atomic_fetch_add(&threads_live, 1);
    int r = pthread_create(thread, attr, counted_start, s);
    if (r != 0) {
        atomic_fetch_sub(&threads_live, 1);
        free(s);
    }
    return r;
}

/* Creations are numbered from 1 from the last fail_creates; those numbered
 * fail_from to fail_from + fail_count - 1 fail with fail_err (fail_count < 0:
 * every one from fail_from on). */
static atomic_int creates_tried, creates_done;
static atomic_int fail_from, fail_count, fail_err;

static int flaky_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                        void *arg)
{
    int n = atomic_fetch_add(&creates_tried, 1) + 1;
    int from = atomic_load(&fail_from), count = atomic_load(&fail_count);
    if (n >= from && (count < 0 || n - from < count))
        return atomic_load(&fail_err);
    int r = create_counted(thread, attr, fn, arg);
    if (r == 0)
        atomic_fetch_add(&creates_done, 1);
    return r;
}

static void fail_creates(int nth, int count, int err)
{
    atomic_store(&creates_tried, 0);
    atomic_store(&creates_done, 0);
    atomic_store(&fail_from, nth);
    atomic_store(&fail_count, count);
    atomic_store(&fail_err, err);
    atomic_store(&cctx__group_thread_create, flaky_create);
}

/* Back to creations that work, still counted. */
static void creates_as_usual(void)
{
    atomic_store(&cctx__group_thread_create, create_counted);
}

/* ---- tasks ------------------------------------------------------------------------- */

static int must_not_run(cctx_t *ctx, void *arg)
{
    (void)ctx, (void)arg;
    fprintf(stderr, "a task ran whose go failed\n");
    abort();
}

/* Counts its runs, notes its thread, and returns code. */
struct counted {
    atomic_int runs;
    _Atomic pid_t tid;
    int code;
};

static int counted_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct counted *c = arg;
    atomic_store(&c->tid, thread_id());
    atomic_fetch_add(&c->runs, 1);
    return c->code;
}

/* Holds its thread until the gate opens. */
struct held {
    struct latch started, gate;
    atomic_int finished;
};

static int held_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct held *h = arg;
    latch_add(&h->started);
    latch_wait_open(&h->gate);
    atomic_fetch_add(&h->finished, 1);
    return 0;
}

/* ---- the first thread ----------------------------------------------------------------- */

static void first_thread_fails(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    cctx_t *ctx = cctx_group_ctx(g);

    fail_creates(1, -1, EAGAIN);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN); /* tried again, not remembered */
    CHECK_EQ(atomic_load(&creates_tried), 2);
    /* Any other error of pthread_create reads as EAGAIN, but ENOMEM. */
    fail_creates(1, -1, EPERM);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    fail_creates(1, -1, ENOMEM);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ENOMEM);
    check_active(ctx); /* not canceled: the caller may retry */
    CHECK_EQ(atomic_load(&threads_live), 0);
    /* The go was called, though it started nothing: the limit is fixed. */
    CHECK_EQ(cctx_group_limit(g, 2), EINVAL);

    int wait_line = __LINE__ + 1;
    CHECK_EQ(cctx_group_wait(g), 0); /* no go failure */
    check_cause(ctx, ECANCELED, 0, "context canceled", wait_line, "first_thread_fails");
    CHECK_EQ(atomic_load(&creates_tried), 1); /* the wait creates nothing */
    creates_as_usual();
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    cctx_group_free(g);
}

TEST(group_go_returns_eagain_when_its_first_thread_cannot_be_created)
{
    run_with_watchdog(first_thread_fails, 30);
}

static void first_thread_fails_then_one_starts(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    fail_creates(1, 2, EAGAIN);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    check_active(cctx_group_ctx(g));
    struct counted c = {.code = 0};
    CHECK_EQ(cctx_group_go(g, counted_task, &c), 0); /* the third creation works */
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&c.runs), 1);
    CHECK_EQ(atomic_load(&creates_tried), 3);
    CHECK_EQ(atomic_load(&creates_done), 1);
    CHECK_EQ(atomic_load(&threads_live), 0); /* joined by the wait */
    creates_as_usual();
    cctx_group_free(g);
}

TEST(group_go_after_a_failed_creation_creates_a_thread_again)
{
    run_with_watchdog(first_thread_fails_then_one_starts, 30);
}

/* ---- while others run ----------------------------------------------------------------- */

static void later_thread_fails(void)
{
    enum { RUNNING = 3 };
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    cctx_t *ctx = cctx_group_ctx(g);
    struct held h = {.started = LATCH_INIT, .gate = LATCH_INIT};

    fail_creates(RUNNING + 1, 1, EAGAIN);
    for (int i = 0; i < RUNNING; i++)
        CHECK_EQ(cctx_group_go(g, held_task, &h), 0);
    latch_wait_n(&h.started, RUNNING);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    /* The running tasks are untouched: their context is live, and they
     * still count for the wait. */
    check_active(ctx);
    CHECK_EQ(atomic_load(&h.finished), 0);
    CHECK_EQ(atomic_load(&threads_live), RUNNING);

    /* The next creation works: a fourth task runs beside the three. */
    struct counted c = {.code = 0};
    CHECK_EQ(cctx_group_go(g, counted_task, &c), 0);
    latch_open(&h.gate);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&h.finished), RUNNING);
    CHECK_EQ(atomic_load(&c.runs), 1);
    CHECK_EQ(atomic_load(&creates_done), RUNNING + 1);
    CHECK_EQ(atomic_load(&threads_live), 0);
    creates_as_usual();
    cctx_group_free(g);
}

TEST(group_failed_creation_leaves_the_running_tasks_and_the_context_alone)
{
    run_with_watchdog(later_thread_fails, 30);
}

/* A task fails while a creation for another fails: the wait returns the
 * task's value, never the go's EAGAIN, and the task's cause stays. */
static void task_failure_and_creation_failure(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    struct counted c = {.code = 42};
    fail_creates(2, -1, EAGAIN);
    int go_line = __LINE__ + 1;
    CHECK_EQ(cctx_group_go(g, counted_task, &c), 0);
    CHECK(cctx_wait(cctx_group_ctx(g), CCTX_SEC(10)) == ECANCELED);
    /* The group's context has ended: go says so, before any creation. */
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), ECANCELED);
    CHECK_EQ(atomic_load(&creates_tried), 1);
    CHECK_EQ(cctx_group_wait(g), 42);
    check_cause(cctx_group_ctx(g), ECANCELED, 42, "group task failed", go_line,
                "task_failure_and_creation_failure");
    creates_as_usual();
    cctx_group_free(g);

    /* And a task that fails after a creation failed. */
    g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    struct held h = {.started = LATCH_INIT, .gate = LATCH_INIT};
    fail_creates(2, 1, EAGAIN);
    CHECK_EQ(cctx_group_go(g, held_task, &h), 0);
    latch_wait_n(&h.started, 1);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    c = (struct counted){.code = 7};
    CHECK_EQ(cctx_group_go(g, counted_task, &c), 0);
    latch_open(&h.gate);
    CHECK_EQ(cctx_group_wait(g), 7);
    creates_as_usual();
    cctx_group_free(g);
}

TEST(group_wait_returns_the_tasks_failure_not_a_creation_failure)
{
    run_with_watchdog(task_failure_and_creation_failure, 30);
}

/* ---- idle threads and the limit --------------------------------------------------------- */

static void idle_thread_needs_no_creation(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    struct counted first = {.code = 0};
    CHECK_EQ(cctx_group_go(g, counted_task, &first), 0);
    while (atomic_load(&first.runs) == 0)
        real_sleep_ms(1);
    /* Back in the pool and asleep there. */
    wait_until_blocked(atomic_load(&first.tid));

    fail_creates(1, -1, EAGAIN);
    struct counted second = {.code = 0};
    CHECK_EQ(cctx_group_go(g, counted_task, &second), 0);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&second.runs), 1);
    CHECK_EQ(atomic_load(&second.tid), atomic_load(&first.tid));
    CHECK_EQ(atomic_load(&creates_tried), 0); /* none was even tried */
    creates_as_usual();
    cctx_group_free(g);
}

TEST(group_idle_thread_takes_a_task_when_no_thread_can_be_created)
{
    run_with_watchdog(idle_thread_needs_no_creation, 30);
}

/* A go on another thread, to be seen blocked on a full group. */
struct go_call {
    cctx_group_t *g;
    int (*fn)(cctx_t *ctx, void *arg);
    void *arg;
    _Atomic pid_t tid;
    int r;
    pthread_t thread;
};

static void *go_main(void *arg)
{
    struct go_call *call = arg;
    atomic_store(&call->tid, thread_id());
    call->r = cctx_group_go(call->g, call->fn, call->arg);
    return NULL;
}

static void go_call_start(struct go_call *call)
{
    CHECK_EQ(pthread_create(&call->thread, NULL, go_main, call), 0);
    while (atomic_load(&call->tid) == 0)
        real_sleep_ms(1);
}

/* With a limit of 2: one task holds a slot, a creation fails. The failed go
 * took no slot: the next go starts a second task, and a third blocks until
 * a slot frees, then runs on a thread that finished (none is created). */
static void limit_and_failed_creation(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, 2), 0);
    struct held h = {.started = LATCH_INIT, .gate = LATCH_INIT};
    fail_creates(2, 1, EAGAIN);
    CHECK_EQ(cctx_group_go(g, held_task, &h), 0);
    CHECK_EQ(cctx_group_go(g, must_not_run, NULL), EAGAIN);
    CHECK_EQ(cctx_group_go(g, held_task, &h), 0);
    latch_wait_n(&h.started, 2);
    CHECK_EQ(atomic_load(&creates_done), 2);

    /* Full: this go blocks, and creations fail from now on. */
    fail_creates(1, -1, EAGAIN);
    struct counted c = {.code = 0};
    struct go_call call = {.g = g, .fn = counted_task, .arg = &c, .r = -1};
    go_call_start(&call);
    wait_until_blocked(atomic_load(&call.tid));
    CHECK_EQ(atomic_load(&c.runs), 0);

    latch_open(&h.gate);
    CHECK_EQ(pthread_join(call.thread, NULL), 0);
    CHECK_EQ(call.r, 0);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&c.runs), 1);
    CHECK_EQ(atomic_load(&h.finished), 2);
    CHECK_EQ(atomic_load(&creates_tried), 0);
    CHECK_EQ(atomic_load(&threads_live), 0);
    creates_as_usual();
    cctx_group_free(g);
}

TEST(group_failed_creation_takes_no_slot_of_the_limit)
{
    run_with_watchdog(limit_and_failed_creation, 30);
}

/* Holds its thread until the gate opens, then leaves it (pthread_exit): the
 * slot comes back with no idle thread to take the next task. */
static int held_then_exits(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct held *h = arg;
    latch_add(&h->started);
    latch_wait_open(&h->gate);
    atomic_fetch_add(&h->finished, 1);
    pthread_exit(NULL);
}

/* With a limit of 1: two goes wait for the slot of a task whose thread
 * leaves the pool. The slot's wake-up reaches one of them, which needs a
 * thread, cannot create one and returns EAGAIN without taking the slot.
 * The other must then take it: it slept on, with the slot free, until a
 * wait closed the group (for ever if none came). */
static void failed_creation_passes_the_slot_on(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    /* Not counted in threads_live: its thread leaves past the count. */
    atomic_store(&cctx__group_thread_create, pthread_create);
    struct held h = {.started = LATCH_INIT, .gate = LATCH_INIT};
    CHECK_EQ(cctx_group_go(g, held_then_exits, &h), 0);
    latch_wait_n(&h.started, 1);

    fail_creates(1, 1, EAGAIN); /* the first creation fails, the next works */
    struct counted c[2] = {{.code = 0}, {.code = 0}};
    struct go_call calls[2];
    for (int i = 0; i < 2; i++) {
        calls[i] = (struct go_call){.g = g, .fn = counted_task, .arg = &c[i], .r = -1};
        go_call_start(&calls[i]);
        wait_until_blocked(atomic_load(&calls[i].tid));
    }

    latch_open(&h.gate);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(calls[i].thread, NULL), 0); /* before: the watchdog */
    CHECK((calls[0].r == 0 && calls[1].r == EAGAIN) || (calls[0].r == EAGAIN && calls[1].r == 0));
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&c[0].runs) + atomic_load(&c[1].runs), 1);
    CHECK_EQ(atomic_load(&creates_tried), 2);
    CHECK_EQ(atomic_load(&threads_live), 0);
    creates_as_usual();
    cctx_group_free(g);
}

TEST(group_go_whose_creation_fails_passes_the_free_slot_to_the_next_go)
{
    run_with_watchdog(failed_creation_passes_the_slot_on, 30);
}

/* ---- tasks that start tasks ---------------------------------------------------------- */

struct nested {
    cctx_group_t *g;
    struct counted leaf;
    int first, second; /* what the task's two go calls returned */
};

static int starting_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct nested *n = arg;
    n->first = cctx_group_go(n->g, must_not_run, NULL);
    n->second = cctx_group_go(n->g, counted_task, &n->leaf);
    return 0;
}

static void task_sees_the_failure(void)
{
    struct nested n = {.g = cctx_group_new(cctx_background())};
    CHECK(n.g != NULL);
    fail_creates(2, 1, EAGAIN);
    CHECK_EQ(cctx_group_go(n.g, starting_task, &n), 0);
    CHECK_EQ(cctx_group_wait(n.g), 0); /* and waits for the leaf */
    CHECK_EQ(n.first, EAGAIN);
    CHECK_EQ(n.second, 0);
    CHECK_EQ(atomic_load(&n.leaf.runs), 1);
    creates_as_usual();
    cctx_group_free(n.g);
}

TEST(group_go_from_a_task_returns_eagain_to_the_task)
{
    run_with_watchdog(task_sees_the_failure, 30);
}

/* ---- many goes at once ------------------------------------------------------------- */

/* Every third creation fails, while four threads call go: each task whose go
 * returned 0 runs once, each whose go failed never, and the wait returns
 * once they all have, having joined every thread created. */
static atomic_int every_third_tried;

static int every_third_fails(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg)
{
    if ((atomic_fetch_add(&every_third_tried, 1) + 1) % 3 == 0)
        return EAGAIN;
    return create_counted(thread, attr, fn, arg);
}

enum { SUBMITTERS = 4, EACH = TEST_UNDER_TSAN ? 50 : 250 };

struct crowd {
    cctx_group_t *g;
    atomic_int next;
    atomic_int runs[SUBMITTERS * EACH];
    int results[SUBMITTERS * EACH];
};

struct crowd_arg {
    struct crowd *c;
    int i;
};

static int crowd_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct crowd_arg *a = arg;
    atomic_fetch_add(&a->c->runs[a->i], 1);
    return 0;
}

static void crowd_submit(void *arg)
{
    static struct crowd_arg args[SUBMITTERS * EACH];
    struct crowd *c = arg;
    for (int k = 0; k < EACH; k++) {
        int i = atomic_fetch_add(&c->next, 1);
        args[i] = (struct crowd_arg){c, i};
        c->results[i] = cctx_group_go(c->g, crowd_task, &args[i]);
    }
}

static void crowd_with_failures(void)
{
    for (int limit = 0; limit <= 3; limit += 3) {
        static struct crowd c;
        memset(&c, 0, sizeof c);
        c.g = cctx_group_new(cctx_background());
        CHECK(c.g != NULL);
        CHECK_EQ(cctx_group_limit(c.g, limit), 0);
        atomic_store(&every_third_tried, 0);
        atomic_store(&cctx__group_thread_create, every_third_fails);
        struct gang gang;
        gang_init(&gang, SUBMITTERS, false);
        for (int i = 0; i < SUBMITTERS; i++)
            gang_spawn(&gang, crowd_submit, &c);
        gang_join(&gang);
        CHECK_EQ(cctx_group_wait(c.g), 0);
        creates_as_usual();
        int failed = 0;
        for (int i = 0; i < SUBMITTERS * EACH; i++) {
            CHECK(c.results[i] == 0 || c.results[i] == EAGAIN);
            CHECK_EQ(atomic_load(&c.runs[i]), c.results[i] == 0);
            failed += c.results[i] != 0;
        }
        printf("limit %d: %d of %d goes failed, %d creations tried\n", limit, failed,
               SUBMITTERS * EACH, atomic_load(&every_third_tried));
        CHECK_EQ(failed, atomic_load(&every_third_tried) / 3);
        CHECK_EQ(atomic_load(&threads_live), 0);
        cctx_group_free(c.g);
    }
}

TEST(group_creations_failing_among_many_goes_lose_and_repeat_no_task)
{
    run_with_watchdog(crowd_with_failures, 60);
}

/* ---- a child of fork() ---------------------------------------------------------------- */

/* The library starts no group thread in the child: a group the child makes
 * has a pool of its own, which creates its threads there, and fails and
 * recovers as anywhere. The parent's group, with an idle thread the child
 * lacks, is not used in the child, and is untouched in the parent. */
TEST(group_in_a_child_of_fork_creation_fails_and_recovers_as_anywhere)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_group_t *pg = cctx_group_new(cctx_background());
    CHECK(pg != NULL);
    struct counted before = {.code = 0};
    CHECK_EQ(cctx_group_go(pg, counted_task, &before), 0);
    while (atomic_load(&before.runs) == 0)
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&before.tid));

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30); /* a hang dies of SIGALRM, which fails the test */
        fail_creates(1, 1, EAGAIN);
        cctx_group_t *g = cctx_group_new(cctx_background());
        if (!g)
            _exit(10);
        if (cctx_group_go(g, must_not_run, NULL) != EAGAIN)
            _exit(11);
        struct counted c = {.code = 0};
        if (cctx_group_go(g, counted_task, &c) != 0)
            _exit(12);
        if (cctx_group_wait(g) != 0 || atomic_load(&c.runs) != 1)
            _exit(13);
        if (atomic_load(&creates_tried) != 2 || atomic_load(&creates_done) != 1)
            _exit(14);
        cctx_group_free(g);
        _exit(0);
    }
    CHECK_EQ(child_exit_status(pid), 0);

    struct counted after = {.code = 0};
    CHECK_EQ(cctx_group_go(pg, counted_task, &after), 0);
    CHECK_EQ(cctx_group_wait(pg), 0);
    CHECK_EQ(atomic_load(&after.runs), 1);
    CHECK_EQ(atomic_load(&after.tid), atomic_load(&before.tid));
    cctx_group_free(pg);
}

/* A child of fork() that ends an ancestor of a parent's group: the group's
 * wake-up for blocked go calls runs there too, and took the group's lock,
 * which a thread the child does not have held at the fork (a task ending,
 * a go starting one). The child hung in its cancel. */
static struct latch lock_held = LATCH_INIT, lock_let_go = LATCH_INIT;

static void *hold_group_lock(void *arg)
{
    cctx__test_group_hold_lock(arg, true);
    latch_open(&lock_held);
    latch_wait_open(&lock_let_go);
    cctx__test_group_hold_lock(arg, false);
    return NULL;
}

TEST(group_child_of_fork_ends_the_parent_of_a_group_whose_lock_was_held)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    cctx_group_t *g = cctx_group_new(parent);
    CHECK(g != NULL);
    pthread_t holder;
    CHECK_EQ(pthread_create(&holder, NULL, hold_group_lock, g), 0);
    latch_wait_open(&lock_held);
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        cctx_cancel(cancel);
        _exit(cctx_err(cctx_group_ctx(g)) == ECANCELED ? 0 : 10);
    }
    CHECK_EQ(child_exit_status(pid), 0);
    latch_open(&lock_let_go);
    CHECK_EQ(pthread_join(holder, NULL), 0);
    CHECK_EQ(cctx_err(cctx_group_ctx(g)), 0); /* the child's cancel is the child's */
    cctx_group_free(g);
    cctx_release(parent);
}

/* ---- a thread cancelled in a group's call ------------------------------------------ */

/* pthread_cancel of a thread blocked in cctx_group_go (the group full) or
 * cctx_group_wait acts at its next cancellation point after the call, which
 * is none: it took the group's lock back as its condition wait unwound, and
 * died holding it, so every later call on the group waited for ever. */
static struct latch task_go = LATCH_INIT;

static int task_until_let_go(cctx_t *ctx, void *arg)
{
    (void)ctx, (void)arg;
    latch_wait_open(&task_go);
    return 0;
}

static int quick_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

struct blocked_call {
    cctx_group_t *g;
    bool wait; /* cctx_group_wait, else cctx_group_go */
    atomic_int tid, quick_ran;
    int r;
};

static void *call_then_test_cancel(void *arg)
{
    struct blocked_call *b = arg;
    atomic_store(&b->tid, thread_id());
    b->r = b->wait ? cctx_group_wait(b->g) : cctx_group_go(b->g, quick_task, &b->quick_ran);
    pthread_testcancel();
    return NULL;
}

static void cancel_blocked_call(bool wait)
{
    static const struct latch fresh = LATCH_INIT;
    task_go = fresh;
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    CHECK_EQ(cctx_group_go(g, task_until_let_go, NULL), 0);
    struct blocked_call b = {.g = g, .wait = wait};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, call_then_test_cancel, &b), 0);
    while (!atomic_load(&b.tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&b.tid));
    CHECK_EQ(pthread_cancel(t), 0);
    latch_open(&task_go);
    join_cancelled(t);
    CHECK_EQ(b.r, 0);                /* the call ran to its end */
    CHECK_EQ(cctx_group_wait(g), 0); /* before: for ever, on the dead thread's lock */
    CHECK_EQ(atomic_load(&b.quick_ran), wait ? 0 : 1);
    cctx_group_free(g);
}

static void cancel_blocked_go(void)
{
    cancel_blocked_call(false);
}

static void cancel_blocked_wait(void)
{
    cancel_blocked_call(true);
}

TEST(group_thread_cancelled_in_a_blocked_go_or_wait_leaves_the_group_usable)
{
    /* Its scopes are not unpoisoned when a cancellation unwinds a thread,
     * and the thread's end then reads as a use after scope. */
    if (TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for a "
                           "use after scope");
    run_with_watchdog(cancel_blocked_go, 30);
    run_with_watchdog(cancel_blocked_wait, 30);
}
