/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG: the registry behind cctx_dump(NULL), the leak report at exit,
 * and the misuse checks. The switches are read before main, so each is
 * tested in a child process started with the variable set (run_child); the
 * child prints the lines of its call sites, and the test finds them in what
 * the library reported.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

/* The line the child printed as "site NAME LINE". */
static int site_line(const struct child *c, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "site %s ", name);
    const char *p = strstr(c->out, key);
    CHECK(p);
    return atoi(p + strlen(key));
}

static void check_has(const char *text, const char *want)
{
    if (!strstr(text, want)) {
        fprintf(stderr, "expected to find \"%s\" in:\n%s\n", want, text);
        abort();
    }
}

/* "tests/test_debug.c:LINE" followed by `tail` is in text. */
static void check_site(const char *text, const char *head, int line, const char *tail)
{
    char want[256];
    snprintf(want, sizeof want, "%stests/test_debug.c:%d%s", head, line, tail);
    check_has(text, want);
}

static void check_aborted(const struct child *c)
{
    if (!WIFSIGNALED(c->status) || WTERMSIG(c->status) != SIGABRT) {
        fprintf(stderr, "child status %#x, stderr:\n%s\n", c->status, c->err);
        abort();
    }
}

/* ---- leaks -------------------------------------------------------------------------- */

static void make_leaks(int big_site_count)
{
    cctx_t *keep[64];
    int n = 0;
    for (int i = 0; i < big_site_count; i++) {
        keep[n++] = cctx_with_cancel(cctx_background(), NULL); printf("site big %d\n", __LINE__);
    }
    cctx_t *v = cctx_with_value(keep[0], &n, NULL, NULL); printf("site value %d\n", __LINE__);
    CHECK(cctx_set_name(v, "request-id") == 0);
    /* Released: not reported. */
    cctx_t *gone = cctx_with_cancel(cctx_background(), NULL);
    cctx_release(gone);
    (void)v;
}

CHILD(leaky)
{
    make_leaks(3);
}

TEST(debug_leaks_are_listed_by_site_biggest_first)
{
    const char *env[] = {"CCTX_DEBUG=leaks", NULL};
    struct child c;
    run_child("leaky", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0); /* strict is off */
    check_has(c.err, "cctx: 4 contexts never released (CCTX_DEBUG=leaks), at 2 sites:");
    int big = site_line(&c, "big"), value = site_line(&c, "value");
    check_site(c.err, "     3 x cancel made at ", big, " in make_leaks");
    check_site(c.err, "     1 x value made at ", value, " in make_leaks");
    char want[64];
    snprintf(want, sizeof want, ":%d in make_leaks", big);
    /* The biggest site comes first, and each context is listed with its name. */
    CHECK(strstr(c.err, want) < strstr(c.err, "1 x value"));
    check_has(c.err, "\"request-id\", active, refs 1");
    child_done(&c);
}

CHILD(many_sites)
{
    for (int i = 0; i < 12; i++) {
        /* Twelve sites: a context made through a different line each time. */
        switch (i) {
        case 0: cctx_with_cancel(cctx_background(), NULL); break;
        case 1: cctx_with_cancel(cctx_background(), NULL); break;
        case 2: cctx_with_cancel(cctx_background(), NULL); break;
        case 3: cctx_with_cancel(cctx_background(), NULL); break;
        case 4: cctx_with_cancel(cctx_background(), NULL); break;
        case 5: cctx_with_cancel(cctx_background(), NULL); break;
        case 6: cctx_with_cancel(cctx_background(), NULL); break;
        case 7: cctx_with_cancel(cctx_background(), NULL); break;
        case 8: cctx_with_cancel(cctx_background(), NULL); break;
        case 9: cctx_with_cancel(cctx_background(), NULL); break;
        case 10: cctx_with_cancel(cctx_background(), NULL); break;
        default: cctx_with_cancel(cctx_background(), NULL); break;
        }
    }
    for (int i = 0; i < 7; i++)
        cctx_with_timeout(cctx_background(), CCTX_SEC(100), NULL); /* the biggest site */
}

