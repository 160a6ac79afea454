/* SPDX-License-Identifier: MIT */
/*
 * cctx_cancel_and_wait: 0 the moment the last other holder lets go (the
 * waiter sleeps, it does not poll), whatever the order in which holders on
 * other threads release; ETIMEDOUT with a report naming each context still
 * held; the fake clock's timeouts.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "support.h"
#include "internal.h"
#include "testhooks.h"

static int key;

TEST(cancel_wait_nothing_held_returns_at_once)
{
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    int line = __LINE__ + 1;
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, stderr), 0);
    check_cause(c, ECANCELED, 0, "context canceled", line, __func__);
    cctx_release(c);
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
    CHECK_EQ(cctx_cancel_and_wait(NULL, 0, NULL), EINVAL);
}

TEST(cancel_wait_already_canceled_and_released_children)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *kids[10];
    for (int i = 0; i < 10; i++)
        kids[i] = cctx_with_cancel(c, NULL);
    for (int i = 0; i < 10; i++)
        cctx_release(kids[i]);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_SEC(10), NULL), 0);
    cctx_release(c);
}

/* ---- holders on other threads, released in every order ----------------------- */

enum { HOLDERS = 3 };
struct holder {
    cctx_t *held;
    pthread_t thread;
    atomic_int go, released;
};
static struct holder holders[HOLDERS];
static atomic_int wait_result = -1;
static atomic_int waiter_tid;
static cctx_cancel_t *waited;

static void *holder_main(void *arg)
{
    struct holder *h = arg;
    while (!atomic_load(&h->go))
        real_sleep_ms(1);
    atomic_store(&h->released, 1);
    cctx_release(h->held);
    return NULL;
}

static void *waiter_main(void *arg)
{
    (void)arg;
    atomic_store(&waiter_tid, thread_id());
    atomic_store(&wait_result, cctx_cancel_and_wait(waited, -1, stderr));
    return NULL;
}

/* Waits until the waiter sleeps in the kernel, seen five times in a row (one
 * look could catch it on a lock on its way, before it cancels), or has
 * returned. */
static void until_waiter_sleeps(void)
{
    for (int i = 0, asleep = 0; i < 20000; i++) {
        if (atomic_load(&wait_result) != -1)
            return;
        pid_t tid = atomic_load(&waiter_tid);
        asleep = tid && thread_state(tid) == 'S' ? asleep + 1 : 0;
        if (asleep == 5)
            return;
        real_sleep_ms(1);
    }
    CHECK(!"the waiter never slept");
}

static void run_order(const int order[HOLDERS])
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    waited = cancel;
    /* Three kinds of holder: the context itself, a cancelable child, and a
     * value context whose child is the one held. */
    holders[0].held = cctx_ref(c);
    holders[1].held = cctx_with_cancel(c, NULL);
    cctx_t *v = cctx_with_value(c, &key, NULL, NULL);
    holders[2].held = cctx_with_cancel(v, NULL);
    cctx_release(v);
    for (int i = 0; i < HOLDERS; i++) {
        atomic_store(&holders[i].go, 0);
        atomic_store(&holders[i].released, 0);
        pthread_create(&holders[i].thread, NULL, holder_main, &holders[i]);
    }
    atomic_store(&wait_result, -1);
    atomic_store(&waiter_tid, 0);
    pthread_t w;
    pthread_create(&w, NULL, waiter_main, NULL);
    for (int k = 0; k < HOLDERS; k++) {
        until_waiter_sleeps();
        CHECK_EQ(atomic_load(&wait_result), -1); /* someone still holds it */
        CHECK_EQ(cctx_err(c), ECANCELED);
        struct holder *h = &holders[order[k]];
        atomic_store(&h->go, 1);
        pthread_join(h->thread, NULL);
    }
    pthread_join(w, NULL);
    CHECK_EQ(atomic_load(&wait_result), 0);
    for (int i = 0; i < HOLDERS; i++)
        CHECK_EQ(atomic_load(&holders[i].released), 1);
    CHECK_EQ(cctx__refs(c), 1);
    cctx_release(c);
}

TEST(cancel_wait_holders_release_in_every_order)
{
    static const int orders[6][HOLDERS] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                           {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int i = 0; i < 6; i++)
        run_order(orders[i]);
}

/* ---- the report ----------------------------------------------------------------- */

