/* SPDX-License-Identifier: MIT */
/*
 * A thread with a pthread_cancel pending in library code that is no
 * cancellation point, but makes calls that are: the signal and the close of
 * a done descriptor, a watched signal's handler, a misuse report, a trace's
 * flush, a child process's spawn and free, a dump and cctx_cancel_and_wait's
 * report. Acted on there, the cancel lost a cancellation, unwound the thread
 * through the handler's interrupted code, turned the abort of a misuse into
 * the thread's end, or left a descriptor open, a lock held, a child without
 * a handle, a handle never freed, contexts held for good. Each call now ends
 * as it would have, and the cancel acts at the thread's next cancellation
 * point. Last, cctx_proc_wait, whose wait for the exit is one: cancelled in
 * it, it leaves the handle as a return would; its reaping is none.
 *
 * Each call runs on a thread of its own, with the cancel made pending while
 * cancellation is off and turned back on just before the call: no
 * cancellation point lies between. Cancellation is turned off again as soon
 * as the call returns, so the thread ends normally when the call kept it out.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/proc.h>
#include <cctx/signal.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* ---- the done descriptor ------------------------------------------------------------ */

/* The done descriptor is signalled (write) and closed (close) by calls that
 * are cancellation points. A thread with a pthread_cancel pending that
 * cancelled, released, or asked for the descriptor of a done context, died
 * in that write or close: the descriptor never became readable, so whoever
 * polled it waited for ever, and neither the context's descendants nor its
 * after-functions were reached; a release left the descriptor open and its
 * reference on the parent held. The call now returns, and the cancellation
 * acts at the thread's next cancellation point. */
static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static void cancel_it(void *arg)
{
    cctx_cancel(arg);
}

static void release_it(void *arg)
{
    cctx_release(arg);
}

static void note_ran(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
}

TEST(wait_cancel_with_a_thread_cancel_pending_signals_the_done_fd)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *child = cctx_with_cancel(c, NULL);
    int fd = cctx_done_fd(c), child_fd = cctx_done_fd(child);
    CHECK(fd >= 0 && child_fd >= 0);
    atomic_int ran = 0;
    cctx_after_t reg = {0};
    CHECK_EQ(cctx_after_func(c, &reg, note_ran, &ran), 0);
    CHECK(returns_with_cancel_pending(cancel_it, cancel));
    CHECK_EQ(cctx_err(c), ECANCELED);
    CHECK(readable(fd));
    CHECK(atomic_load(&ran));
    /* Before, the child was never reached: it stayed active for good. */
    CHECK_EQ(cctx_err(child), ECANCELED);
    CHECK(readable(child_fd));
    cctx_release(child);
    cctx_release(c);
}

struct asking {
    cctx_t *ctx;
    int fd;
};

static void ask_done_fd(void *arg)
{
    struct asking *a = arg;
    a->fd = cctx_done_fd(a->ctx);
}

TEST(wait_done_fd_of_a_done_context_with_a_thread_cancel_pending_is_readable)
{
    cctx_cancel_t *cancel;
    struct asking a = {.ctx = cctx_with_cancel(cctx_background(), &cancel), .fd = -2};
    cctx_cancel(cancel); /* done before it has a descriptor */
    CHECK(returns_with_cancel_pending(ask_done_fd, &a));
    CHECK(a.fd >= 0);
    int fd = cctx_done_fd(a.ctx); /* the one published */
    CHECK_EQ(fd, a.fd);
    CHECK(readable(fd));
    cctx_release(a.ctx);
}

TEST(wait_release_with_a_thread_cancel_pending_closes_the_done_fd)
{
    cctx_cancel_t *parent_cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &parent_cancel);
    cctx_t *c = cctx_with_cancel(parent, NULL);
    int before = count_open_fds();
    CHECK(cctx_done_fd(c) >= 0);
    CHECK(count_open_fds() > before); /* one, or a pipe's two ends */
    CHECK(returns_with_cancel_pending(release_it, c));
    CHECK_EQ(count_open_fds(), before);
    /* c's reference on its parent went with it. */
    CHECK_EQ(cctx_cancel_and_wait(parent_cancel, 0, NULL), 0);
    cctx_release(parent);
}

/* ---- a watched signal's handler ---------------------------------------------------- */

static void signal_myself(void *arg)
{
    /* Delivered to this thread as the call returns, before any other code
     * of it runs. */
    CHECK_EQ(pthread_kill(pthread_self(), *(int *)arg), 0);
}

/* The handler's write of the byte that wakes the signal thread was where
 * the cancel acted: the byte never went, and the watch was not cancelled
 * until some later signal. */