TEST(debug_leaks_show_ten_sites_and_count_the_rest)
{
    const char *env[] = {"CCTX_DEBUG=leaks", NULL};
    struct child c;
    run_child("many_sites", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.err, "cctx: 19 contexts never released (CCTX_DEBUG=leaks), at 13 sites:");
    check_has(c.err, "cctx:      7 x deadline made at tests/test_debug.c:");
    CHECK(strstr(c.err, "7 x deadline") < strstr(c.err, "1 x cancel"));
    check_has(c.err, "cctx: ... and 3 more at 3 other sites");
    check_has(c.err, "... and 2 more\n"); /* 7 at one site, 5 of them shown */
    child_done(&c);
}

TEST(debug_leaks_strict_turns_the_exit_status_non_zero)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("leaky", env, &c);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), CCTX__LEAK_EXIT_STATUS);
    check_has(c.err, "4 contexts never released");
    child_done(&c);
}

/* A thread blocked in fgets(stdin) holds stdin's lock for as long as it
 * waits. A plain exit flushes past it; the strict exit must not wait for it
 * either. alarm() ends a child that hangs, so the test fails, not stalls. */
static atomic_int reader_tid;

static void *read_stdin(void *arg)
{
    (void)arg;
    char line[64];
    atomic_store(&reader_tid, thread_id());
    return fgets(line, sizeof line, stdin); /* never answered */
}

CHILD(leaky_while_a_thread_reads_stdin)
{
    alarm(20);
    int p[2];
    CHECK(pipe(p) == 0); /* the write end stays open: no end of file */
    CHECK(dup2(p[0], 0) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, read_stdin, NULL) == 0);
    while (atomic_load(&reader_tid) == 0)
        sched_yield();
    wait_until_blocked(atomic_load(&reader_tid));
    cctx_with_cancel(cctx_background(), NULL);
    printf("leaked\n"); /* buffered: stdout is a file */
}

TEST(debug_leaks_strict_exits_while_another_thread_holds_stdin)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("leaky_while_a_thread_reads_stdin", env, &c);
    if (!WIFEXITED(c.status))
        fprintf(stderr, "child status %#x, stderr:\n%s\n", c.status, c.err);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), CCTX__LEAK_EXIT_STATUS);
    check_has(c.err, "1 context never released");
    check_has(c.out, "leaked\n"); /* stdout was flushed all the same */
    child_done(&c);
}

CHILD(tidy)
{
    cctx_cancel_t *cancel;
    cctx_t *a = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *b = cctx_with_value(a, &cancel, NULL, NULL);
    cctx_t *d = cctx_with_timeout(b, CCTX_SEC(10), NULL);
    cctx_cancel(cancel);
    cctx_release(d);
    cctx_release(b);
    cctx_release(a);
    printf("tidy done\n");
}

TEST(debug_leaks_without_leaks_report_nothing_and_exit_zero)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("tidy", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.out, "tidy done");
    CHECK(strstr(c.err, "cctx:") == NULL);
    child_done(&c);
}

/* A program that releases everything and exits while a dump on another
 * thread still holds its references (here: blocked writing, until the
 * exiting thread sleeps) has leaked nothing: the report waits for the dump.
 * The dump's stream is a cookie whose writes block on that. */
static _Atomic pid_t exiting_tid;
static atomic_int dump_writing;

static ssize_t write_once_the_exit_waits(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    (void)buf;
    if (atomic_exchange(&dump_writing, 1)) /* it holds its references by now */
        return (ssize_t)size;
    pid_t tid;
    while ((tid = atomic_load(&exiting_tid)) == 0)
        real_sleep_ms(1);
    wait_until_blocked(tid);
    return (ssize_t)size;
}

static void *dump_slowly(void *arg)
{
    FILE *out = fopencookie(NULL, "w", (cookie_io_functions_t){.write = write_once_the_exit_waits});
    CHECK(out);
    setvbuf(out, NULL, _IONBF, 0);
    (void)arg;
    cctx_dump(NULL, out, CCTX_DUMP_TEXT); /* the whole process */
    fclose(out);
    return NULL;
}

CHILD(exits_during_a_dump)
{
    cctx_t *root = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *kids[10];
    for (int i = 0; i < 10; i++)
        kids[i] = cctx_with_cancel(root, NULL);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, dump_slowly, NULL), 0);
    CHECK_EQ(pthread_detach(t), 0);
    while (!atomic_load(&dump_writing))
        real_sleep_ms(1);
    for (int i = 0; i < 10; i++)
        cctx_release(kids[i]);
    cctx_release(root);
    atomic_store(&exiting_tid, thread_id());
    exit(0);
}

