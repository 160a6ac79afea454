/* SPDX-License-Identifier: MIT */
/*
 * Section 11: signal contexts (<cctx/signal.h>). A signal cancels every
 * context watching it, with its number as the code, Go's name in the message
 * and the cctx_with_signals call as the origin; the previous disposition is
 * back once the last watcher of a signal ends, however it ends; bad input
 * installs nothing; many threads at once. Fork and a real process shutting
 * down on SIGTERM: test_signal_process.c.
 *
 * Each test runs in its own process (ctest), so a signal raised here reaches
 * no other test. Tests that might let a signal through to its default action
 * install a handler of their own first.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ---------------------------------------------------------------- */

static atomic_int my_hits;
static void my_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&my_hits, 1);
}

/* Installs my_handler for sig (with SIGUSR2 in its mask, a flag, so that
 * restoring exactly this disposition can be told apart) and returns what
 * the kernel reports back for it. */
static struct sigaction install_mine(int sig)
{
    struct sigaction sa, got;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = my_handler;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sa.sa_flags = SA_RESTART;
    CHECK_EQ(sigaction(sig, &sa, NULL), 0);
    CHECK_EQ(sigaction(sig, NULL, &got), 0);
    atomic_store(&my_hits, 0);
    return got;
}

static struct sigaction disposition(int sig)
{
    struct sigaction sa;
    CHECK_EQ(sigaction(sig, NULL, &sa), 0);
    return sa;
}

/* The handler field, whichever of the union's two the flags say is in use. */
static void *handler_of(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) ? (void *)sa->sa_sigaction : (void *)sa->sa_handler;
}

static void check_disposition(int sig, const struct sigaction *want)
{
    struct sigaction now = disposition(sig);
    CHECK(handler_of(&now) == handler_of(want));
    CHECK_EQ(now.sa_flags, want->sa_flags);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP && s < 32)
            CHECK_EQ(sigismember(&now.sa_mask, s), sigismember(&want->sa_mask, s));
}

static bool is_default(int sig)
{
    struct sigaction sa = disposition(sig);
    return !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
}

/* Someone other than the program, i.e. the library, catches sig. */
static bool caught_by_library(int sig, const struct sigaction *program)
{
    struct sigaction sa = disposition(sig);
    return handler_of(&sa) != handler_of(program) && handler_of(&sa) != (void *)SIG_DFL &&
           handler_of(&sa) != (void *)SIG_IGN;
}

static void reset_default(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(sig, &sa, NULL), 0);
}

static void check_signal_cause(const cctx_t *c, int sig, const char *msg)
{
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.code, sig);
    CHECK_STR(cause.msg, msg);
}

/* ---- a signal cancels ---------------------------------------------------------- */

TEST(signal_raise_cancels_with_cause)
{
    static const int sigs[] = {SIGUSR1};
    CHECK(is_default(SIGUSR1));
    cctx_cancel_t *cc = (cctx_cancel_t *)&cc;
    int line = __LINE__ + 1;
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, &cc);
    CHECK(c != NULL);
    CHECK(cc != NULL);
    check_active(c);
    CHECK(!is_default(SIGUSR1));
    struct rec r;
    rec_watch(&r, c);

    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    check_cause(c, ECANCELED, SIGUSR1, "signal: user defined signal 1", line,
                "test_signal_raise_cancels_with_cause");
    /* By the time the context reports done, the signal is no longer caught. */
    CHECK(is_default(SIGUSR1));
    /* A descendant reports the same cause. */
    cctx_t *d = cctx_with_cancel(c, NULL);
    check_same_cause(c, d);
    cctx_release(d);

    /* The after-function runs once, on the library's signal thread, after
     * the marking that cctx_wait saw: wait for it to have started (a stop
     * of one still queued would take it out). */
    int64_t until = real_now() + CCTX_SEC(10);
    while (atomic_load(&r.runs) == 0 && real_now() < until)
        sched_yield();
    CHECK(!cctx_after_stop(&r.reg)); /* waits for it if it still runs */
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK(!pthread_equal(r.thread, pthread_self()));
    CHECK_EQ(r.cause.code, SIGUSR1);
    cctx_release(c);
}

