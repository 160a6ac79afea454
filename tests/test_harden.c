/* SPDX-License-Identifier: MIT */
/*
 * What callbacks, fork() and the edges of the clock must not do to the
 * library: a blocking after-function does not hold up other deadlines; a stop
 * of a queued registration never waits; a child of fork() has its own timer,
 * its own done descriptors and no thread it did not ask for; time arithmetic
 * is total; deadlines keep firing while exit() runs its handlers.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

/* A gate an after-function waits at until the test opens it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open, reached;
};
#define GATE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false}

static void gate_wait(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->reached = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_until_reached(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->reached)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}


/* An after-function meant to run when the deadline fires, not at
 * registration: a slow machine may pass the deadline first, and then it
 * would run at once on the registering thread. deadline_then registers it on
 * a fresh context with a deadline, growing the timeout until the
 * registration comes first. */
struct later {
    void (*fn)(void *arg);
    void *arg;
    pthread_t registrar;
    atomic_int too_late;
    cctx_after_t reg;
};

static void later_fn(void *arg)
{
    struct later *l = arg;
    if (pthread_equal(pthread_self(), l->registrar)) {
        atomic_store(&l->too_late, 1);
        return;
    }
    l->fn(l->arg);
}

/* make(timeout) returns the context (a reference the caller keeps). */
static cctx_t *deadline_then(struct later *l, cctx_t *(*make)(int64_t timeout))
{
    l->registrar = pthread_self();
    for (int64_t timeout = CCTX_MSEC(5);; timeout *= 4) {
        cctx_t *c = make(timeout);
        CHECK(c != NULL);
        atomic_store(&l->too_late, 0);
        CHECK_EQ(cctx_after_func(c, &l->reg, later_fn, l), 0);
        if (!atomic_load(&l->too_late))
            return c;
        cctx_release(c);
        CHECK(timeout < CCTX_SEC(60));
    }
}

static cctx_t *plain_timeout(int64_t timeout)
{
    return cctx_with_timeout(cctx_background(), timeout, NULL);
}

/* ---- A blocking after-function and the timer --------------------------------- */

TEST(harden_blocking_after_func_does_not_delay_other_deadlines)
{
    struct gate g = GATE_INIT;
    struct later l = {.fn = gate_wait, .arg = &g};
    cctx_t *a = deadline_then(&l, plain_timeout);
    gate_until_reached(&g); /* a fired, and its after-function blocks */

    /* While it blocks, other deadlines fire: before, the timer thread ran
     * it and no deadline fired again until it returned. */
    for (int i = 0; i < 3; i++) {
        cctx_t *b = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
        CHECK_EQ(cctx_wait(b, CCTX_SEC(10)), ETIMEDOUT);
        cctx_release(b);
    }
    gate_open(&g);
    CHECK(!cctx_after_stop(&l.reg)); /* waits for it to return */
    cctx_release(a);
}

static cctx_t *waited_on;                /* set before `published` opens */
static struct gate published = GATE_INIT;
static struct gate returned = GATE_INIT; /* `reached` once fn's wait returned */

static void wait_for_other_deadline(void *arg)
{
    (void)arg;
    gate_wait(&published);
    if (cctx_wait(waited_on, -1) == ETIMEDOUT) {
        pthread_mutex_lock(&returned.mu);
        returned.reached = true;
        pthread_cond_broadcast(&returned.cv);
        pthread_mutex_unlock(&returned.mu);
    }
}

static void after_func_waits_on_deadline(void)
{
    waited_on = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    struct later l = {.fn = wait_for_other_deadline};
    cctx_t *a = deadline_then(&l, plain_timeout);
    /* waited_on's own deadline, after a's registration: it can only fire
     * while a's after-function waits for it. */
    cctx_t *w = cctx_with_timeout(waited_on, CCTX_MSEC(40), NULL);
    cctx_release(waited_on);
    waited_on = w;
    gate_open(&published);
    gate_until_reached(&returned); /* fn saw waited_on's deadline fire */
    CHECK(!cctx_after_stop(&l.reg));
    /* And deadlines still fire afterwards. */
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    cctx_release(c);
    cctx_release(a);
    cctx_release(waited_on);
}

TEST(harden_after_func_waiting_on_a_deadline_does_not_stop_the_timer)
{
    /* Before, the timer thread waited in fn for a deadline only it could
     * fire: no deadline ever fired again. */
    run_with_watchdog(after_func_waits_on_deadline, 20);
}

/* A value destructor run by the last release of a deadline's context is
 * user code too: it runs on a runner, not on the timer thread. */