TEST(debug_leaks_at_exit_wait_for_a_dump_under_way)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("exits_during_a_dump", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "never released") == NULL);
    child_done(&c);
}

/* When a child's exit() began (real_now), for the destructor below, which
 * runs after the library's leak report (exit runs the atexit handlers, the
 * library's among them, before destructors) and prints how long exit took. */
static _Atomic int64_t exit_began;

__attribute__((destructor)) static void say_how_long_exit_took(void)
{
    int64_t began = atomic_load(&exit_began);
    if (began)
        dprintf(1, "exit took %lld ms\n", (long long)((real_now() - began) / CCTX_MSEC(1)));
}

/* How long the child's exit took, as it printed it. */
static int exit_ms(const struct child *c)
{
    const char *p = strstr(c->out, "exit took ");
    CHECK(p);
    return atoi(p + strlen("exit took "));
}

static cctx_t *dumped_root;

static ssize_t exit_from_the_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    (void)buf;
    (void)size;
    cctx_release(dumped_root);
    atomic_store(&exit_began, real_now());
    exit(0);
}

CHILD(exits_from_its_own_dump)
{
    atomic_store(&cctx__leak_report_dump_wait, CCTX_SEC(30)); /* a wait would show */
    dumped_root = cctx_with_cancel(cctx_background(), NULL);
    FILE *out = fopencookie(NULL, "w", (cookie_io_functions_t){.write = exit_from_the_write});
    CHECK(out);
    setvbuf(out, NULL, _IONBF, 0);
    cctx_dump(NULL, out, CCTX_DUMP_TEXT);
    abort(); /* the write exits */
}

/* The exiting thread's own dump cannot end: the report does not wait for
 * it (it used to, a second). */
TEST(debug_leaks_at_exit_from_a_dump_do_not_wait_for_that_dump)
{
    const char *env[] = {"CCTX_DEBUG=leaks", NULL};
    struct child c;
    run_child("exits_from_its_own_dump", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(exit_ms(&c) < 10000); /* a wait: 30 s */
    child_done(&c);
}

static atomic_int dump_may_end;

/* Holds the dump in the growth of its stack, until told: there it holds
 * its references and no stdio lock (a child whose exit() found a stream
 * locked by a thread it does not have would hang in musl's stdio). */
static void *realloc_once_told(void *p, size_t size)
{
    atomic_store(&dump_writing, 1);
    while (!atomic_load(&dump_may_end))
        real_sleep_ms(1);
    return realloc(p, size);
}

static void *dump_until_told(void *arg)
{
    (void)arg;
    FILE *out = fopen("/dev/null", "w");
    CHECK(out);
    cctx_dump(NULL, out, CCTX_DUMP_TEXT);
    fclose(out);
    return NULL;
}

CHILD(forks_during_a_dump)
{
    atomic_store(&cctx__leak_report_dump_wait, CCTX_SEC(30)); /* a wait would show */
    cctx_t *root = cctx_with_cancel(cctx_background(), NULL);
    atomic_store_explicit(&cctx__dump_stack_realloc, realloc_once_told, memory_order_relaxed);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, dump_until_told, NULL), 0);
    while (!atomic_load(&dump_writing))
        real_sleep_ms(1);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) { /* the dumping thread is not here: its dump never ends */
        cctx_release(root);
        atomic_store(&exit_began, real_now());
        exit(0);
    }
    CHECK_EQ(child_exit_status(pid), 0);
    atomic_store(&dump_may_end, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    cctx_release(root);
}

/* A child of fork() has only the forking thread: its leak report does not
 * wait for the dumps other threads of its parent were running (it used to,
 * a second). */