TEST(cancel_wait_timeout_reports_each_context_still_held)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(c, "server");
    cctx_t *a = cctx_with_cancel(c, NULL);
    cctx_set_name(a, "conn A");
    cctx_t *v = cctx_with_value(a, &key, NULL, NULL);
    cctx_set_name(v, "request 12");
    cctx_t *job = cctx_with_cancel(v, NULL);
    cctx_set_name(job, "job 12");
    cctx_release(v);
    cctx_t *b = cctx_with_cancel(c, NULL);
    cctx_set_name(b, "conn B");
    cctx_t *gone = cctx_with_cancel(c, NULL);
    cctx_set_name(gone, "conn C");

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cctx_release(gone); /* before: never listed */
    int line = __LINE__ + 1;
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_MSEC(30), out), ETIMEDOUT);
    fclose(out);
    printf("%s", text);
    char site[160];
    snprintf(site, sizeof site, "at tests/test_cancel_wait.c:%d in %s", line, __func__);
    CHECK(strstr(text, "cancel ") == text); /* the waited context first */
    CHECK(strstr(text, "\"server\""));
    CHECK(strstr(text, "\"conn A\""));
    CHECK(strstr(text, "\"conn B\""));
    CHECK(strstr(text, "\"job 12\""));
    CHECK(strstr(text, "via value"));
    CHECK(strstr(text, "\"request 12\""));
    CHECK(!strstr(text, "conn C"));
    CHECK(strstr(text, "ECANCELED (code 0, \"context canceled\", "));
    CHECK(strstr(text, site)); /* the cause's origin: the call */
    CHECK_EQ(count_substr(text, "\n"), 5); /* server, A, job + via, B */
    CHECK(strstr(text, "  cancel")); /* descendants indented */
    free(text);

    /* A second call finds c already canceled: its descendants were handed
     * to that cancellation, so only c itself is named. */
    cctx_release(b);
    text = NULL;
    out = open_memstream(&text, &len);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), ETIMEDOUT);
    fclose(out);
    CHECK_EQ(count_substr(text, "\n"), 1);
    CHECK(strstr(text, "\"server\""));
    free(text);
    cctx_release(job);
    cctx_release(a);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, stderr), 0);
    cctx_release(c);
}

/* The owner of a descendant lets it go while the report's walk holds it:
 * the walk's reference is then the last, and still holds the context the
 * call cancels (through the descendant's). With timeout 0 the call must not
 * count it as a holder: it drops it itself, after the cancellation and
 * before it looks, and answers 0, as it does without a report. */
static cctx_t *let_go_during_walk;

static void owner_lets_go(struct cctx *x)
{
    if ((cctx_t *)x == let_go_during_walk) {
        cctx_release(let_go_during_walk);
        let_go_during_walk = NULL;
    }
}

TEST(cancel_wait_timeout_zero_with_a_report_counts_no_reference_of_its_walk)
{
    for (int i = 0; i < 50; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        cctx_t *d = cctx_with_cancel(c, NULL);
        let_go_during_walk = d;
        atomic_store(&cctx__quiesce_walk_hook, owner_lets_go);
        FILE *out = tmpfile();
        CHECK(out != NULL);
        int r = cctx_cancel_and_wait(cancel, 0, out);
        atomic_store(&cctx__quiesce_walk_hook, NULL);
        CHECK(let_go_during_walk == NULL); /* the walk reached d */
        CHECK_EQ(r, 0);
        CHECK_EQ(ftell(out), 0); /* nothing reported */
        fclose(out);
        cctx_release(c);
    }
}

TEST(cancel_wait_report_frees_what_it_watched)
{
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *kids[50];
    for (int i = 0; i < 50; i++)
        kids[i] = cctx_with_cancel(i % 2 ? kids[i - 1] : c, NULL);
    FILE *null = fopen("/dev/null", "w");
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_MSEC(1), null), ETIMEDOUT);
    fclose(null);
    for (int i = 50; i-- > 0;)
        cctx_release(kids[i]);
    cctx_release(c);
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
}

/* The report's references are the library's, taken only to look: when one
 * turns out to be a context's last (its owner let go while the report was
 * written), the context is freed on a runner, as after a dump, so that its
 * value's destructor (here one that would block) does not hold up the call,
 * whose timeout of 0 promises no wait. The owner lets go from inside the
 * report's stream, which is the moment another thread's release can fall. */