TEST(signal_kill_from_another_thread_cancels)
{
    static const int sigs[] = {SIGTERM, SIGINT};
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 2, NULL);
    CHECK(c != NULL);
    CHECK_EQ(kill(getpid(), SIGINT), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(c, SIGINT, "signal: interrupt");
    CHECK(is_default(SIGINT));
    CHECK(is_default(SIGTERM)); /* the context ended: it watches nothing more */
    cctx_release(c);
}

TEST(signal_names_follow_go)
{
    struct {
        int sig;
        const char *msg;
    } cases[] = {
        {SIGINT, "signal: interrupt"},        {SIGTERM, "signal: terminated"},
        {SIGHUP, "signal: hangup"},           {SIGQUIT, "signal: quit"},
        {SIGUSR1, "signal: user defined signal 1"},
        {SIGUSR2, "signal: user defined signal 2"},
        {SIGALRM, "signal: alarm clock"},     {SIGWINCH, "signal: window changed"},
        {SIGCHLD, "signal: child exited"},    {SIGPIPE, "signal: broken pipe"},
        {SIGRTMIN + 1, NULL}, /* no Go name: "signal N" */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int sig = cases[i].sig;
        char buf[32];
        const char *msg = cases[i].msg;
        if (!msg) {
            snprintf(buf, sizeof buf, "signal %d", sig);
            msg = buf;
        }
        cctx_t *c = cctx_with_signals(cctx_background(), &sig, 1, NULL);
        CHECK(c != NULL);
        CHECK_EQ(raise(sig), 0);
        CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
        check_signal_cause(c, sig, msg);
        cctx_release(c);
    }
}

TEST(signal_two_contexts_on_one_signal_both_canceled)
{
    static const int usr1[] = {SIGUSR1};
    int l1 = __LINE__ + 1;
    cctx_t *a = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    int l2 = __LINE__ + 1;
    cctx_t *b = cctx_with_signals(p, usr1, 1, NULL);
    CHECK(a && p && b);

    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(a, CCTX_SEC(10)), ECANCELED);
    CHECK_EQ(cctx_wait(b, CCTX_SEC(10)), ECANCELED);
    /* Each with its own origin. */
    check_cause(a, ECANCELED, SIGUSR1, "signal: user defined signal 1", l1,
                "test_signal_two_contexts_on_one_signal_both_canceled");
    check_cause(b, ECANCELED, SIGUSR1, "signal: user defined signal 1", l2,
                "test_signal_two_contexts_on_one_signal_both_canceled");
    check_active(p); /* a signal context's end never reaches its parent */
    CHECK(is_default(SIGUSR1));
    cctx_release(b);
    cctx_release(a);
    cctx_release(p);
}