TEST(debug_leaks_at_exit_of_a_fork_child_do_not_wait_for_the_parents_dumps)
{
    /* ThreadSanitizer's deadlock detector holds at most 64 locks a thread,
     * fewer than the registry's fork handler takes. */
    char tsan[512];
    snprintf(tsan, sizeof tsan, "TSAN_OPTIONS=%s:detect_deadlocks=0",
             getenv("TSAN_OPTIONS") ? getenv("TSAN_OPTIONS") : "");
    const char *env[] = {"CCTX_DEBUG=leaks", tsan, NULL};
    struct child c;
    run_child("forks_during_a_dump", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(exit_ms(&c) < 10000); /* a wait: 30 s */
    child_done(&c);
}

TEST(debug_unknown_switch_is_named_and_ignored)
{
    const char *env[] = {"CCTX_DEBUG=leaks,bogus", NULL};
    struct child c;
    run_child("tidy", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.err, "CCTX_DEBUG: unknown switch \"bogus\" ignored");
    child_done(&c);
}

/* A value given a switch that takes none is named so (was: a bad laggy
 * value); a part's controls are escaped (were written raw). */
TEST(debug_odd_switches_are_named_as_they_are_and_quoted_safely)
{
    const char *env[] = {"CCTX_DEBUG=leaks,trees=1,bo\x1b[2Jgus", NULL};
    struct child c;
    run_child("tidy", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.err, "a value for a switch that takes none in \"trees=1\" ignored");
    check_has(c.err, "unknown switch \"bo\\x1b[2Jgus\" ignored");
    CHECK(!strchr(c.err, '\x1b'));
    child_done(&c);
}

/* ---- checks ------------------------------------------------------------------------- */

/* Each child makes a context at "made", releases its last reference at
 * "released", then misuses it at "misuse". */
#define MADE_AND_RELEASED(c)                                                        \
    cctx_cancel_t *c##_cancel;                                                      \
    cctx_t *c = cctx_with_cancel(cctx_background(), &c##_cancel);                   \
    printf("site made %d\n", __LINE__);                                             \
    cctx_release(c); printf("site released %d\n", __LINE__);                        \
    fflush(stdout)

CHILD(over_release)
{
    MADE_AND_RELEASED(c);
    (void)c_cancel;
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_release(c);
}

static void check_misuse(const char *child, const char *what, bool has_site)
{
    const char *env[] = {"CCTX_DEBUG=checks", NULL};
    struct child c;
    run_child(child, env, &c);
    check_aborted(&c);
    check_has(c.err, what);
    if (has_site)
        check_site(c.err, ", at ", site_line(&c, "misuse"), " in child_");
    else
        check_has(c.err, "(called from ");
    check_site(c.err, "was made at ", site_line(&c, "made"), " in child_");
    check_site(c.err, "and released (its last reference dropped) at ", site_line(&c, "released"),
               " in child_");
    child_done(&c);
}

TEST(debug_checks_catch_over_release_with_all_three_sites)
{
    check_misuse("over_release",
                 "cctx: misuse: cctx_release of a context with no reference left (over-release)",
                 true);
}

CHILD(parent_over_released)
{
    cctx_t *p = cctx_with_cancel(cctx_background(), NULL);
    printf("site made %d\n", __LINE__ - 1);
    cctx_t *c = cctx_with_cancel(p, NULL);
    cctx_release(p); /* fine: c still holds p */
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_release(p); /* one too many: c's reference is the one dropped */
    cctx_release(c);
}

TEST(debug_checks_catch_over_release_of_a_parent_its_children_hold)
{
    const char *env[] = {"CCTX_DEBUG=checks", NULL};
    struct child c;
    run_child("parent_over_released", env, &c);
    check_aborted(&c);
    check_has(c.err, "misuse: cctx_release of a context whose children still hold it (over-release)");
    check_site(c.err, ", at ", site_line(&c, "misuse"), " in child_parent_over_released");
    check_site(c.err, "was made at ", site_line(&c, "made"), " in child_parent_over_released");
    child_done(&c);
}

CHILD(derive_from_released)
{
    MADE_AND_RELEASED(c);
    (void)c_cancel;
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_with_value(c, &c, NULL, NULL);
}

TEST(debug_checks_catch_deriving_from_a_released_context)
{
    check_misuse("derive_from_released",
                 "misuse: deriving from a context already released (use after free)", true);
}

CHILD(stale_cancel)
{
    MADE_AND_RELEASED(c);
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_cancel(c_cancel);
}

TEST(debug_checks_catch_cancel_through_a_stale_handle)
{
    check_misuse("stale_cancel", "misuse: cancel through a stale handle", true);
}

CHILD(err_after_free)
{
    MADE_AND_RELEASED(c);
    (void)c_cancel;
    printf("err %d\n", cctx_err(c));
}

TEST(debug_checks_catch_reading_a_released_context_and_name_the_caller)
{
    check_misuse("err_after_free", "misuse: cctx_err on a context already released", false);
}

CHILD(wait_after_free)
{
    MADE_AND_RELEASED(c);
    (void)c_cancel;
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_wait(c, 0);
}

TEST(debug_checks_catch_waiting_on_a_released_context)
{
    check_misuse("wait_after_free", "misuse: cctx_wait on a context already released", true);
}

/* Each call is named as the program wrote it (they were named cctx_wait and
 * cctx_deadline, the calls they make). */
CHILD(sleep_after_free)
{
    MADE_AND_RELEASED(c);
    (void)c_cancel;
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_sleep(c, CCTX_MSEC(1));
}

TEST(debug_checks_catch_sleeping_on_a_released_context)
{
    check_misuse("sleep_after_free", "misuse: cctx_sleep on a context already released", true);
}

CHILD(remaining_after_free)
{
    MADE_AND_RELEASED(c);
    (void)c_cancel;
    cctx_remaining(c);
}

TEST(debug_checks_catch_remaining_of_a_released_context)
{
    check_misuse("remaining_after_free", "misuse: cctx_remaining on a context already released",
                 false);
}

CHILD(stop_unregistered)
{
    cctx_after_t reg = {0};
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_after_stop(&reg);
}

TEST(debug_checks_catch_after_stop_on_storage_never_registered)
{
    const char *env[] = {"CCTX_DEBUG=checks", NULL};
    struct child c;
    run_child("stop_unregistered", env, &c);
    check_aborted(&c);
    check_has(c.err, "misuse: cctx_after_stop on storage that was never registered");
    check_site(c.err, ", at ", site_line(&c, "misuse"), " in child_stop_unregistered");
    child_done(&c);
}

static void never_runs(void *arg)
{
    (void)arg;
    abort();
}

/* Registered twice, the storage would cut the context's list: a cancel
 * then spun for ever. */
CHILD(register_twice)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_after_t other, reg;
    CHECK_EQ(cctx_after_func(c, &other, never_runs, NULL), 0);
    CHECK_EQ(cctx_after_func(c, &reg, never_runs, NULL), 0);
    printf("site misuse %d\n", __LINE__ + 2);
    fflush(stdout);
    cctx_after_func(c, &reg, never_runs, NULL);
}

TEST(debug_checks_catch_a_second_registration_of_live_storage)
{
    const char *env[] = {"CCTX_DEBUG=checks", NULL};
    struct child c;
    run_child("register_twice", env, &c);
    check_aborted(&c);
    check_has(c.err, "misuse: cctx_after_func on storage still registered on this context");
    check_site(c.err, ", at ", site_line(&c, "misuse"), " in child_register_twice");
    child_done(&c);
}

CHILD(stop_unregistered_quietly)
{
    cctx_after_t reg = {0};
    printf("stopped %d\n", cctx_after_stop(&reg));
}

TEST(debug_without_checks_after_stop_on_zeroed_storage_is_false)
{
    struct child c;
    run_child("stop_unregistered_quietly", NULL, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.out, "stopped 0");
    child_done(&c);
}

CHILD(correct_use_under_checks)
{
    /* Everything used as documented: checks must stay silent. */
    cctx_cancel_t *cancel;
    cctx_t *a = cctx_with_cancel(cctx_background(), &cancel);
    for (int i = 0; i < 1000; i++) {
        cctx_t *b = cctx_with_timeout(a, CCTX_SEC(5), NULL);
        cctx_after_t reg;
        struct rec r = {0};
        cctx_after_func(b, &reg, rec_fn, &r);
        if (i % 2)
            cctx_after_stop(&reg);
        cctx_release(b);
    }
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(a), ECANCELED);
    cctx_release(a);
    printf("clean\n");
}

