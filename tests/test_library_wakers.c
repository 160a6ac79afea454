/* SPDX-License-Identifier: MIT */
/*
 * The library's own waits on a context (cctx_wait, cctx_wait_any, a
 * cctx_group_go blocked on a full group, cctx_cond_wait) end when the
 * context ends, not after the user's after-functions of that context: those
 * run one after another on the cancelling thread, and one that is slow, or
 * that waits for the very thread the library must wake, would hold the wake
 * up (or never let it come). Each test registers, after the wait began, a user
 * after-function that waits for the waiting call to return, up to a bound
 * far above any wake-up: under last-registered-first order it runs first,
 * so it sees the return only if the library's wake ran before it.
 *
 * The same holds for what the library promises for the moment a context
 * ends: a grace period's clock starts, a process gets its signal, a watched
 * signal gets its disposition back. A user's after-function registered
 * after the library's finds each done already.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>
#include <cctx/io.h>
#include <cctx/proc.h>
#include <cctx/signal.h>
#include <cctx/testing.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

struct waiting {
    cctx_t *ctx;
    atomic_int tid;      /* the waiting thread, once it runs */
    atomic_int returned; /* the waiting call returned */
    int result;
    /* for the group and the condition variable */
    cctx_group_t *group;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

/* The user's after-function: waits up to 10 s for the call to return. */
static atomic_int saw_return;
static void wait_for_the_return(void *arg)
{
    struct waiting *w = arg;
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&w->returned) && real_now() < until)
        real_sleep_ms(1);
    atomic_store(&saw_return, atomic_load(&w->returned));
}

/* Starts body on a thread, lets it block in its call, registers the user's
 * after-function on `on`, cancels, and checks that the after-function saw
 * the call return. */
static void check_woken_first(struct waiting *w, void *(*body)(void *), cctx_t *on,
                              cctx_cancel_t *cancel, int want)
{
    atomic_store(&saw_return, -1);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, body, w), 0);
    while (!atomic_load(&w->tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&w->tid));
    CHECK_EQ(atomic_load(&w->returned), 0);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(on, &reg, wait_for_the_return, w), 0);
    cctx_cancel(cancel); /* runs the after-functions on this thread */
    CHECK_EQ(atomic_load(&saw_return), 1);
    pthread_join(t, NULL);
    CHECK_EQ(w->result, want);
}

static void *wait_any_body(void *arg)
{
    struct waiting *w = arg;
    atomic_store(&w->tid, thread_id());
    w->result = cctx_wait_any(&w->ctx, 1, -1);
    atomic_store(&w->returned, 1);
    return NULL;
}

TEST(library_wakers_wait_any_ends_before_the_users_after_functions)
{
    cctx_cancel_t *cancel;
    struct waiting w = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
    check_woken_first(&w, wait_any_body, w.ctx, cancel, 0);
    cctx_release(w.ctx);
}

static void *wait_body(void *arg)
{
    struct waiting *w = arg;
    atomic_store(&w->tid, thread_id());
    w->result = cctx_wait(w->ctx, -1);
    atomic_store(&w->returned, 1);
    return NULL;
}

/* cctx_wait sleeps on the context's own state word, woken by the marking
 * itself: the promise <cctx.h> makes for it holds by construction. */
TEST(library_wakers_wait_ends_before_the_users_after_functions)
{
    cctx_cancel_t *cancel;
    struct waiting w = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
    check_woken_first(&w, wait_body, w.ctx, cancel, ECANCELED);
    cctx_release(w.ctx);
}

static int until_ended(cctx_t *ctx, void *arg)
{
    (void)arg;
    cctx_wait(ctx, -1);
    return 0;
}

/* A task that keeps its slot after the context ended, as one that does not
 * listen does: its end must not be what wakes the blocked go. */
static atomic_int let_go;
static int keeps_its_slot(cctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    int64_t until = real_now() + CCTX_SEC(30);
    while (!atomic_load(&let_go) && real_now() < until)
        real_sleep_ms(1);
    return 0;
}

static void *group_go_body(void *arg)
{
    struct waiting *w = arg;
    atomic_store(&w->tid, thread_id());
    w->result = cctx_group_go(w->group, until_ended, NULL); /* the group is full */
    atomic_store(&w->returned, 1);
    return NULL;
}