static struct gate destroy_gate = GATE_INIT;
static pthread_t test_thread;
static void destroy_blocks(void *value)
{
    (void)value;
    if (!pthread_equal(pthread_self(), test_thread)) /* not a too-early retry */
        gate_wait(&destroy_gate);
}
static const char key_v;

static cctx_t *made; /* written before the registration that reads it */

static void release_inside(void *arg)
{
    (void)arg;
    cctx_release(made); /* the last reference of a chain with a blocking destructor */
}

static cctx_t *timeout_under_value(int64_t timeout)
{
    cctx_t *v = cctx_with_value(cctx_background(), &key_v, NULL, destroy_blocks);
    made = cctx_with_timeout(v, timeout, NULL);
    cctx_release(v); /* made holds v */
    return made;
}

TEST(harden_blocking_destructor_run_by_a_deadline_does_not_delay_others)
{
    test_thread = pthread_self();
    struct later l = {.fn = release_inside};
    deadline_then(&l, timeout_under_value);
    gate_until_reached(&destroy_gate);
    cctx_t *b = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    CHECK_EQ(cctx_wait(b, CCTX_SEC(10)), ETIMEDOUT);
    cctx_release(b);
    gate_open(&destroy_gate);
    CHECK(!cctx_after_stop(&l.reg));
}

/* Two deadlines whose after-functions each stop the other's, both running
 * on runners at once ("whichever fires first cancels the other"): the stop
 * that would close the cycle returns false instead of waiting forever. */
static pthread_barrier_t both_in;
static struct later mutual[2];
static atomic_int mutual_done;
static struct gate mutual_gate = GATE_INIT;

static void stop_the_other(void *arg)
{
    int me = (int)(intptr_t)arg;
    pthread_barrier_wait(&both_in);
    CHECK(!cctx_after_stop(&mutual[1 - me].reg)); /* running: it cannot be stopped */
    if (atomic_fetch_add(&mutual_done, 1) == 1) {
        pthread_mutex_lock(&mutual_gate.mu);
        mutual_gate.reached = true;
        pthread_cond_broadcast(&mutual_gate.cv);
        pthread_mutex_unlock(&mutual_gate.mu);
    }
}

static void running_after_funcs_stop_each_other(void)
{
    pthread_barrier_init(&both_in, NULL, 2);
    cctx_t *c[2];
    for (int i = 0; i < 2; i++) {
        mutual[i] = (struct later){.fn = stop_the_other, .arg = (void *)(intptr_t)i};
        c[i] = deadline_then(&mutual[i], plain_timeout);
    }
    gate_until_reached(&mutual_gate);
    for (int i = 0; i < 2; i++) {
        CHECK(!cctx_after_stop(&mutual[i].reg));
        cctx_release(c[i]);
    }
    pthread_barrier_destroy(&both_in);
}

TEST(harden_running_deadline_after_funcs_that_stop_each_other_return)
{
    run_with_watchdog(running_after_funcs_stop_each_other, 30);
}

/* After-functions of deadlines that fire together each get a runner: one
 * that blocks does not hold up the other, even when a runner was idle. */
static struct gate second_ran = GATE_INIT;
static void note_second(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&second_ran.mu);
    second_ran.reached = true;
    pthread_cond_broadcast(&second_ran.cv);
    pthread_mutex_unlock(&second_ran.mu);
}
static int64_t shared_deadline;
static cctx_t *at_shared_deadline(int64_t timeout)
{
    shared_deadline = cctx_now() + timeout;
    return cctx_with_deadline(cctx_background(), shared_deadline, NULL);
}
static cctx_t *at_same_deadline(int64_t timeout)
{
    (void)timeout;
    return cctx_with_deadline(cctx_background(), shared_deadline, NULL);
}


static void deadlines_together_each_get_a_runner(void)
{
    /* One runner idle: a deadline whose after-function has returned. */
    struct gate warm = GATE_INIT;
    warm.open = true;
    struct later w = {.fn = gate_wait, .arg = &warm};
    cctx_t *wc = deadline_then(&w, plain_timeout);
    gate_until_reached(&warm);
    CHECK(!cctx_after_stop(&w.reg));
    cctx_release(wc);

    struct gate block = GATE_INIT;
    struct later a = {.fn = gate_wait, .arg = &block}, b = {.fn = note_second};
    cctx_t *ca, *cb;
    for (;;) {
        ca = deadline_then(&a, at_shared_deadline);
        cb = at_same_deadline(0);
        b.registrar = pthread_self();
        atomic_store(&b.too_late, 0);
        CHECK_EQ(cctx_after_func(cb, &b.reg, later_fn, &b), 0);
        if (!atomic_load(&b.too_late))
            break;
        /* Too slow to register both before the deadline: again, later. */
        gate_open(&block);
        CHECK(!cctx_after_stop(&a.reg));
        block.open = false;
        cctx_release(ca);
        cctx_release(cb);
    }
    gate_until_reached(&second_ran); /* while a's after-function blocks */
    gate_open(&block);
    CHECK(!cctx_after_stop(&a.reg));
    CHECK(!cctx_after_stop(&b.reg));
    cctx_release(ca);
    cctx_release(cb);
}

