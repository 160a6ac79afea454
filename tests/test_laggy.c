/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=laggy=DURATION: a context still referenced DURATION after its
 * cancellation is reported once on stderr (site, name, references, cause);
 * one released in time, or still active, is not. Each case runs in a child
 * process started with the switch. The thread ends when the leak report at
 * exit begins, and leaves nothing allocated behind.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <fcntl.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* Sends stderr through a pipe that this thread reads, so the child can wait
 * for the report itself instead of sleeping and hoping it came. */
static int err_pipe, real_err;
static char seen[65536];
static size_t seen_n;

static void capture_stderr(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    real_err = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    err_pipe = p[0];
}

/* Reads stderr until `needle` has appeared `times` times or `ms` passed. */
static void read_stderr(const char *needle, int times, int ms)
{
    int64_t end = real_now() + (int64_t)ms * 1000000;
    while (count_substr(seen, needle) < times && real_now() < end) {
        struct pollfd pfd = {err_pipe, POLLIN, 0};
        if (poll(&pfd, 1, 10) == 1 && seen_n < sizeof seen - 1) {
            ssize_t r = read(err_pipe, seen + seen_n, sizeof seen - 1 - seen_n);
            if (r > 0)
                seen_n += (size_t)r;
            seen[seen_n] = '\0';
        }
    }
}

CHILD(laggy_reports_once)
{
    capture_stderr();
    cctx_cancel_t *cancel;
    cctx_t *server = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *held = cctx_with_cancel(server, NULL);
    cctx_set_name(held, "the deaf one");
    cctx_t *quick = cctx_with_cancel(server, NULL);
    cctx_set_name(quick, "the quick one");
    cctx_t *active = cctx_with_cancel(cctx_background(), NULL);
    cctx_set_name(active, "never canceled");
    cctx_cancel_cause(cancel, 7, "shutting down");
    cctx_release(quick); /* well within 50 ms */
    cctx_release(server); /* held keeps it alive: reported too */
    /* The report comes between 50 and 75 ms; 10 s is for loaded machines. */
    read_stderr("the deaf one", 1, 10000);
    /* Ten more periods: no second report. */
    read_stderr("the deaf one", 2, 500);
    cctx_release(held);
    cctx_release(active);
    write(real_err, seen, seen_n);
}

TEST(laggy_reports_a_held_context_once)
{
    const char *env[] = {"CCTX_DEBUG=laggy=50ms", NULL};
    struct child c;
    run_child("laggy_reports_once", env, &c);
    printf("%s", c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_EQ(count_substr(c.err, "\"the deaf one\""), 1);
    CHECK(strstr(c.err, "cctx: laggy: a context still referenced "));
    CHECK(strstr(c.err, "after it was canceled (CCTX_DEBUG=laggy=50ms):\n  cancel 0x"));
    CHECK(strstr(c.err, "\"the deaf one\" made at tests/test_laggy.c:"));
    CHECK(strstr(c.err, "ECANCELED (code 7, \"shutting down\", at tests/test_laggy.c:"));
    CHECK(strstr(c.err, "refs 1, children 0"));
    CHECK(!strstr(c.err, "the quick one"));
    CHECK(!strstr(c.err, "never canceled"));
    /* The parent, held by its child, is reported once as well. */
    CHECK_EQ(count_substr(c.err, "cctx: laggy:"), 2);
    child_done(&c);
}

/* One canceled context, held until its report has come. */
CHILD(laggy_reports_one)
{
    capture_stderr();
    cctx_cancel_t *cancel;
    cctx_t *held = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    read_stderr("cctx: laggy:", 1, 10000);
    cctx_release(held);
    write(real_err, seen, seen_n);
}

TEST(laggy_report_gives_its_setting_as_written)
{
    /* 1 ns, the least there is, printed as "0.0ms" before. */
    const char *env[] = {"CCTX_DEBUG=laggy=1ns", NULL};
    struct child c;
    run_child("laggy_reports_one", env, &c);
    printf("%s", c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "after it was canceled (CCTX_DEBUG=laggy=1ns):\n  cancel 0x"));
    child_done(&c);
}