TEST(debug_checks_stay_silent_on_correct_use)
{
    const char *env[] = {"CCTX_DEBUG=checks,leaks,strict", NULL};
    struct child c;
    run_child("correct_use_under_checks", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.out, "clean");
    CHECK(strstr(c.err, "cctx:") == NULL);
    child_done(&c);
}

/* ---- cctx_dump(NULL) ------------------------------------------------------------------ */

static char *dump_all(int format)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f);
    CHECK_EQ(cctx_dump(NULL, f, format), 0);
    CHECK(fclose(f) == 0);
    return text;
}

CHILD(whole_process)
{
    cctx_cancel_t *cancel;
    cctx_t *server = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(server, "server");
    cctx_t *req = cctx_with_value(server, &cancel, NULL, NULL);
    cctx_set_name(req, "request-id");
    cctx_t *deadline = cctx_with_timeout(req, CCTX_SEC(30), NULL);
    cctx_set_name(deadline, "db query");
    cctx_t *detached = cctx_without_cancel(req);
    cctx_set_name(detached, "audit");
    cctx_t *audit_job = cctx_with_cancel(detached, NULL);
    cctx_set_name(audit_job, "audit job");
    cctx_t *other = cctx_with_cancel(cctx_todo(), NULL);
    cctx_set_name(other, "other tree");
    char *text = dump_all(CCTX_DUMP_TEXT);
    fputs(text, stdout);
    free(text);
    printf("---\n");
    text = dump_all(CCTX_DUMP_JSON);
    fputs(text, stdout);
    /* The HTML page embeds the same JSON (a deadline's time left aside). */
    char *html = dump_all(CCTX_DUMP_HTML), *cut = strstr(text, ",\"deadline\":");
    CHECK(cut);
    *cut = 0;
    printf("html %s\n", strstr(html, text) && strncmp(html, "<!doctype html>", 15) == 0
                              ? "embeds the dump" : "differs");
    free(html);
    free(text);
    cctx_release(other);
    cctx_release(audit_job);
    cctx_release(detached);
    cctx_release(deadline);
    cctx_release(req);
    cctx_release(server);
}