TEST(harden_after_funcs_of_deadlines_firing_together_each_get_a_runner)
{
    run_with_watchdog(deadlines_together_each_get_a_runner, 30);
}

/* A firing that cannot allocate its cause, and must hand the rest of its
 * marking to a runner (a descendant's lock is busy), still marks it all. */
static void oom_firing_handed_off(void)
{
    for (int64_t timeout = CCTX_MSEC(20);; timeout *= 2) {
        cctx_t *t = cctx_with_timeout(cctx_background(), timeout, NULL);
        cctx_t *c = cctx_with_cancel(t, NULL);
        cctx__lock(c); /* busy when the deadline fires */
        cctx__test_fail_alloc(1);
        if (cctx_err(t) == 0) {
            CHECK_EQ(cctx_wait(t, CCTX_SEC(10)), ETIMEDOUT);
            cctx__test_fail_alloc(0);
            cctx__unlock(c);
            CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
            cctx_release(c);
            cctx_release(t);
            return;
        }
        cctx__test_fail_alloc(0); /* fired before the lock: again, later */
        cctx__unlock(c);
        cctx_release(c);
        cctx_release(t);
        CHECK(timeout < CCTX_SEC(60));
    }
}

TEST(harden_firing_without_memory_still_marks_what_it_handed_off)
{
    run_with_watchdog(oom_firing_handed_off, 30);
}

/* ---- Stopping a queued registration ------------------------------------------- */

static struct rec queued_rec;

static void *cancel_thread(void *cancel)
{
    cctx_cancel(cancel);
    return NULL;
}

static void stop_queued_while_first_blocks(void)
{
    struct gate g = GATE_INIT;
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_after_t first;
    /* Both orders of the list: one of the two is still queued while the
     * other blocks. */
    memset(&queued_rec, 0, sizeof queued_rec);
    CHECK_EQ(cctx_after_func(c, &queued_rec.reg, rec_fn, &queued_rec), 0);
    CHECK_EQ(cctx_after_func(c, &first, gate_wait, &g), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_thread, cc), 0);
    gate_until_reached(&g);
    bool stopped = cctx_after_stop(&queued_rec.reg);
    /* Either it had already run (then gate_wait came second), or it was
     * queued behind the blocked one and the stop took it out at once. */
    CHECK(stopped == (atomic_load(&queued_rec.runs) == 0));
    gate_open(&g);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(atomic_load(&queued_rec.runs), stopped ? 0 : 1);
    CHECK(!cctx_after_stop(&first));
    cctx_release(c);
}

TEST(harden_stop_of_a_queued_registration_returns_at_once)
{
    run_with_watchdog(stop_queued_while_first_blocks, 20);
}

/* Two cancellers; each one's first after-function stops the other side's
 * second registration, which has not started. Before, each stop waited for
 * the other canceller, which waited in turn. */
struct side {
    cctx_t *ctx;
    cctx_cancel_t *cancel;
    cctx_after_t regs[2];
    atomic_int first;   /* index + 1 of the registration that ran first */
    atomic_int ran[2];
    bool stopped_other; /* the other side's registration, stopped by this side */
    struct side *other;
};
static pthread_barrier_t both_running;

static void stop_peer(struct side *s, int me)
{
    atomic_fetch_add(&s->ran[me], 1);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&s->first, &expected, me + 1))
        return; /* the second one to run on this side does nothing */
    pthread_barrier_wait(&both_running);
    int theirs = atomic_load(&s->other->first) - 1;
    s->stopped_other = cctx_after_stop(&s->other->regs[1 - theirs]);
    /* Neither side's first returns (and lets its queue go on) before both
     * stops are done. */
    pthread_barrier_wait(&both_running);
}
static struct side sides[2];
static void stop_peer_0_0(void *a) { (void)a; stop_peer(&sides[0], 0); }
static void stop_peer_0_1(void *a) { (void)a; stop_peer(&sides[0], 1); }
static void stop_peer_1_0(void *a) { (void)a; stop_peer(&sides[1], 0); }
static void stop_peer_1_1(void *a) { (void)a; stop_peer(&sides[1], 1); }