TEST(signal_caught_by_a_thread_with_a_cancel_pending_still_cancels_its_watch)
{
    static const int sigs[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(c != NULL);
    int sig = SIGUSR1;
    CHECK(returns_with_cancel_pending(signal_myself, &sig));
    CHECK_EQ(cctx_wait(c, CCTX_SEC(30)), ECANCELED);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.code, SIGUSR1);
    cctx_release(c);
}

/* ---- a misuse report ------------------------------------------------------------------ */

/* The report's first write to stderr acted on the cancel: the thread ended
 * and the program went on past its misuse. */
CHILD(over_release_with_a_cancel_pending)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_release(c);
    returns_with_cancel_pending(release_it, c);
    printf("the thread ended without the abort\n");
}

TEST(debug_misuse_on_a_thread_with_a_cancel_pending_still_aborts)
{
    const char *env[] = {"CCTX_DEBUG=checks", NULL};
    struct child c;
    run_child("over_release_with_a_cancel_pending", env, &c);
    if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT)
        fprintf(stderr, "child status %#x\n%s%s", c.status, c.out, c.err);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    CHECK(strstr(c.err, "misuse: cctx_release of a context with no reference left"));
    child_done(&c);
}

/* ---- a trace's flush ------------------------------------------------------------------ */

static void flush_it(void *arg)
{
    *(int *)arg = cctx_trace_flush();
}

static void *make_and_release(void *arg)
{
    (void)arg;
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
    return NULL;
}

/* The flush writes holding the lock of the trace's rings: the cancel acted
 * in a write, and the lock stayed held, so that the next flush, and a new
 * thread's first event, waited for ever. */
CHILD(trace_flush_with_a_cancel_pending)
{
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
    int err = -1;
    CHECK(returns_with_cancel_pending(flush_it, &err));
    CHECK_EQ(err, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, make_and_release, NULL), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cctx_trace_flush(), 0);
}

TEST(trace_flush_on_a_thread_with_a_cancel_pending_returns_and_lets_go_of_its_lock)
{
    char *path = run_traced("trace_flush_with_a_cancel_pending");
    unlink(path);
    free(path);
}

/* ---- a child process's spawn and free ------------------------------------------------- */

struct spawning {
    char **argv;
    cctx_proc_t *p;
};

static void spawn_it(void *arg)
{
    struct spawning *s = arg;
    s->p = cctx_proc_spawn(cctx_background(), "/bin/sh", s->argv, NULL, NULL);
}

/* The spawn probes the child's pidfd with a waitid, made after the child
 * started: the cancel acted there, and the child ran on with no handle to
 * signal or reap it by. */
TEST(proc_spawn_on_a_thread_with_a_cancel_pending_returns_the_handle)
{
    char *argv[] = {"sh", "-c", "exit 7", NULL};
    struct spawning s = {.argv = argv};
    CHECK(returns_with_cancel_pending(spawn_it, &s));
    CHECK(s.p != NULL);
    int status;
    CHECK_EQ(cctx_proc_wait(s.p, &status), 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    cctx_proc_free(s.p);
}

static void free_it(void *arg)
{
    cctx_proc_free(arg);
}

/* The free reaps holding the handle's lock: the cancel acted in its
 * waitid, and the child stayed a zombie (or ran on), its pidfd open, the
 * handle and its reference on the context never given back. */
TEST(proc_free_on_a_thread_with_a_cancel_pending_reaps_and_frees)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int fds = count_open_fds();
    char *argv[] = {"sh", "-c", "exec sleep 30", NULL};
    cctx_proc_t *p = cctx_proc_spawn(ctx, "/bin/sh", argv, NULL, NULL);
    CHECK(p != NULL);
    pid_t pid = cctx_proc_pid(p);
    CHECK(returns_with_cancel_pending(free_it, p));
    CHECK_EQ(waitpid(pid, NULL, WNOHANG), -1); /* reaped */
    CHECK_EQ(errno, ECHILD);
    CHECK_EQ(count_open_fds(), fds);
    /* The handle's reference on ctx went with it: nothing else holds it. */
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, NULL), 0);
    cctx_release(ctx);
}

/* ---- a dump and a report ---------------------------------------------------------- */

/* A stream that writes at each call: each write is a cancellation point. */
static FILE *unbuffered_file(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK_EQ(setvbuf(f, NULL, _IONBF, 0), 0);
    return f;
}

struct dumping {
    cctx_t *root;
    FILE *out;
    int err;
};

static void dump_it(void *arg)
{
    struct dumping *d = arg;
    d->err = cctx_dump(d->root, d->out, CCTX_DUMP_TEXT);
}

/* The dump writes holding a reference on each context it lists: the cancel
 * acted in a write, and they were held for good. */