TEST(signal_other_signal_does_not_cancel)
{
    static const int usr1[] = {SIGUSR1}, both[] = {SIGUSR1, SIGUSR2};
    struct sigaction mine = install_mine(SIGUSR2);
    cctx_t *only1 = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    cctx_t *b = cctx_with_signals(cctx_background(), both, 2, NULL);
    CHECK(only1 && b);

    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(cctx_wait(b, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(b, SIGUSR2, "signal: user defined signal 2");
    CHECK_EQ(cctx_wait(only1, CCTX_MSEC(50)), 0);
    check_active(only1);
    CHECK_EQ(atomic_load(&my_hits), 0); /* the program's handler was not called */
    /* b ended: SIGUSR2 is the program's again; SIGUSR1 still watched by only1. */
    check_disposition(SIGUSR2, &mine);
    CHECK(!is_default(SIGUSR1));
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(atomic_load(&my_hits), 1);
    CHECK_EQ(cctx_err(only1), 0);

    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(only1, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(only1, SIGUSR1, "signal: user defined signal 1");
    cctx_release(b);
    cctx_release(only1);
    CHECK(is_default(SIGUSR1));
    reset_default(SIGUSR2);
}

TEST(signal_listed_twice_is_watched_once)
{
    static const int sigs[] = {SIGUSR1, SIGUSR2, SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 3, NULL);
    CHECK(c != NULL);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(c, SIGUSR1, "signal: user defined signal 1");
    CHECK(is_default(SIGUSR1));
    CHECK(is_default(SIGUSR2));
    cctx_release(c);
}

/* ---- the previous disposition comes back ------------------------------------------- */

TEST(signal_previous_handler_back_after_release)
{
    static const int sigs[] = {SIGUSR1};
    struct sigaction mine = install_mine(SIGUSR1);
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    CHECK(caught_by_library(SIGUSR1, &mine));
    cctx_release(c);
    check_disposition(SIGUSR1, &mine);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(atomic_load(&my_hits), 1);

    /* Watched again: the library installs again, and restores again. */
    c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    CHECK(caught_by_library(SIGUSR1, &mine));
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    CHECK_EQ(atomic_load(&my_hits), 1); /* the signal went to the context only */
    check_disposition(SIGUSR1, &mine);
    cctx_release(c);
    check_disposition(SIGUSR1, &mine);
    reset_default(SIGUSR1);
}

TEST(signal_previous_handler_back_after_cancel)
{
    static const int sigs[] = {SIGUSR1};
    struct sigaction mine = install_mine(SIGUSR1);
    cctx_cancel_t *cc;
    int line = __LINE__ + 1;
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, &cc);
    CHECK(c != NULL);
    CHECK(caught_by_library(SIGUSR1, &mine));
    cctx_cancel_cause(cc, 7, "done early");
    int cancel_line = __LINE__ - 1;
    check_disposition(SIGUSR1, &mine); /* before cancel returned */
    check_cause(c, ECANCELED, 7, "done early", cancel_line,
                "test_signal_previous_handler_back_after_cancel");
    CHECK(line != cancel_line);
    /* The signal now reaches the program, and the context keeps its cause. */
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(atomic_load(&my_hits), 1);
    check_cause(c, ECANCELED, 7, "done early", cancel_line,
                "test_signal_previous_handler_back_after_cancel");
    cctx_release(c);
    reset_default(SIGUSR1);
}

TEST(signal_restored_only_when_last_watcher_goes)
{
    static const int sigs[] = {SIGUSR1};
    struct sigaction mine = install_mine(SIGUSR1);
    cctx_cancel_t *ca;
    cctx_t *a = cctx_with_signals(cctx_background(), sigs, 1, &ca);
    cctx_t *b = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(a && b && c);
    cctx_cancel(ca);
    CHECK(caught_by_library(SIGUSR1, &mine));
    cctx_release(b);
    CHECK(caught_by_library(SIGUSR1, &mine));
    CHECK_EQ(raise(SIGUSR1), 0); /* still the library's: c ends, not the program */
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    CHECK_EQ(atomic_load(&my_hits), 0);
    check_disposition(SIGUSR1, &mine);
    cctx_release(c);
    cctx_release(a);
    check_disposition(SIGUSR1, &mine);
    reset_default(SIGUSR1);
}

TEST(signal_ignored_signal_is_caught_while_watched)
{
    static const int sigs[] = {SIGHUP};
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    CHECK_EQ(sigaction(SIGHUP, &ign, NULL), 0);
    ign = disposition(SIGHUP);
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    CHECK_EQ(raise(SIGHUP), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(c, SIGHUP, "signal: hangup");
    check_disposition(SIGHUP, &ign);
    CHECK_EQ(raise(SIGHUP), 0); /* ignored again */
    cctx_release(c);
    reset_default(SIGHUP);
}

TEST(signal_program_handler_installed_meanwhile_stays)
{
    static const int sigs[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    struct sigaction mine = install_mine(SIGUSR1); /* replaces the library's */
    cctx_release(c);
    check_disposition(SIGUSR1, &mine); /* not put back to SIG_DFL over it */
    reset_default(SIGUSR1);
}

/* ---- the parent ----------------------------------------------------------------- */

TEST(signal_parent_cancel_stops_watching_and_restores)
{
    static const int sigs[] = {SIGUSR1, SIGUSR2};
    struct sigaction mine = install_mine(SIGUSR1);
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *c = cctx_with_signals(p, sigs, 2, NULL);
    CHECK(p && c);
    CHECK(caught_by_library(SIGUSR1, &mine));
    cctx_cancel_cause(pc, 3, "parent gone");
    check_same_cause(p, c);
    check_disposition(SIGUSR1, &mine);
    CHECK(is_default(SIGUSR2));
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(atomic_load(&my_hits), 1);
    check_same_cause(p, c); /* the signal changed nothing */
    cctx_release(c);
    cctx_release(p);
    reset_default(SIGUSR1);
}

TEST(signal_parent_done_gives_born_done_child_installing_nothing)
{
    static const int sigs[] = {SIGUSR1};
    cctx_cancel_t *pc, *cc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_cause(pc, 5, "before");
    cctx_t *c = cctx_with_signals(p, sigs, 1, &cc);
    CHECK(c != NULL);
    CHECK(cc != NULL);
    check_same_cause(p, c);
    CHECK(is_default(SIGUSR1));
    cctx_cancel(cc); /* harmless */
    check_same_cause(p, c);
    cctx_release(c);
    cctx_release(p);

    /* Under a value context and a deadline already past, too. */
    static const char key;
    cctx_t *t = cctx_with_timeout(cctx_background(), -1, NULL);
    cctx_t *v = cctx_with_value(t, &key, (void *)1, NULL);
    cctx_t *s = cctx_with_signals(v, sigs, 1, NULL);
    CHECK(s != NULL);
    CHECK_EQ(cctx_err(s), ETIMEDOUT);
    CHECK(cctx_value(s, &key) == (void *)1);
    CHECK(is_default(SIGUSR1));
    cctx_release(s);
    cctx_release(v);
    cctx_release(t);
}

TEST(signal_nested_signal_contexts_one_signal)
{
    /* An ancestor and its descendant watch the same signal: the delivery
     * cancels the ancestor first, which takes the descendant with it. */
    static const int sigs[] = {SIGUSR1};
    int lp = __LINE__ + 1;
    cctx_t *p = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    cctx_t *mid = cctx_with_cancel(p, NULL);
    cctx_t *c = cctx_with_signals(mid, sigs, 1, NULL);
    cctx_t *other = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(p && mid && c && other);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    CHECK_EQ(cctx_wait(other, CCTX_SEC(10)), ECANCELED);
    check_cause(p, ECANCELED, SIGUSR1, "signal: user defined signal 1", lp,
                "test_signal_nested_signal_contexts_one_signal");
    check_same_cause(p, c);
    CHECK(is_default(SIGUSR1));
    cctx_release(c);
    cctx_release(mid);
    cctx_release(p);
    cctx_release(other);
}

/* ---- after-functions on the signal thread ------------------------------------------ */

static struct {
    cctx_t *rearmed;     /* made by the after-function, on the signal thread */
    cctx_t *to_release;  /* released by it */
    atomic_int done;
} AF;

static void rearm(void *arg)
{
    (void)arg;
    static const int sigs[] = {SIGUSR1};
    AF.rearmed = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    cctx_release(AF.to_release);
    AF.to_release = NULL;
    atomic_store(&AF.done, 1);
}

TEST(signal_after_function_may_rearm_and_release)
{
    static const int sigs[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    AF.to_release = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(c && AF.to_release);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, rearm, NULL), 0);
    CHECK(!is_default(SIGUSR2));

    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    for (int i = 0; i < 10000 && !atomic_load(&AF.done); i++)
        real_sleep_ms(1);
    CHECK(atomic_load(&AF.done));
    CHECK(AF.rearmed != NULL);
    CHECK(is_default(SIGUSR2)); /* released on the signal thread: restored */
    /* The context made during the delivery was not canceled by it. */
    CHECK_EQ(cctx_wait(AF.rearmed, CCTX_MSEC(50)), 0);
    CHECK(!is_default(SIGUSR1));
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(AF.rearmed, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(AF.rearmed, SIGUSR1, "signal: user defined signal 1");
    CHECK(is_default(SIGUSR1));
    cctx_release(AF.rearmed);
    cctx_release(c);
}

/* A signal reaches the contexts that watched it when it arrived, not one
 * made after it arrived while its delivery was still to come. Deliveries
 * go to runners, in parallel; with none to be had, the signal thread
 * delivers them itself, one after the other: that order lets the test hold
 * SIGUSR2's delivery (behind SIGUSR1's, held in an after-function) until a
 * context made after SIGUSR2 arrived watches it, and know when that
 * delivery has ended (a later SIGUSR1 is delivered after it). */
static atomic_int held_entered, held_go, runner_starts_refused;

static int refuse_runner_start(void *(*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    atomic_fetch_add(&runner_starts_refused, 1);
    return EAGAIN;
}

static void hold_signal_thread(void *arg)
{
    (void)arg;
    atomic_store(&held_entered, 1);
    for (int i = 0; i < 10000 && !atomic_load(&held_go); i++)
        real_sleep_ms(1);
}

TEST(signal_reaches_only_the_contexts_that_watched_when_it_arrived)
{
    static const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    cctx__thread_start_fn start_runner = cctx__runner_thread_start;
    cctx__runner_thread_start = refuse_runner_start;
    cctx_t *holder = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    cctx_t *before = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(holder && before);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(holder, &reg, hold_signal_thread, NULL), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    for (int i = 0; i < 10000 && !atomic_load(&held_entered); i++)
        real_sleep_ms(1);
    CHECK(atomic_load(&held_entered)); /* the signal thread is held */
    CHECK(atomic_load(&runner_starts_refused) > 0);

    CHECK_EQ(raise(SIGUSR2), 0); /* arrives; its delivery must wait */
    cctx_t *after = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(after != NULL);
    atomic_store(&held_go, 1);

    CHECK_EQ(cctx_wait(before, CCTX_SEC(10)), ECANCELED);
    /* A later SIGUSR1 is delivered after SIGUSR2's delivery has ended. */
    cctx_t *probe = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK(probe != NULL);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(probe, CCTX_SEC(10)), ECANCELED);
    check_active(after); /* SIGUSR2 arrived before it watched */
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(cctx_wait(after, CCTX_SEC(10)), ECANCELED);
    check_signal_cause(after, SIGUSR2, "signal: user defined signal 2");
    cctx_release(probe);
    cctx_release(after);
    cctx_release(before);
    cctx_release(holder);
    cctx__runner_thread_start = start_runner;
}

/* A delivery's after-functions may block (until released here, 10 s at
 * most): the library's signal thread hands each delivery to a runner, so
 * another signal, and a later arrival of the same one, are still
 * delivered meanwhile. */
static atomic_int blocker_entered, blocker_go;

static void block_until_released(void *arg)
{
    (void)arg;
    atomic_store(&blocker_entered, 1);
    for (int i = 0; i < 10000 && !atomic_load(&blocker_go); i++)
        real_sleep_ms(1);
}

TEST(signal_blocking_after_function_holds_up_no_other_delivery)
{
    static const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    cctx_t *blocked = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    cctx_t *other = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(blocked && other);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(blocked, &reg, block_until_released, NULL), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    for (int i = 0; i < 10000 && !atomic_load(&blocker_entered); i++)
        real_sleep_ms(1);
    CHECK(atomic_load(&blocker_entered));

    CHECK_EQ(raise(SIGUSR2), 0);
    int other_err = cctx_wait(other, CCTX_SEC(5));
    cctx_t *again = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK(again != NULL);
    CHECK_EQ(raise(SIGUSR1), 0);
    int again_err = cctx_wait(again, CCTX_SEC(5));
    atomic_store(&blocker_go, 1); /* before the checks: a failure leaves no thread held */
    CHECK_EQ(other_err, ECANCELED);
    check_signal_cause(other, SIGUSR2, "signal: user defined signal 2");
    CHECK_EQ(again_err, ECANCELED);
    check_signal_cause(again, SIGUSR1, "signal: user defined signal 1");
    cctx_release(again);
    cctx_release(other);
    cctx_release(blocked);
}

TEST(signal_many_watchers_all_canceled)
{
    enum { N = 100 };
    static const int sigs[] = {SIGUSR1};
    cctx_t *cs[N];
    for (int i = 0; i < N; i++) {
        /* Every third one under the one before, so batches hold ancestors and
         * descendants together. */
        cctx_t *parent = i % 3 == 2 ? cs[i - 1] : cctx_background();
        cs[i] = cctx_with_signals(parent, sigs, 1, NULL);
        CHECK(cs[i] != NULL);
    }
    /* Some end before the signal. */
    for (int i = 0; i < N; i += 10) {
        cctx_release(cs[i]);
        cs[i] = NULL;
    }
    CHECK_EQ(raise(SIGUSR1), 0);
    for (int i = 0; i < N; i++) {
        if (!cs[i])
            continue;
        CHECK_EQ(cctx_wait(cs[i], CCTX_SEC(10)), ECANCELED);
        check_signal_cause(cs[i], SIGUSR1, "signal: user defined signal 1");
    }
    /* The last watch to go may be one that its parent's cancellation ended
     * (every third one here): its signals are put back by the first of its
     * after-functions, which the delivery's runner hands to another runner,
     * and a waiter wakes before after-functions run. So the disposition may
     * come back a moment after the last wait returns (bounded here). */
    for (int i = 0; i < 10000 && !is_default(SIGUSR1); i++)
        real_sleep_ms(1);
    CHECK(is_default(SIGUSR1));
    for (int i = N - 1; i >= 0; i--)
        cctx_release(cs[i]);
}

/* ---- bad input -------------------------------------------------------------------- */

/* Code that swaps a disposition of its own in around the end of a watch
 * (as system() does with SIGINT: it saves what is there, ignores, and puts
 * that back) leaves the library's handler in place with nobody watching. A
 * signal it then catches goes to the disposition from before the watch, and
 * is not swallowed; and a later watch's end puts that disposition back, not
 * the library's handler. */
TEST(signal_handler_put_back_after_the_watch_ended_hands_signals_back)
{
    struct sigaction mine = install_mine(SIGUSR1);
    static const int sigs[] = {SIGUSR1};
    struct sigaction ign, held;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);

    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    CHECK_EQ(sigaction(SIGUSR1, &ign, &held), 0); /* saves the library's handler */
    cctx_release(c);                              /* the watch ends meanwhile */
    CHECK_EQ(sigaction(SIGUSR1, &held, NULL), 0); /* and puts it back */
    CHECK(caught_by_library(SIGUSR1, &mine));
    CHECK_EQ(raise(SIGUSR1), 0);
    int64_t end = real_now() + CCTX_SEC(10);
    while (atomic_load(&my_hits) == 0 && real_now() < end)
        real_sleep_ms(1);
    CHECK_EQ(atomic_load(&my_hits), 1);
    check_disposition(SIGUSR1, &mine);

    /* The library's handler put back once more, then a whole watch. */
    CHECK_EQ(sigaction(SIGUSR1, &held, NULL), 0);
    c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    cctx_release(c);
    check_disposition(SIGUSR1, &mine);
    reset_default(SIGUSR1);
}

TEST(signal_bad_input_installs_nothing)
{
    static const int usr1[] = {SIGUSR1};
    cctx_cancel_t *cc = (cctx_cancel_t *)&cc;
    CHECK_ERRNO(cctx_with_signals(NULL, usr1, 1, &cc), NULL, EINVAL);
    CHECK(cc == NULL);
    CHECK_ERRNO(cctx_with_signals(cctx_background(), NULL, 1, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_signals(cctx_background(), NULL, 0, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_signals(cctx_background(), usr1, 0, NULL), NULL, EINVAL);

    int bad[] = {0, -1, NSIG, NSIG + 100, SIGKILL, SIGSTOP, -SIGUSR1, 1 << 30};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int list[] = {SIGUSR1, SIGUSR2, bad[i]};
        cc = (cctx_cancel_t *)&cc;
        CHECK_ERRNO(cctx_with_signals(cctx_background(), list, 3, &cc), NULL, EINVAL);
        CHECK(cc == NULL);
        CHECK_ERRNO(cctx_with_signals(cctx_background(), &bad[i], 1, NULL), NULL, EINVAL);
    }
    /* A signal the C library keeps for itself, if there is one (glibc: 32, 33). */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) == 0)
            continue;
        CHECK_ERRNO(cctx_with_signals(cctx_background(), &sig, 1, NULL), NULL, EINVAL);
    }
    CHECK(is_default(SIGUSR1));
    CHECK(is_default(SIGUSR2));

    /* A context made after all that works. */
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK(c != NULL);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    cctx_release(c);
}

/* ---- threads at once ------------------------------------------------------------------ */

static struct {
    atomic_bool stop;
    atomic_int by_signal, by_cancel;
} ST;

static void stress_worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
    static const int sigs[] = {SIGUSR1, SIGUSR2};
    while (!atomic_load(&ST.stop)) {
        int how = (int)(xorshift64(&seed) % 4);
        cctx_cancel_t *cc;
        cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1 + (how & 1), &cc);
        CHECK(c != NULL);
        cctx_t *kid = how == 3 ? cctx_with_signals(c, sigs, 1, NULL) : NULL;
        if (how == 0)
            cctx_cancel(cc);
        int err = cctx_wait(c, CCTX_USEC(200));
        if (err) {
            cctx_cause_t cause;
            cctx_cause(c, &cause);
            if (cause.code == SIGUSR1 || cause.code == SIGUSR2) {
                CHECK_STR(cause.msg, cause.code == SIGUSR1 ? "signal: user defined signal 1"
                                                           : "signal: user defined signal 2");
                atomic_fetch_add(&ST.by_signal, 1);
            } else {
                CHECK_EQ(how, 0);
                atomic_fetch_add(&ST.by_cancel, 1);
            }
        }
        cctx_release(kid);
        cctx_release(c);
    }
}