static void cancel_side(void *arg)
{
    cctx_cancel(((struct side *)arg)->cancel);
}

static void after_funcs_stop_each_other(void)
{
    void (*fns[2][2])(void *) = {{stop_peer_0_0, stop_peer_0_1}, {stop_peer_1_0, stop_peer_1_1}};
    pthread_barrier_init(&both_running, NULL, 2);
    for (int i = 0; i < 2; i++) {
        memset(&sides[i], 0, sizeof sides[i]);
        sides[i].other = &sides[1 - i];
        sides[i].ctx = cctx_with_cancel(cctx_background(), &sides[i].cancel);
        for (int j = 0; j < 2; j++)
            CHECK_EQ(cctx_after_func(sides[i].ctx, &sides[i].regs[j], fns[i][j], NULL), 0);
    }
    struct gang g;
    gang_init(&g, 2, false);
    gang_spawn(&g, cancel_side, &sides[0]);
    gang_spawn(&g, cancel_side, &sides[1]);
    gang_join(&g);
    for (int i = 0; i < 2; i++) {
        CHECK(sides[i].stopped_other);
        CHECK_EQ(atomic_load(&sides[i].ran[0]) + atomic_load(&sides[i].ran[1]), 1);
        cctx_release(sides[i].ctx);
    }
    pthread_barrier_destroy(&both_running);
}

TEST(harden_after_funcs_that_stop_each_other_do_not_deadlock)
{
    for (int round = 0; round < 20; round++)
        run_with_watchdog(after_funcs_stop_each_other, 20);
}

/* ---- Time at the ends of the clock ----------------------------------------------- */

TEST(harden_time_arithmetic_at_the_ends_of_the_clock)
{
    cctx_fake_clock_start(INT64_MIN);
    cctx_t *d = cctx_with_deadline(cctx_background(), INT64_MAX - 1, NULL);
    CHECK_EQ(cctx_remaining(d), INT64_MAX); /* INT64_MAX - 1 - INT64_MIN saturates */
    cctx_t *p = cctx_with_deadline(cctx_background(), INT64_MIN + 5, NULL);
    CHECK_EQ(cctx_remaining(p), 5);
    cctx_release(p);

    cctx_fake_clock_start(INT64_MAX);
    CHECK_EQ(cctx_remaining(d), -1);
    CHECK_EQ(cctx_err(d), ETIMEDOUT); /* due: starting the clock fired it */
    /* A zero wait returns at once, on every kind of context. */
    CHECK_EQ(cctx_wait(cctx_background(), 0), 0);
    cctx_t *w = cctx_without_cancel(d);
    CHECK_EQ(cctx_wait(w, 0), 0);
    cctx_release(w);
    /* At the end of time every deadline has been reached: a zero timeout
     * (which saturates to INT64_MAX) and INT64_MAX itself are born done. */
    cctx_t *z = cctx_with_timeout(cctx_background(), 0, NULL);
    CHECK_EQ(cctx_err(z), ETIMEDOUT);
    cctx_release(z);
    cctx_t *n = cctx_with_timeout(cctx_background(), -1, NULL);
    CHECK_EQ(cctx_err(n), ETIMEDOUT);
    cctx_release(n);
    cctx_t *e = cctx_with_deadline(cctx_background(), INT64_MAX - 1, NULL);
    CHECK_EQ(cctx_err(e), ETIMEDOUT);
    cctx_release(e);
    cctx_t *f = cctx_with_deadline(cctx_background(), INT64_MAX, NULL);
    CHECK_EQ(cctx_err(f), ETIMEDOUT);
    cctx_release(f);
    cctx_fake_clock_start(INT64_MAX - 1); /* anywhere else: no deadline */
    f = cctx_with_deadline(cctx_background(), CCTX_NO_DEADLINE, NULL);
    CHECK_EQ(cctx_err(f), 0);
    CHECK(!cctx_deadline(f, NULL));
    cctx_release(f);
    cctx_release(d);
    cctx_fake_clock_stop();
}

/* ---- fork ------------------------------------------------------------------------ */

/* The child's own deadline fires within a generous bound; 0 if it does. */
static int own_deadline_fires(void)
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    if (!c)
        return 20;
    int r = cctx_wait(c, CCTX_SEC(5));
    cctx_release(c);
    return r == ETIMEDOUT ? 0 : 21;
}

