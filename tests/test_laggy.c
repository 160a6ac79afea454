/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=laggy=DURATION: a context still referenced DURATION after its
 * cancellation is reported once on stderr (site, name, references, cause);
 * one released in time, or still active, is not. Each case runs in a child
 * process started with the switch.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"

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
}