CHILD(laggy_quiet)
{
    for (int i = 0; i < 1000; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        cctx_cancel(cancel);
        cctx_release(c);
    }
    real_sleep_ms(50);
}

TEST(laggy_is_quiet_when_everything_lets_go)
{
    const char *env[] = {"CCTX_DEBUG=laggy=10ms", NULL};
    struct child c;
    run_child("laggy_quiet", env, &c);
    printf("%s", c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_STR(c.err, "");
    child_done(&c);
}

TEST(laggy_bad_duration_is_said_and_ignored)
{
    const char *env[] = {"CCTX_DEBUG=laggy=soon", NULL};
    struct child c;
    run_child("laggy_quiet", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "bad value in \"laggy=soon\" ignored"));
    child_done(&c);
    /* Past 2^63 - 1 is a typo, not "never" (before: taken silently); a
     * space or a sign before the number is not a duration (before: read). */
    const char *huge[] = {
        "CCTX_DEBUG=laggy=99999999999999999999s,laggy=10000000000s,laggy= 1s,laggy=+1s", NULL};
    run_child("laggy_quiet", huge, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "bad value in \"laggy=99999999999999999999s\" ignored"));
    CHECK(strstr(c.err, "bad value in \"laggy=10000000000s\" ignored"));
    CHECK(strstr(c.err, "bad value in \"laggy= 1s\" ignored"));
    CHECK(strstr(c.err, "bad value in \"laggy=+1s\" ignored"));
    child_done(&c);
}

/* The laggy thread's report goes to a stderr that blocks (a full pipe
 * nobody reads: a stalled logger). The thread must hold no reference
 * meanwhile: before, it kept the context it was reporting, and so its
 * parent, and a cctx_cancel_and_wait of the parent ran out its time. */
static bool laggy_thread_blocked_writing_stderr(void)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d);
    bool blocked = false;
    for (struct dirent *e; !blocked && (e = readdir(d)) != NULL;) {
        char path[300], line[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        /* "1 0x2 ..." on x86-64: write(2, ...); musl's stdio writes with
         * writev. */
        char write2[32], writev2[32];
        snprintf(write2, sizeof write2, "%ld 0x2 ", (long)SYS_write);
        snprintf(writev2, sizeof writev2, "%ld 0x2 ", (long)SYS_writev);
        if (fgets(line, sizeof line, f))
            blocked = strncmp(line, write2, strlen(write2)) == 0 ||
                      strncmp(line, writev2, strlen(writev2)) == 0;
        fclose(f);
    }
    closedir(d);
    return blocked;
}

/* The read end of the pipe that stderr is while it blocks. */
static int blocked_pipe;

/* Reads over what the pipe holds, so that a write blocked on it goes
 * through, and makes fd 2 the real stderr again: then a failed CHECK can
 * say so, and the exit's flush (ThreadSanitizer makes one) can be done. */
static void unblock_stderr(void)
{
    char junk[4096];
    CHECK(fcntl(blocked_pipe, F_SETFL, O_NONBLOCK) == 0);
    while (read(blocked_pipe, junk, sizeof junk) > 0)
        ;
    dup2(real_err, 2);
}

CHILD(laggy_blocked_stderr)
{
    FILE *mine = fopen("/proc/thread-self/syscall", "r");
    if (!mine) /* where a thread's system call cannot be seen */
        _exit(77);
    fclose(mine);
    int p[2];
    CHECK(pipe(p) == 0);
    real_err = dup(2);
    blocked_pipe = p[0];
    dup2(p[1], 2);
    close(p[1]);
    CHECK(fcntl(2, F_SETFL, O_NONBLOCK) == 0);
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    while (write(2, junk, sizeof junk) > 0 || write(2, junk, 1) > 0)
        ;
    CHECK(fcntl(2, F_SETFL, 0) == 0); /* full, and blocking again */
    cctx_cancel_t *top_cancel, *cancel;
    cctx_t *top = cctx_with_cancel(cctx_background(), &top_cancel);
    cctx_t *c = cctx_with_cancel(top, &cancel);
    cctx_cancel(cancel);
    int waited = 0;
    while (!laggy_thread_blocked_writing_stderr() && waited++ < 10000)
        real_sleep_ms(1);
    cctx_release(c); /* the program lets go of it */
    int err = cctx_cancel_and_wait(top_cancel, CCTX_SEC(2), NULL);
    unblock_stderr();
    printf("cancel_and_wait: %s\n", strerror(err));
    CHECK(waited <= 10000);
    CHECK_EQ(err, 0);
    cctx_release(top);
}