static void stress_raiser(void *arg)
{
    (void)arg;
    int n = 0;
    while (!atomic_load(&ST.stop)) {
        CHECK_EQ(kill(getpid(), n++ % 3 ? SIGUSR1 : SIGUSR2), 0);
        real_sleep_ms(1);
    }
}

TEST(signal_stress_create_release_while_signals_arrive)
{
    /* Whenever nobody watches, the signals go to the program's handlers
     * (never to the default action, which would end the process). */
    struct sigaction m1 = install_mine(SIGUSR1), m2 = install_mine(SIGUSR2);
    struct gang g;
    gang_init(&g, 4, false);
    for (int i = 0; i < 3; i++)
        gang_spawn(&g, stress_worker, (void *)(uintptr_t)(i + 1));
    gang_spawn(&g, stress_raiser, NULL);
    real_sleep_ms(TEST_UNDER_TSAN ? 400 : 300);
    atomic_store(&ST.stop, true);
    gang_join(&g);
    printf("canceled by a signal: %d, by cancel: %d, signals to the program: %d\n",
           atomic_load(&ST.by_signal), atomic_load(&ST.by_cancel), atomic_load(&my_hits));
    CHECK(atomic_load(&ST.by_signal) > 0);
    check_disposition(SIGUSR1, &m1);
    check_disposition(SIGUSR2, &m2);
    reset_default(SIGUSR1);
    reset_default(SIGUSR2);
}