TEST(library_wakers_blocked_group_go_ends_before_the_users_after_functions)
{
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    struct waiting w = {.group = cctx_group_new(parent)};
    CHECK(w.group);
    CHECK_EQ(cctx_group_limit(w.group, 1), 0);
    atomic_store(&let_go, 0);
    CHECK_EQ(cctx_group_go(w.group, keeps_its_slot, NULL), 0);
    check_woken_first(&w, group_go_body, cctx_group_ctx(w.group), cancel, ECANCELED);
    atomic_store(&let_go, 1);
    cctx_group_wait(w.group);
    cctx_group_free(w.group);
    cctx_release(parent);
}

static void *cond_wait_body(void *arg)
{
    struct waiting *w = arg;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->tid, thread_id());
    w->result = cctx_cond_wait(w->ctx, &w->cond, &w->mu);
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->returned, 1);
    return NULL;
}

TEST(library_wakers_cond_wait_ends_before_the_users_after_functions)
{
    cctx_cancel_t *cancel;
    struct waiting w = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    check_woken_first(&w, cond_wait_body, w.ctx, cancel, ECANCELED);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    cctx_release(w.ctx);
}

/* ---- the library's own after-functions ------------------------------------------------ */

struct grace_seen {
    cctx_t *grace;
    bool has;
    int64_t deadline;
};

static void note_grace_deadline(void *arg)
{
    struct grace_seen *s = arg;
    s->has = cctx_deadline(s->grace, &s->deadline);
}

TEST(library_afters_grace_period_starts_before_the_users_after_functions)
{
    cctx_fake_clock_start(CCTX_SEC(100));
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *g = cctx_with_grace(c, CCTX_SEC(5), NULL);
    CHECK(g != NULL);
    struct grace_seen s = {.grace = g};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, note_grace_deadline, &s), 0);
    cctx_cancel(cancel);
    /* Before, the grace period had no deadline yet: its clock started
     * only after the user's after-functions, however long they took. */
    CHECK(s.has);
    CHECK_EQ(s.deadline, CCTX_SEC(105));
    cctx_fake_clock_advance(CCTX_SEC(5));
    CHECK_EQ(cctx_err(g), ETIMEDOUT);
    cctx_release(g);
    cctx_release(c);
    cctx_fake_clock_stop();
}

static void own_handler(int sig)
{
    (void)sig;
}

static void note_disposition(void *arg)
{
    struct sigaction now;
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    *(int *)arg = now.sa_handler == own_handler;
}

TEST(library_afters_signal_disposition_comes_back_before_the_users_after_functions)
{
    struct sigaction own = {.sa_handler = own_handler}, old, now;
    sigemptyset(&own.sa_mask);
    CHECK_EQ(sigaction(SIGUSR2, &own, &old), 0);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    static const int usr2[] = {SIGUSR2};
    cctx_t *watched = cctx_with_signals(c, usr2, 1, NULL);
    CHECK(watched != NULL);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler != own_handler); /* the library's, while watched */
    int restored = -1;
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, note_disposition, &restored), 0);
    cctx_cancel(cancel);
    /* Before, the library's handler stayed until the user's after-functions
     * returned, and a second Ctrl-C during them was swallowed. */
    CHECK_EQ(restored, 1);
    cctx_release(watched);
    cctx_release(c);
    CHECK_EQ(sigaction(SIGUSR2, &old, NULL), 0);
}

struct term_seen {
    int from;
    int byte;
};

static void read_term(void *arg)
{
    struct term_seen *t = arg;
    t->byte = read_byte(t->from, 10000);
}

TEST(library_afters_process_signalled_before_the_users_after_functions)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    int to, from;
    cctx_proc_t *p = spawn_term_catcher(c, 0, &to, &from);
    struct term_seen t = {.from = from, .byte = -2};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, read_term, &t), 0);
    cctx_cancel(cancel);
    /* Before, SIGTERM went only after the user's after-functions: one that
     * waited for the process to end waited for ever. */
    CHECK_EQ(t.byte, 'T');
    close(to); /* the catcher exits at the end of its input */
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cctx_proc_free(p);
    close(from);
    cctx_release(c);
}