TEST(harden_fork_child_starts_no_thread_until_it_needs_one)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_t *armed = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    cctx_t *fired = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    CHECK_EQ(cctx_wait(fired, CCTX_SEC(5)), ETIMEDOUT); /* the timer thread runs */
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        if (thread_count() != 1)
            _exit(1); /* the fork handlers started a thread */
        _exit(own_deadline_fires());
    }
    CHECK_EQ(child_exit_status(pid), 0);
    cctx_release(fired);
    cctx_release(armed);
}

TEST(harden_fork_while_a_context_lock_is_held_leaves_the_child_timer_working)
{
    SKIP_FORK_UNDER_SANITIZERS();
    /* A context whose lock another thread holds at the fork (here: this
     * thread, which the child does not continue as the holder) and whose
     * deadline is due in the child. */
    cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    cctx__lock(t);
    pid_t pid = fork_with_alarm();
    if (pid != 0)
        cctx__unlock(t);
    if (pid == 0) {
        real_sleep_ms(20); /* t is due: the child's timer meets its lock first */
        _exit(own_deadline_fires());
    }
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_wait(t, CCTX_SEC(5)), ETIMEDOUT);
    cctx_release(t);
}

TEST(harden_fork_during_a_cancellation_leaves_the_child_timer_working)
{
    SKIP_FORK_UNDER_SANITIZERS();
    /* The state a fork leaves when it lands between a cancellation marking
     * a context and disarming its timer: done, still armed, and the marking
     * never completes in the child (its thread is not there). */
    static struct cctx__cause half = {
        .origin = NULL, .word = 0, .msg = "context canceled", .file = "?", .func = "?"};
    cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    struct cctx__cancelable *c = (struct cctx__cancelable *)t;
    cctx__lock(t);
    atomic_store(&c->cause, (uintptr_t)&half);
    atomic_fetch_or(&t->state, ECANCELED);
    cctx__unlock(t);
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        real_sleep_ms(20);
        _exit(own_deadline_fires());
    }
    atomic_store(&half.word, CAUSE_MARKED); /* the parent's "canceller" finishes */
    CHECK_EQ(child_exit_status(pid), 0);
    cctx__timer_disarm((struct cctx__timer *)t);
    cctx_release(t);
}

TEST(harden_fork_child_has_its_own_done_descriptors)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    int fd = cctx_done_fd(c);
    CHECK(fd >= 0);
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        int mine = cctx_done_fd(c);
        if (mine < 0 || mine == fd)
            _exit(1); /* the parent's descriptor handed out in the child */
        cctx_cancel(cc);
        struct pollfd p = {.fd = mine, .events = POLLIN};
        if (poll(&p, 1, 0) != 1)
            _exit(2);
        cctx_release(c);
        _exit(0);
    }
    CHECK_EQ(child_exit_status(pid), 0);
    /* The child's cancel reached neither the parent's context nor its
     * descriptor. */
    CHECK_EQ(cctx_err(c), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0);
    cctx_cancel(cc);
    CHECK_EQ(poll(&p, 1, 0), 1);
    cctx_release(c);
}

/* ---- exit ------------------------------------------------------------------------- */

static atomic_int exit_after_ran;
static void note_after(void *arg)
{
    (void)arg;
    atomic_store_explicit(&exit_after_ran, 1, memory_order_release);
}

static void wait_on_deadline_at_exit(void)
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    cctx_after_t reg;
    cctx_after_func(c, &reg, note_after, NULL);
    int err = cctx_wait(c, CCTX_SEC(10));
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load_explicit(&exit_after_ran, memory_order_acquire) && real_now() < until)
        real_sleep_ms(1);
    printf("at exit: %s, after-function %s\n", err == ETIMEDOUT ? "fired" : "not fired",
           atomic_load(&exit_after_ran) ? "ran" : "did not run");
    fflush(stdout);
    cctx_after_stop(&reg);
    cctx_release(c);
}

CHILD(deadline_in_atexit)
{
    /* The library's threads are running when exit() starts. */
    cctx_t *warm = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    cctx_wait(warm, -1);
    cctx_release(warm);
    atexit(wait_on_deadline_at_exit);
    exit(0);
}

TEST(harden_deadlines_fire_while_exit_runs_atexit_handlers)
{
    struct child c;
    run_child("deadline_in_atexit", (const char *const[]){NULL}, &c);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), 0);
    CHECK(strstr(c.out, "at exit: fired, after-function ran") != NULL);
    child_done(&c);
}