static cctx_t *report_let_go;
static atomic_int report_destroyed;
static _Atomic pid_t report_destroyer_tid;

static void note_destroyer(void *value)
{
    (void)value;
    atomic_store(&report_destroyer_tid, thread_id());
    atomic_store(&report_destroyed, 1);
}

static ssize_t write_letting_go(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    (void)buf;
    /* The report is written on the caller's thread: no atomics needed. */
    cctx_t *c = report_let_go;
    report_let_go = NULL;
    if (c)
        cctx_release(c); /* not the last: the report holds it */
    return (ssize_t)size;
}

TEST(cancel_wait_report_holding_the_last_reference_runs_no_destructor_itself)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *v = cctx_with_value(c, &key, "value", note_destroyer);
    cctx_t *d = cctx_with_cancel(v, NULL);
    cctx_release(v); /* d holds it */
    report_let_go = d;
    FILE *out = fopencookie(NULL, "w", (cookie_io_functions_t){.write = write_letting_go});
    CHECK(out);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), ETIMEDOUT);
    CHECK(report_let_go == NULL); /* d's owner let go during the report */
    fclose(out);
    for (int i = 0; i < 10000 && !atomic_load(&report_destroyed); i++)
        real_sleep_ms(1);
    CHECK(atomic_load(&report_destroyed));
    CHECK(atomic_load(&report_destroyer_tid) != thread_id());
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_SEC(10), NULL), 0);
    cctx_release(c);
}

/* ---- the fake clock ---------------------------------------------------------------- */

static cctx_t *fake_held;
static void *fake_waiter(void *arg)
{
    (void)arg;
    atomic_store(&waiter_tid, thread_id());
    atomic_store(&wait_result, cctx_cancel_and_wait(waited, CCTX_SEC(1), NULL));
    return NULL;
}

TEST(cancel_wait_timeout_on_the_fake_clock)
{
    cctx_fake_clock_start(CCTX_SEC(100));
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    fake_held = cctx_ref(c);
    waited = cancel;
    atomic_store(&wait_result, -1);
    atomic_store(&waiter_tid, 0);
    pthread_t w;
    pthread_create(&w, NULL, fake_waiter, NULL);
    until_waiter_sleeps();
    cctx_fake_clock_advance(CCTX_SEC(1) - 1);
    until_waiter_sleeps();
    CHECK_EQ(atomic_load(&wait_result), -1);
    cctx_fake_clock_advance(1);
    pthread_join(w, NULL);
    CHECK_EQ(atomic_load(&wait_result), ETIMEDOUT);
    cctx_release(fake_held);
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_SEC(1), NULL), 0);
    cctx_release(c);
    cctx_fake_clock_stop();
}

/* The fake timeout comes after the waiter has read that it has not come yet,
 * but before the waiter sleeps. A signal holds the waiter there: the signal
 * takes it out of its futex wait, its handler waits while the clock is
 * advanced (fake_timeout runs on this thread then, and wakes nobody, for
 * nobody sleeps on the word), and with SA_RESTART the kernel makes the same
 * call again when the handler returns, with the value the waiter read
 * before. A timeout that only woke the word would leave it as it was, and
 * the waiter would sleep on; the timeout changes the word, so the waiter
 * returns at once. (A waiter under the fake clock also looks again after a
 * slice of real time, for the case below, so this test checks that the wait
 * ends and what it returns, not how soon. The portable build sleeps in
 * pthread_cond_wait, which a signal does not take back to that point.) */
static atomic_int in_handler, handler_go;
static void hold_in_handler(int sig)
{
    (void)sig;
    atomic_store(&in_handler, 1);
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&handler_go))
        nanosleep(&ms, NULL); /* async-signal-safe */
}

static void hold_in_handler_on_sigusr1(struct sigaction *old)
{
    struct sigaction sa = {0};
    sa.sa_handler = hold_in_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, old), 0);
    atomic_store(&in_handler, 0);
    atomic_store(&handler_go, 0);
}

/* A fake-clock context held twice, whose handle is `waited`. */
static cctx_t *held_on_the_fake_clock(void)
{
    cctx_fake_clock_start(CCTX_SEC(100));
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    fake_held = cctx_ref(c);
    waited = cancel;
    atomic_store(&wait_result, -1);
    atomic_store(&waiter_tid, 0);
    return c;
}