/* ---- the program closes the library's pipe ------------------------------------------ */

enum { MAX_PIPES = 64 };

/* This process's descriptors from 3 up that may be ends of the library's
 * pipe (a pair of sockets), each with the mode it is used in: O_WRONLY for
 * the handler's end, the non-blocking one, O_RDONLY for the other. */
static int pipes_now(int fds[MAX_PIPES], int modes[MAX_PIPES])
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fd < 3 || fd == dirfd(d) || fstat(fd, &st) != 0 ||
            !S_ISSOCK(st.st_mode))
            continue;
        CHECK(n < MAX_PIPES);
        modes[n] = fcntl(fd, F_GETFL) & O_NONBLOCK ? O_WRONLY : O_RDONLY;
        fds[n++] = fd;
    }
    closedir(d);
    return n;
}

static int64_t cpu_used(void)
{
    struct timespec ts;
    CHECK_EQ(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    return (int64_t)ts.tv_sec * CCTX_SEC(1) + ts.tv_nsec;
}

static void raise_and_see_it_delivered(void)
{
    static const int usr1[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK(c != NULL);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(5)), ECANCELED);
    cctx_release(c);
}

/* A daemon closes the descriptors it did not open: here the ones of the
 * pipe that cctx_with_signals made (those of access mode `mode`, or both
 * ends when mode < 0). The watches go on working, without spinning. */