TEST(laggy_holds_nothing_while_its_report_waits_on_stderr)
{
    const char *env[] = {"CCTX_DEBUG=laggy=10ms", NULL};
    struct child c;
    run_child("laggy_blocked_stderr", env, &c);
    printf("%s", c.out);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 77) {
        child_done(&c);
        SKIP_IN_THIS_BUILD("no /proc/thread-self/syscall here");
    }
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}

/* A context canceled near the top of the fake clock's range, which then
 * starts anew near its bottom: its age is negative, not the wrapped-around
 * positive difference (signed overflow) that made it look laggy. */
CHILD(laggy_clock_went_back)
{
    capture_stderr();
    cctx_fake_clock_start(INT64_MAX - 1000);
    cctx_cancel_t *cancel;
    cctx_t *back = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(back, "canceled before the clock went back");
    cctx_cancel(cancel);
    cctx_fake_clock_start(INT64_MIN + CCTX_SEC(1));
    cctx_t *witness = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(witness, "the witness");
    cctx_cancel(cancel);
    cctx_fake_clock_advance(CCTX_MSEC(10));
    /* A pass that reports the witness has looked at both. */
    read_stderr("the witness", 1, 10000);
    cctx_release(witness);
    cctx_release(back);
    cctx_fake_clock_stop();
    write(real_err, seen, seen_n);
}

TEST(laggy_age_of_a_cancel_before_the_fake_clock_went_back_is_negative)
{
    const char *env[] = {"CCTX_DEBUG=laggy=1ms", NULL};
    struct child c;
    run_child("laggy_clock_went_back", env, &c);
    printf("%s", c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_EQ(count_substr(c.err, "the witness"), 1);
    CHECK(!strstr(c.err, "canceled before the clock went back"));
    CHECK(!strstr(c.err, "runtime error"));
    child_done(&c);
}

/* The leak report at exit ends the laggy thread (its next pass takes no
 * reference). The thread kept the list of its passes for the next one, and
 * left it allocated when it ended: with leak checking (LeakSanitizer) on, a
 * program run with CCTX_DEBUG=leaks,laggy failed at exit now and then. The
 * report's walk waits here for the thread to end, so that it always does. */
static int threads_with_laggy; /* counted while the laggy thread runs */
static bool walked;

static void wait_for_the_laggy_thread_to_end(struct cctx *c)
{
    (void)c;
    if (walked)
        return;
    walked = true;
    /* It may have ended already, before the walk: its first wake-up after
     * the report began. */
    for (int waited = 0; thread_count() >= threads_with_laggy; waited++) {
        CHECK(waited < 10000);
        real_sleep_ms(1);
    }
}

CHILD(laggy_ended_by_the_leak_report)
{
    capture_stderr();
    cctx_cancel_t *cancel;
    cctx_t *held = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    /* A pass has found it: the thread's list is allocated. */
    read_stderr("cctx: laggy:", 1, 10000);
    CHECK(write(real_err, seen, seen_n) == (ssize_t)seen_n);
    dup2(real_err, 2); /* for the leak report, and LeakSanitizer's */
    threads_with_laggy = thread_count();
    atomic_store(&cctx__leak_walk_hook, wait_for_the_laggy_thread_to_end);
    (void)held; /* left for the report to find */
}

TEST(laggy_thread_ended_by_the_leak_report_leaves_nothing_allocated)
{
    if (!TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("needs LeakSanitizer, to see what is left allocated at exit");
    const char *env[] = {"CCTX_DEBUG=leaks,laggy=1ms", "ASAN_OPTIONS=detect_leaks=1", NULL};
    struct child c;
    run_child("laggy_ended_by_the_leak_report", env, &c);
    printf("%s", c.err);
    CHECK(strstr(c.err, "cctx: 1 context never released"));
    CHECK(!strstr(c.err, "LeakSanitizer"));
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}