/* Starts fake_waiter and holds it in the handler once it sleeps on the count. */
static pthread_t waiter_held_in_its_sleep(void)
{
    pthread_t w;
    pthread_create(&w, NULL, fake_waiter, NULL);
    while (!atomic_load(&waiter_tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&waiter_tid)); /* asleep on the count */
    CHECK_EQ(pthread_kill(w, SIGUSR1), 0);
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&in_handler)) {
        CHECK(real_now() < until);
        real_sleep_ms(1);
    }
    return w;
}

static void fake_timeout_between_look_and_sleep(void)
{
    struct sigaction old;
    hold_in_handler_on_sigusr1(&old);
    cctx_t *c = held_on_the_fake_clock();
    pthread_t w = waiter_held_in_its_sleep();
    cctx_fake_clock_advance(CCTX_SEC(1)); /* runs fake_timeout */
    atomic_store(&handler_go, 1);
    pthread_join(w, NULL);
    CHECK_EQ(atomic_load(&wait_result), ETIMEDOUT);
    CHECK_EQ(cctx__refs(c), 2);
    cctx_release(fake_held);
    cctx_release(c);
    cctx_fake_clock_stop();
    CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
}

TEST(cancel_wait_fake_timeout_ends_a_wait_between_its_look_and_its_sleep)
{
    /* ThreadSanitizer runs a handler only once the thread leaves the call
     * it was interrupted in, which this waiter never does. */
    if (TEST_UNDER_TSAN)
        SKIP_IN_THIS_BUILD("ThreadSanitizer delays the signal handler past the futex call");
    run_with_watchdog(fake_timeout_between_look_and_sleep, 10);
}

/* Two waiters on one context. The first is held as above, between its look
 * and its sleep, while its timeout fires: the timeout takes the mark off the
 * count and wakes it; the second waiter, asleep on the count, wakes, marks it
 * again and sleeps on, and the count holds again the value the first read
 * before its sleep. The kernel then lets the first sleep, and a wake alone
 * would leave it asleep until the second left. */
static atomic_int second_result;
static atomic_int second_tid;
static void *second_waiter(void *arg)
{
    (void)arg;
    atomic_store(&second_tid, thread_id());
    atomic_store(&second_result, cctx_cancel_and_wait(waited, CCTX_SEC(5), NULL));
    return NULL;
}

static void fake_timeout_of_one_of_two_waiters(void)
{
    struct sigaction old;
    hold_in_handler_on_sigusr1(&old);
    cctx_t *c = held_on_the_fake_clock();
    atomic_store(&second_result, -1);
    atomic_store(&second_tid, 0);
    pthread_t second;
    pthread_create(&second, NULL, second_waiter, NULL);
    while (!atomic_load(&second_tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&second_tid));
    pthread_t w = waiter_held_in_its_sleep();
    cctx_fake_clock_advance(CCTX_SEC(1)); /* the first waiter's timeout, not the second's */
    /* The second waiter has marked the count again, and sleeps. */
    _Atomic uint32_t *refs = &((struct cctx *)c)->refs;
    int64_t until = real_now() + CCTX_SEC(10);
    while (!(atomic_load(refs) & REFS_WAITED)) {
        CHECK(real_now() < until);
        real_sleep_ms(1);
    }
    wait_until_blocked(atomic_load(&second_tid));
    atomic_store(&handler_go, 1);
    pthread_join(w, NULL);
    CHECK_EQ(atomic_load(&wait_result), ETIMEDOUT);
    CHECK_EQ(atomic_load(&second_result), -1); /* its 5 s have not passed */
    cctx_release(fake_held); /* the second waiter's holder lets go: it returns 0 */
    pthread_join(second, NULL);
    CHECK_EQ(atomic_load(&second_result), 0);
    CHECK_EQ(cctx__refs(c), 1);
    cctx_release(c);
    cctx_fake_clock_stop();
    CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
}

TEST(cancel_wait_fake_timeout_of_one_of_two_waiters_ends_its_wait)
{
    if (TEST_UNDER_TSAN)
        SKIP_IN_THIS_BUILD("ThreadSanitizer delays the signal handler past the futex call");
    run_with_watchdog(fake_timeout_of_one_of_two_waiters, 10);
}