static void watch_after_the_program_closes_the_pipe(int mode)
{
    int before[MAX_PIPES], after[MAX_PIPES], modes[MAX_PIPES], unused[MAX_PIPES];
    int n_before = pipes_now(before, unused);
    static const int usr1[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL); /* the pipe, the thread */
    CHECK(c != NULL);
    int n_after = pipes_now(after, modes), closed = 0;
    for (int i = 0; i < n_after; i++) {
        bool old = false;
        for (int k = 0; k < n_before; k++)
            old = old || before[k] == after[i];
        if (!old && (mode < 0 || modes[i] == mode)) {
            /* Both ends: the signal thread may see the first close at its
             * next look, make a new pipe and close the other end itself
             * before this loop reaches it (EBADF here), as it would for a
             * daemon closing its descriptors one by one. */
            int r = close(after[i]);
            CHECK(r == 0 || (mode < 0 && closed > 0 && errno == EBADF));
            closed++;
        }
    }
    CHECK_EQ(closed, mode < 0 ? 2 : 1);
    int64_t cpu = cpu_used();
    real_sleep_ms(300);
    cpu = cpu_used() - cpu;
    printf("CPU in 300 ms after the close: %.1f ms\n", (double)cpu / 1e6);
    CHECK(cpu < CCTX_MSEC(100)); /* before, with the write end closed: the thread spun */
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(5)), ECANCELED); /* before, with both closed: never */
    cctx_release(c);
    raise_and_see_it_delivered(); /* and a new watch too */
}