TEST(dump_on_a_thread_with_a_cancel_pending_lets_go_of_what_it_listed)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *child = cctx_with_cancel(root, NULL);
    struct dumping d = {.root = root, .out = unbuffered_file(), .err = -1};
    CHECK(returns_with_cancel_pending(dump_it, &d));
    CHECK_EQ(d.err, 0);
    CHECK(ftell(d.out) > 0);
    fclose(d.out);
    cctx_release(child);
    /* The child is freed once the dump's reference, dropped on a runner,
     * goes: then nothing but this test's reference holds root. */
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_SEC(30), NULL), 0);
    cctx_release(root);
}

struct reporting {
    cctx_cancel_t *cancel;
    FILE *out;
    int err;
};

static void wait_and_report(void *arg)
{
    struct reporting *r = arg;
    r->err = cctx_cancel_and_wait(r->cancel, 0, r->out);
}

/* The report writes holding a reference on each descendant it lists: the
 * cancel acted in a write, and they were held for good. */
TEST(cancel_and_wait_report_on_a_thread_with_a_cancel_pending_lets_go_of_what_it_listed)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *child = cctx_with_cancel(root, NULL);
    struct reporting r = {.cancel = cancel, .out = unbuffered_file(), .err = -1};
    CHECK(returns_with_cancel_pending(wait_and_report, &r));
    CHECK_EQ(r.err, ETIMEDOUT); /* the child holds root */
    CHECK(ftell(r.out) > 0);
    fclose(r.out);
    cctx_release(child);
    CHECK_EQ(cctx_cancel_and_wait(cancel, CCTX_SEC(30), NULL), 0); /* as above */
    cctx_release(root);
}

/* ---- a child process's wait, a cancellation point -------------------------------------- */

static void *wait_for_it(void *arg)
{
    int status;
    cctx_proc_wait(arg, &status);
    return NULL;
}

/* cctx_proc_wait counts its waiters, and the last one out reaps: a waiter
 * cancelled in its waitid stayed counted, and no later wait reaped the
 * child, which stayed a zombie until cctx_proc_free. The thread has no
 * cancellation point before that waitid, and the child cannot exit before
 * the context ends, so the cancel acts in that wait. */
TEST(proc_wait_cancelled_in_its_wait_leaves_the_reaping_to_the_next_wait)
{
    if (TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for a "
                           "use after scope");
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    /* No SIGKILL to come: the child may be reaped once it has its SIGTERM. */
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_NO_DEADLINE;
    char *argv[] = {"sh", "-c", "exec sleep 30", NULL};
    cctx_proc_t *p = cctx_proc_spawn(ctx, "/bin/sh", argv, NULL, &o);
    CHECK(p != NULL);
    pid_t pid = cctx_proc_pid(p);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_for_it, p), 0);
    CHECK_EQ(pthread_cancel(t), 0);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == PTHREAD_CANCELED);
    cctx_cancel(cancel); /* SIGTERM */
    int status;
    CHECK_EQ(cctx_proc_wait(p, &status), 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    /* Reaped by that wait: no zombie is left to find. */
    siginfo_t si = {0};
    CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), -1);
    CHECK_EQ(errno, ECHILD);
    cctx_proc_free(p);
    cctx_release(ctx);
}

struct waiting {
    cctx_proc_t *p;
    int err, status;
};

static void wait_it(void *arg)
{
    struct waiting *w = arg;
    w->err = cctx_proc_wait(w->p, &w->status);
}

/* Once the child's exit is known, cctx_proc_wait reaps it holding the
 * handle's lock, and the reaping is a waitid: the cancel acted there, the
 * lock stayed held (cctx_proc_free, and an end of the context, waited for it
 * for ever) and the child a zombie. The first wait learns of the exit but
 * does not reap: the child's group is signalled by its ID until the
 * context's end has sent its signal. */
TEST(proc_wait_of_a_known_exit_with_a_thread_cancel_pending_reaps_and_returns)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_NO_DEADLINE;
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    cctx_proc_t *p = cctx_proc_spawn(ctx, "/bin/sh", argv, NULL, &o);
    CHECK(p != NULL);
    pid_t pid = cctx_proc_pid(p);
    int status;
    CHECK_EQ(cctx_proc_wait(p, &status), 0);
    siginfo_t si = {0};
    CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
    CHECK_EQ(si.si_pid, pid); /* a zombie still */
    /* Its signal sent: the next wait reaps. */
    cctx_cancel(cancel);
    struct waiting w = {.p = p, .err = -1};
    /* A failure here leaves p alone: its lock is held. */
    CHECK(returns_with_cancel_pending(wait_it, &w));
    CHECK_EQ(w.err, 0);
    CHECK(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 3);
    CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), -1);
    CHECK_EQ(errno, ECHILD);
    cctx_proc_free(p);
    cctx_release(ctx);
}