/* The same race left to chance: the clock moves on by 1 ns at a time on one
 * thread while the other waits, again and again, for 1 ns. */
static atomic_int advancing;
static void *advance_on(void *arg)
{
    (void)arg;
    while (atomic_load(&advancing))
        cctx_fake_clock_advance(1);
    return NULL;
}

static void fake_timeouts_race_with_the_sleep(void)
{
    cctx_fake_clock_start(CCTX_SEC(100));
    atomic_store(&advancing, 1);
    pthread_t a;
    pthread_create(&a, NULL, advance_on, NULL);
    int rounds = TEST_UNDER_TSAN ? 2000 : 50000;
    for (int r = 0; r < rounds; r++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        cctx_t *held = cctx_ref(c);
        CHECK_EQ(cctx_cancel_and_wait(cancel, 1, NULL), ETIMEDOUT);
        CHECK_EQ(cctx__refs(c), 2);
        cctx_release(held);
        cctx_release(c);
    }
    atomic_store(&advancing, 0);
    pthread_join(a, NULL);
    cctx_fake_clock_stop();
}

TEST(cancel_wait_fake_timeouts_race_with_the_waiters_sleep)
{
    run_with_watchdog(fake_timeouts_race_with_the_sleep, 20);
}

/* ---- timeout 0 ------------------------------------------------------------------------ */

static void let_go(void *arg)
{
    cctx_release(arg);
}

TEST(cancel_wait_zero_timeout_returns_0_when_the_cancel_lets_the_last_holder_go)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    /* A worker's context, which the worker lets go when it is canceled: an
     * after-function, run by the cancellation on this thread. */
    cctx_t *worker = cctx_with_cancel(c, NULL);
    cctx_after_t reg;
    cctx_after_func(worker, &reg, let_go, worker);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), 0);
    fclose(out);
    CHECK_EQ(len, 0); /* nothing reported */
    CHECK_EQ(cctx__refs(c), 1);
    CHECK_EQ(cctx_err(c), ECANCELED);
    free(text);
    cctx_release(c);
}

/* Nothing else held the context when the call began, but the cancellation
 * it made ran an after-function that took a reference (to hand to a worker
 * that finishes the job): the wait times out, and the report says who holds
 * the context, as after any timeout. */
static cctx_t *kept_by_after;
static void keep_it(void *arg)
{
    kept_by_after = cctx_ref(arg);
}

TEST(cancel_wait_timeout_reports_a_reference_its_own_cancel_made)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(c, "handed on");
    cctx_after_t reg;
    cctx_after_func(c, &reg, keep_it, c);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), ETIMEDOUT);
    fclose(out);
    CHECK(kept_by_after == c);
    CHECK_EQ(count_substr(text, "\n"), 1);
    CHECK(strstr(text, "\"handed on\""));
    CHECK(strstr(text, "refs 2"));
    free(text);
    cctx_release(kept_by_after);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, NULL), 0);
    cctx_release(c);
}

/* ---- many holders, many rounds --------------------------------------------------- */

struct churn {
    cctx_t *ctx;
    uint64_t seed;
};

static void churn_release(void *arg)
{
    struct churn *ch = arg;
    /* A few derivations and releases, then the held one goes. */
    for (int i = 0; i < (int)(xorshift64(&ch->seed) % 50); i++) {
        cctx_t *x = cctx_with_cancel(ch->ctx, NULL);
        cctx_release(x);
    }
    cctx_release(ch->ctx);
}

TEST(cancel_wait_races_with_releasing_threads)
{
    int rounds = TEST_UNDER_TSAN ? 50 : 300;
    for (int r = 0; r < rounds; r++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        struct churn ch[4];
        struct gang g;
        gang_init(&g, 4, true);
        for (int i = 0; i < 4; i++) {
            ch[i] = (struct churn){i % 2 ? cctx_ref(c) : cctx_with_cancel(c, NULL),
                                   (uint64_t)(r * 4 + i + 1)};
            gang_spawn(&g, churn_release, &ch[i]);
        }
        gang_go(&g);
        CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_SEC(30), (r % 2) ? NULL : stderr), 0);
        CHECK_EQ(cctx__refs(c), 1);
        gang_join(&g);
        cctx_release(c);
    }
}

/* ---- with the registry: every descendant, even after an earlier cancel ----------- */