TEST(debug_dump_null_shows_every_tree_with_every_kind)
{
    const char *env[] = {"CCTX_DEBUG=trees", NULL};
    struct child c;
    run_child("whole_process", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    /* Indentation is depth: each context under its own parent, values and
     * without-cancel ones included; both roots' trees; references exact. */
    const char *want[] = {
        "root ", " \"background\" made at cctx:0 in cctx_background, active, refs 0, children 1",
        "\n  cancel ", " \"server\" made at tests/test_debug.c:",
        "\n    value ", " \"request-id\" made at tests/test_debug.c:",
        "\n      deadline ", " \"db query\" made at",
        "\n      without_cancel ", " \"audit\" made at",
        "\n        cancel ", " \"audit job\" made at",
        "\nroot ", " \"todo\" made at cctx:0 in cctx_todo, active, refs 0, children 1",
        "\n  cancel ", " \"other tree\"",
    };
    const char *p = c.out;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *q = strstr(p, want[i]);
        if (!q) {
            fprintf(stderr, "missing (in order) \"%s\" in:\n%s\n", want[i], c.out);
            abort();
        }
        p = q + strlen(want[i]);
    }
    /* server: its own reference and its child's; request-id: three. */
    check_has(c.out, "refs 2, children 1\n    value");
    check_has(c.out, "refs 3, children 2\n      deadline");
    /* The JSON holds the same seven contexts plus both roots. */
    const char *json = strstr(c.out, "---\n");
    CHECK(json);
    int ids = 0;
    for (const char *q = json; (q = strstr(q, "{\"id\":")) != NULL; q++)
        ids++;
    CHECK_EQ(ids, 8);
    check_has(c.out, "html embeds the dump");
    child_done(&c);
}

CHILD(dump_null_without_registry)
{
    char buf[64] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    CHECK(f);
    CHECK_EQ(cctx_dump(NULL, f, CCTX_DUMP_JSON), ENOTSUP);
    fclose(f);
    CHECK_STR(buf, "");
    printf("enotsup, nothing written\n");
}

TEST(debug_dump_null_is_enotsup_without_the_registry)
{
    struct child c;
    run_child("dump_null_without_registry", NULL, &c); /* no CCTX_DEBUG */
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    check_has(c.out, "enotsup, nothing written");
    child_done(&c);
}