CHILD(signal_pipe_write_end_closed)
{
    watch_after_the_program_closes_the_pipe(O_WRONLY);
}

CHILD(signal_pipe_closed)
{
    watch_after_the_program_closes_the_pipe(-1);
}

static void run_closing_child(const char *name)
{
    if (TEST_UNDER_TSAN)
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports a close of a descriptor that another thread "
                           "uses, which is what the program here does");
    static const char *const no_env[] = {NULL};
    struct child c;
    run_child(name, no_env, &c);
    printf("%s: %s%s", name, c.out, c.err);
    fflush(stdout); /* a failed CHECK aborts, and the child's lines must show */
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "signal watches' pipe") != NULL); /* said once */
    child_done(&c);
}

TEST(signal_watch_goes_on_when_the_program_closes_the_write_end_of_its_pipe)
{
    run_closing_child("signal_pipe_write_end_closed");
}

TEST(signal_watch_goes_on_when_the_program_closes_its_pipe)
{
    run_closing_child("signal_pipe_closed");
}

/* A program that closed the read end of the library's pipe and opened a file
 * of its own under that number, then forks: the child keeps its file.
 * Before, the fork handler closed the number in the child unlooked. */
TEST(signal_fork_child_keeps_a_file_opened_under_the_pipe_s_old_number)
{
    if (TEST_UNDER_TSAN) /* as with the closing children above, but in this process */
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports a descriptor replaced and closed under "
                           "another thread, which is what the program here does");
    int before[MAX_PIPES], after[MAX_PIPES], modes[MAX_PIPES], unused[MAX_PIPES];
    int n_before = pipes_now(before, unused);
    static const int usr1[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL); /* the pipe, the thread */
    CHECK(c != NULL);
    int n_after = pipes_now(after, modes), read_end = -1;
    for (int i = 0; i < n_after; i++) {
        bool old = false;
        for (int k = 0; k < n_before; k++)
            old = old || before[k] == after[i];
        if (!old && modes[i] == O_RDONLY)
            read_end = after[i];
    }
    CHECK(read_end >= 0);
    int mine = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(mine >= 0);
    CHECK_EQ(dup2(mine, read_end), read_end); /* the program's file, under the old number */
    close(mine);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct stat st;
        _exit(fstat(read_end, &st) == 0 && S_ISCHR(st.st_mode) ? 0 : 1);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0); /* before: 1, the number closed */
    close(read_end);
    cctx_release(c);
}