CHILD(cancel_wait_registered_report)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(c, "top");
    cctx_t *a = cctx_with_cancel(c, NULL);
    cctx_set_name(a, "child a");
    cctx_t *leaf = cctx_with_value(a, &key, NULL, NULL);
    cctx_set_name(leaf, "value leaf");
    cctx_t *d = cctx_without_cancel(c);
    cctx_set_name(d, "detached");
    cctx_cancel(cancel); /* before: the lists are handed over */
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, stdout), ETIMEDOUT);
    cctx_release(leaf);
    cctx_release(a);
    cctx_release(d);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, stdout), 0);
    cctx_release(c);
}

/* Runs a child under CCTX_DEBUG=trees (the registry on), shows its output,
 * and checks that it exited 0. */
static void run_with_the_registry(const char *name, struct child *c)
{
    const char *env[] = {"CCTX_DEBUG=trees", NULL};
    run_child(name, env, c);
    printf("%s%s", c->out, c->err);
    CHECK(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0);
}

TEST(cancel_wait_report_with_the_registry_names_every_descendant)
{
    struct child c;
    run_with_the_registry("cancel_wait_registered_report", &c);
    CHECK_EQ(count_substr(c.out, "\n"), 4);
    CHECK(strncmp(c.out, "cancel ", 7) == 0 && strstr(c.out, "\"top\""));
    CHECK(strstr(c.out, "\n  cancel ") && strstr(c.out, "\"child a\""));
    CHECK(strstr(c.out, "\n    value ") && strstr(c.out, "\"value leaf\""));
    CHECK(strstr(c.out, "\n  without_cancel ") && strstr(c.out, "\"detached\""));
    child_done(&c);
}

/* The registry's snapshot out of memory: the report still names the
 * context, and says that its descendants are not listed. */
static void *no_room(void *p, size_t size)
{
    (void)p;
    (void)size;
    return NULL;
}

CHILD(cancel_wait_registered_report_out_of_memory)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(c, "top");
    cctx_t *a = cctx_with_cancel(c, NULL);
    atomic_store_explicit(&cctx__registry_snapshot_realloc, no_room, memory_order_relaxed);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, stdout), ETIMEDOUT);
    atomic_store_explicit(&cctx__registry_snapshot_realloc, realloc, memory_order_relaxed);
    cctx_release(a);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, stdout), 0);
    cctx_release(c);
}

TEST(cancel_wait_report_says_when_the_registry_snapshot_is_out_of_memory)
{
    struct child c;
    run_with_the_registry("cancel_wait_registered_report_out_of_memory", &c);
    CHECK_EQ(count_substr(c.out, "\n"), 2);
    CHECK(strncmp(c.out, "cancel ", 7) == 0 && strstr(c.out, "\"top\""));
    CHECK(strstr(c.out, "\n(out of memory: descendants not listed)\n"));
    child_done(&c);
}

/* The report holds what it lists while it writes it, and nothing else: a
 * stream that blocks holds up no wait on another tree. Here the stream's
 * first write is itself such a wait. */
static cctx_cancel_t *other_tree;
static int other_wait = -1;

static ssize_t write_while_another_tree_is_waited_for(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    (void)buf;
    if (other_wait == -1) /* the report is written on the caller's thread */
        other_wait = cctx_cancel_and_wait(other_tree, CCTX_SEC(10), NULL);
    return (ssize_t)size;
}

CHILD(cancel_wait_registered_report_holds_only_what_it_lists)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *a = cctx_with_cancel(c, NULL);
    cctx_t *b = cctx_with_cancel(cctx_background(), &other_tree);
    FILE *out = fopencookie(
        NULL, "w", (cookie_io_functions_t){.write = write_while_another_tree_is_waited_for});
    CHECK(out);
    setvbuf(out, NULL, _IONBF, 0);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), ETIMEDOUT);
    fclose(out);
    /* Before, the report's snapshot held b too: 10 s, then ETIMEDOUT. */
    CHECK_EQ(other_wait, 0);
    cctx_release(b);
    cctx_release(a);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, NULL), 0);
    cctx_release(c);
}

TEST(cancel_wait_report_with_the_registry_holds_only_what_it_lists)
{
    struct child c;
    run_with_the_registry("cancel_wait_registered_report_holds_only_what_it_lists", &c);
    child_done(&c);
}
