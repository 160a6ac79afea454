/* SPDX-License-Identifier: MIT */
/*
 * <cctx/proc.h> when the rule of proc.h is broken (someone else reaps the
 * child) and the child's PID is handed out again, to another child of this
 * process: the library must neither wait for, reap nor signal that process.
 * The tests choose the next PID through /proc/sys/kernel/ns_last_pid (tests
 * run as root; skipped without it). Also the paths of the library for
 * older kernels (no pidfd, as on other systems too; no waitid by pidfd;
 * no group signal through the pidfd) and of a sandbox without
 * pidfd_send_signal, played on this one through test hooks, and waits by
 * several threads at once.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/proc.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "cctx_config.h" /* CCTX_PORTABLE */
#include "harness.h"
#include "proc_internal.h"
#include "support.h"

/* ---- helpers ------------------------------------------------------------------ */

static bool have_pidfd(void)
{
    long self = CCTX_PORTABLE ? -1 : syscall(SYS_pidfd_open, getpid(), 0);
    if (self < 0)
        return false;
    close((int)self);
    return true;
}

/* Whether waitid takes a pidfd (P_PIDFD, Linux 5.4): ECHILD for this
 * process's own pidfd, where Linux 5.3 says EINVAL. */
static bool have_wait_pidfd(void)
{
    if (!have_pidfd())
        return false;
    int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
    siginfo_t si;
    int r = waitid((idtype_t)3, (id_t)self, &si, WEXITED | WNOHANG);
    int err = errno;
    close(self);
    return r == 0 || err != EINVAL;
}

/* Whether pidfd_send_signal takes PIDFD_SIGNAL_PROCESS_GROUP (Linux 6.9):
 * signal 0 to the group this process may lead, where older kernels refuse
 * the flag with EINVAL. */
static bool have_group_pidfd(void)
{
    if (!have_pidfd())
        return false;
    int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
    long r = syscall(SYS_pidfd_send_signal, self, 0, NULL, 1U << 2);
    int err = errno;
    close(self);
    return r == 0 || err != EINVAL;
}

/* The kernels whose paths the library tells apart, played on this one
 * through the hooks of proc_internal.h: no pidfd (before 5.3, and every
 * other system), 5.3 (pidfd_open, but waitid by PID and the group by
 * kill(-pgid)), 5.4 to 6.8 (the group by kill(-pgid)), a sandbox that lets
 * pidfd_open through but not pidfd_send_signal (every signal by PID), and
 * this kernel. */
enum kernel { NO_PIDFD, LINUX_5_3, LINUX_5_4, NO_PIDFD_SIGNAL, THIS_KERNEL, KERNELS };
static const char *const kernel_name[KERNELS] = {"no pidfd", "Linux 5.3", "Linux 5.4 to 6.8",
                                                 "no pidfd_send_signal", "this kernel"};

/* Makes the library behave as on kernel k from now on (a handle keeps how
 * it waits from its spawn); false, and nothing changed, if this system has
 * no pidfd to play k with. */
static bool play_kernel(enum kernel k)
{
    if (k != NO_PIDFD && !have_pidfd())
        return false;
    atomic_store_explicit(&cctx__proc_no_pidfd, k == NO_PIDFD, memory_order_relaxed);
    atomic_store_explicit(&cctx__proc_no_wait_pidfd, k == LINUX_5_3, memory_order_relaxed);
    atomic_store_explicit(&cctx__proc_no_group_pidfd, k == LINUX_5_3 || k == LINUX_5_4,
                          memory_order_relaxed);
    atomic_store_explicit(&cctx__proc_no_pidfd_signal, k == NO_PIDFD_SIGNAL, memory_order_relaxed);
    return true;
}

static void need_ns_last_pid(void)
{
    int probe = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
    if (probe < 0)
        SKIP_IN_THIS_BUILD("cannot choose the next PID (/proc/sys/kernel/ns_last_pid)");
    close(probe);
}

/* Forks a child of this process that gets PID pid (skips the test if the
 * kernel does not hand it out in 50 tries). The child leads a group of its
 * own if own_group; it reads one byte from hold_fd (the read end of a pipe
 * whose write end the test keeps; -1: none) and exits 7. Only system calls in
 * the child: this process may have threads. */
static pid_t take_pid(pid_t pid, bool own_group, int hold_fd, int hold_wr)
{
    for (int tries = 0; tries < 50; tries++) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
        CHECK(fd >= 0);
        dprintf(fd, "%d", (int)pid - 1);
        close(fd);
        pid_t s = fork();
        CHECK(s >= 0);
        if (s == 0) {
            if (own_group)
                syscall(SYS_setpgid, 0, 0);
            if (hold_fd >= 0) {
                char c;
                syscall(SYS_close, hold_wr);
                syscall(SYS_read, hold_fd, &c, 1);
            }
            syscall(SYS_exit_group, 7);
        }
        if (s == pid) {
            if (own_group)
                (void)setpgid(s, s); /* before the test goes on, whoever is first */
            return s;
        }
        kill(s, SIGKILL);
        waitpid(s, NULL, 0);
    }
    SKIP_IN_THIS_BUILD("the PID was not handed out again in 50 tries");
}

/* ---- a PID reaped behind the library's back, then reused ----------------------- */

/* The child is reaped by the application; its PID goes to another child of
 * this process, which exits 7. cctx_proc_wait reports ECHILD, not that
 * child's status, and cctx_proc_free does not reap it. */
TEST(proc_wait_never_takes_a_child_that_reused_the_pid)
{
    if (!have_wait_pidfd())
        SKIP_IN_THIS_BUILD("waitid takes no pidfd: the library waits by PID, safe only by "
                           "the rule");
    need_ns_last_pid();
    cctx_proc_t *p = spawn_sh(cctx_background(), "exit 4", NULL);
    pid_t pid = cctx_proc_pid(p);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid); /* the rule broken */
    pid_t stranger = take_pid(pid, false, -1, -1);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_EQ(waitid(P_PID, (id_t)stranger, &si, WEXITED | WNOWAIT), 0); /* exited, unreaped */
    st = -1;
    CHECK_EQ(cctx_proc_wait(p, &st), ECHILD);
    CHECK_EQ(st, -1);
    cctx_proc_free(p);
    CHECK_EQ(waitpid(stranger, &st, 0), stranger); /* still ours to reap */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    check_no_children();
}

/* The same with the child's group: the PID goes to a process that leads a
 * group of its own, numbered as the child's was. The context's signal must
 * not reach it (kill(-pid) would): through the pidfd's group, or, before
 * Linux 6.9, not at all once signal 0 through the pidfd finds the child
 * reaped. */
TEST(proc_group_signal_never_reaches_a_group_that_reused_the_pid)
{
    if (!have_pidfd())
        SKIP_IN_THIS_BUILD("no pidfd: the library signals by PID, safe only by the rule");
    need_ns_last_pid();
    for (enum kernel k = LINUX_5_3; k < KERNELS; k++) {
        if (k == NO_PIDFD_SIGNAL)
            continue; /* signals by PID there, safe only by the rule */
        CHECK(play_kernel(k));
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_MSEC(-1); /* SIGKILL with the first signal */
        cctx_proc_t *p = spawn_sh(ctx, "exit 0", &o);
        pid_t pid = cctx_proc_pid(p);
        int st;
        CHECK_EQ(waitpid(pid, &st, 0), pid); /* the rule broken */
        int hold[2];
        CHECK(pipe2(hold, O_CLOEXEC) == 0);
        pid_t stranger = take_pid(pid, true, hold[0], hold[1]);
        close(hold[0]);
        CHECK_EQ(getpgid(stranger), stranger);
        cctx_cancel(cancel); /* SIGTERM and SIGKILL: to the child's group, or nowhere */
        close(hold[1]);      /* the stranger may go now */
        CHECK_EQ(waitpid(stranger, &st, 0), stranger);
        if (!WIFEXITED(st))
            fprintf(stderr, "%s: the stranger was killed by signal %d\n", kernel_name[k],
                    WTERMSIG(st));
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
        CHECK_EQ(cctx_proc_wait(p, NULL), ECHILD);
        cctx_proc_free(p);
        cctx_release(ctx);
        check_no_children();
    }
}

/* ---- the paths of older kernels ------------------------------------------------- */

/* On each older kernel's path (no pidfd, as on other systems; waits by PID,
 * as on 5.3; the group by kill(-pgid), as before 6.9) and in a sandbox
 * without pidfd_send_signal (signals by PID), the same behaviour:
 * the status, the signals to the child or its group, a child reaped behind
 * the library's back, and nothing left behind. The handle holds a
 * descriptor only with a pidfd. */
TEST(proc_paths_of_older_kernels)
{
    for (enum kernel k = NO_PIDFD; k < THIS_KERNEL; k++) {
        if (!play_kernel(k))
            break;
        int fds = count_open_fds();
        cctx_proc_t *p = spawn_sh(cctx_background(), "exit 3", NULL);
        CHECK_EQ(count_open_fds(), fds + (k != NO_PIDFD)); /* the pidfd */
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
        cctx_proc_free(p);
        check_no_children();

        for (int same_group = 0; same_group < 2; same_group++) {
            cctx_cancel_t *cancel;
            cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
            cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
            o.same_group = same_group;
            o.kill_after = CCTX_MSEC(100);
            int out[2];
            CHECK(pipe2(out, O_CLOEXEC) == 0);
            o.stdout_fd = out[1];
            /* SIGTERM ignored (from 'R' on): the SIGKILL ends it. */
            p = spawn_sh(ctx, "trap '' TERM; echo R; while :; do sleep 1; done", &o);
            close(out[1]);
            char c;
            CHECK_EQ(read(out[0], &c, 1), 1);
            CHECK_EQ(c, 'R');
            close(out[0]);
            cctx_cancel(cancel);
            CHECK_EQ(cctx_proc_wait(p, &st), 0);
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            cctx_proc_free(p);
            cctx_release(ctx);
        }
        /* free of a running child, and a group killed on free */
        p = spawn_sh(cctx_background(), "sleep 1000 & wait", NULL);
        cctx_proc_free(p);
        /* reaped behind the library's back */
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        p = spawn_sh(ctx, "exit 4", NULL);
        CHECK_EQ(waitpid(cctx_proc_pid(p), &st, 0), cctx_proc_pid(p));
        st = -1;
        CHECK_EQ(cctx_proc_wait(p, &st), ECHILD);
        CHECK_EQ(st, -1);
        cctx_cancel(cancel);
        cctx_proc_free(p);
        cctx_release(ctx);
        CHECK_EQ(count_open_fds(), fds);
        check_no_children();
    }
}

/* A member of a child's group: a process of this test that joins the group
 * pgid, as a grandchild would, with SIGTERM blocked, so that a SIGTERM sent
 * to the group stays pending where /proc shows it (no race with its
 * delivery). It runs as user uid (0: this process's) until killed. */
static pid_t member_join(pid_t pgid, uid_t uid)
{
    int ready[2];
    CHECK(pipe2(ready, O_CLOEXEC) == 0);
    pid_t m = fork();
    CHECK(m >= 0);
    if (m == 0) {
        sigset_t term;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, NULL);
        if (uid != 0 && syscall(SYS_setresuid, uid, uid, uid) != 0)
            syscall(SYS_exit_group, 1);
        /* Not left behind by a failure (after the change of user, which
         * clears it). */
        syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
        char c = 'm';
        syscall(SYS_write, ready[1], &c, 1);
        for (;;)
            syscall(SYS_pause);
    }
    CHECK_EQ(setpgid(m, pgid), 0);
    close(ready[1]);
    char c;
    CHECK_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return m;
}

/* Whether sig is pending for the process m (sent to it or its group). */
static bool member_has_pending(pid_t m, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)m);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    unsigned long long mask = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "ShdPnd: %llx", &mask) == 1;
    fclose(f);
    CHECK(found);
    return mask >> (sig - 1) & 1;
}

/* Kills the member and returns how it ended. */
static int member_end(pid_t m)
{
    (void)kill(m, SIGKILL);
    int st;
    CHECK_EQ(waitpid(m, &st, 0), m);
    return st;
}

/* The child's group on each kernel's path: a member that outlives the child
 * gets the context's SIGTERM once the child has exited (a zombie the
 * library holds), and the SIGKILL kill_after later. Once the child has been
 * reaped behind the library's back, before Linux 6.9 its group gets nothing
 * (kill(-pgid) could name a stranger's group by then); the pidfd still names
 * the group on 6.9 and later, and without a pidfd (or pidfd_send_signal)
 * the rule alone decides. */
TEST(proc_group_signals_on_the_paths_of_each_kernel)
{
    for (enum kernel k = NO_PIDFD; k < KERNELS; k++) {
        if (!play_kernel(k))
            break;
        /* The child exits; the member is signalled when the context ends. */
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_NO_DEADLINE;
        int in[2];
        CHECK(pipe2(in, O_CLOEXEC) == 0);
        o.stdin_fd = in[0];
        cctx_proc_t *p = spawn_sh(ctx, "read x", &o);
        close(in[0]);
        pid_t m = member_join(cctx_proc_pid(p), 0);
        CHECK_EQ(write(in[1], "\n", 1), 1);
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(!member_has_pending(m, SIGTERM));
        cctx_cancel(cancel);
        if (!member_has_pending(m, SIGTERM)) {
            fprintf(stderr, "%s: the group got no SIGTERM\n", kernel_name[k]);
            abort();
        }
        st = member_end(m);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        cctx_proc_free(p);
        cctx_release(ctx);
        close(in[1]);

        /* The SIGKILL, kill_after after the SIGTERM, ends child and member. */
        ctx = cctx_with_cancel(cctx_background(), &cancel);
        o = (cctx_proc_opts_t)CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_MSEC(100);
        int out[2];
        CHECK(pipe2(in, O_CLOEXEC) == 0);
        CHECK(pipe2(out, O_CLOEXEC) == 0);
        o.stdin_fd = in[0];
        o.stdout_fd = out[1];
        p = spawn_sh(ctx, "trap '' TERM; echo R; read x", &o);
        close(in[0]);
        close(out[1]);
        char c;
        CHECK_EQ(read(out[0], &c, 1), 1);
        close(out[0]);
        m = member_join(cctx_proc_pid(p), 0);
        cctx_cancel(cancel);
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        CHECK_EQ(waitpid(m, &st, 0), m);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        cctx_proc_free(p);
        cctx_release(ctx);
        close(in[1]);

        /* The child reaped behind the library's back, the member alive. */
        ctx = cctx_with_cancel(cctx_background(), &cancel);
        o = (cctx_proc_opts_t)CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_NO_DEADLINE;
        CHECK(pipe2(in, O_CLOEXEC) == 0);
        o.stdin_fd = in[0];
        p = spawn_sh(ctx, "read x", &o);
        close(in[0]);
        pid_t pid = cctx_proc_pid(p);
        m = member_join(pid, 0);
        CHECK_EQ(write(in[1], "\n", 1), 1);
        CHECK_EQ(waitpid(pid, &st, 0), pid); /* the rule broken */
        cctx_cancel(cancel);
        bool signalled =
            k == NO_PIDFD || k == NO_PIDFD_SIGNAL || (k == THIS_KERNEL && have_group_pidfd());
        CHECK_EQ(member_has_pending(m, SIGTERM), signalled);
        CHECK_EQ(cctx_proc_wait(p, NULL), ECHILD);
        member_end(m);
        cctx_proc_free(p);
        cctx_release(ctx);
        close(in[1]);
        check_no_children();
    }
}

/* The child runs as a user this process may not signal (a set-user-ID
 * program, say) and leads a group with a member this process may signal:
 * kill(-pgid) signals the members it may, and the library must too on each
 * path. Signal 0 through the pidfd fails with EPERM for such a child, which
 * is unreaped all the same; only ESRCH says it has been reaped. */
TEST(proc_group_signal_reaches_the_members_under_a_child_of_another_user)
{
    if (geteuid() != 0)
        SKIP_IN_THIS_BUILD("needs root, to run the child and this process as other users");
    if (access("/usr/bin/setpriv", X_OK) != 0)
        SKIP("no /usr/bin/setpriv (util-linux)");
    for (enum kernel k = NO_PIDFD; k < KERNELS; k++) {
        if (!play_kernel(k))
            break;
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_NO_DEADLINE;
        int in[2], out[2];
        CHECK(pipe2(in, O_CLOEXEC) == 0);
        CHECK(pipe2(out, O_CLOEXEC) == 0);
        o.stdin_fd = in[0];
        o.stdout_fd = out[1];
        cctx_proc_t *p = spawn_sh(ctx,
                                  "exec /usr/bin/setpriv --reuid=65534 --regid=65534 "
                                  "--clear-groups /bin/sh -c 'echo L; read x'",
                                  &o);
        close(in[0]);
        close(out[1]);
        char c;
        CHECK_EQ(read(out[0], &c, 1), 1); /* the child runs as 65534 */
        close(out[0]);
        pid_t pid = cctx_proc_pid(p);
        pid_t m = member_join(pid, 65533);
        /* This process as 65533 while the context ends: the saved ID keeps
         * root, to come back to. */
        CHECK_EQ(setresuid(65533, 65533, 0), 0);
        errno = 0;
        CHECK_EQ(kill(pid, 0), -1);
        CHECK_EQ(errno, EPERM);
        cctx_cancel(cancel);
        CHECK_EQ(setresuid(0, 0, 0), 0);
        if (!member_has_pending(m, SIGTERM)) {
            fprintf(stderr, "%s: the member got no SIGTERM\n", kernel_name[k]);
            abort();
        }
        member_end(m);
        CHECK_EQ(write(in[1], "\n", 1), 1); /* the child, never signalled, may go */
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        cctx_proc_free(p);
        cctx_release(ctx);
        close(in[1]);
        check_no_children();
    }
}

/* ---- waits by several threads ------------------------------------------------------ */

/* The waiter that the hook holds just before its waitid, until the test
 * opens `go`. */
static _Thread_local bool slow_thread;
static struct latch *slow_held, *slow_go;

static void hold_slow_waiter(struct cctx_proc *p)
{
    (void)p;
    if (!slow_thread)
        return;
    latch_add(slow_held);
    latch_wait_open(slow_go);
}

struct waiter {
    cctx_proc_t *p;
    int rc, st;
    atomic_bool done;
};

static void *slow_waiter(void *arg)
{
    struct waiter *w = arg;
    slow_thread = true;
    w->rc = cctx_proc_wait(w->p, &w->st);
    atomic_store_explicit(&w->done, true, memory_order_release);
    return NULL;
}

/* Two threads wait; one is held (by a hook) between its decision to wait
 * and its waitid, while the other sees the exit and returns. Nothing may be
 * reaped while the held one has still to look: a reaping would let the PID
 * go to another process, which the held waiter would then wait for (by PID,
 * without a pidfd). Here the PID, if it was let go, goes to another child
 * of this process that runs until the test ends: the held waiter must still
 * return at once, with the child's status. On the path of each kernel. */
TEST(proc_concurrent_waits_never_wait_for_a_reused_pid)
{
    need_ns_last_pid();
    for (enum kernel k = 0; k < KERNELS; k++) {
        if (!play_kernel(k))
            break;
        struct latch held = LATCH_INIT, go = LATCH_INIT;
        slow_held = &held;
        slow_go = &go;
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_NO_DEADLINE; /* after the SIGTERM no signal is due: waits reap */
        cctx_proc_t *p = spawn_sh(ctx, "exec sleep 1000", &o);
        pid_t pid = cctx_proc_pid(p);
        atomic_store_explicit(&cctx__proc_before_wait, hold_slow_waiter, memory_order_relaxed);
        struct waiter w = {.p = p};
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, slow_waiter, &w), 0);
        latch_wait_n(&held, 1);
        cctx_cancel(cancel);
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
        pid_t stranger = -1;
        int hold[2] = {-1, -1};
        if (proc_state(pid) != 'Z') { /* reaped: the PID may go elsewhere */
            CHECK(pipe2(hold, O_CLOEXEC) == 0);
            stranger = take_pid(pid, false, hold[0], hold[1]);
            close(hold[0]);
        }
        latch_open(&go);
        int64_t end = real_now() + CCTX_SEC(10);
        while (!atomic_load_explicit(&w.done, memory_order_acquire)) {
            if (real_now() > end) {
                fprintf(stderr, "%s: the held waiter waits for another process\n", kernel_name[k]);
                abort();
            }
            real_sleep_ms(1);
        }
        CHECK_EQ(pthread_join(t, NULL), 0);
        atomic_store_explicit(&cctx__proc_before_wait, NULL, memory_order_relaxed);
        CHECK_EQ(w.rc, 0);
        CHECK(WIFSIGNALED(w.st) && WTERMSIG(w.st) == SIGTERM);
        if (stranger > 0) {
            close(hold[1]);
            CHECK_EQ(waitpid(stranger, &st, 0), stranger);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
        }
        check_no_children(); /* the last waiter out reaped */
        cctx_proc_free(p);
        cctx_release(ctx);
    }
}

/* ---- a child of fork() --------------------------------------------------------------- */

/* A child of fork() inherits the handle and the context, and ends the
 * context later (an inherited deadline fires there too), after the parent
 * has waited for, reaped and freed the child, and its PID went to a process
 * that leads a group of its own. The fork child's copy must signal nothing
 * (kill(-pid) would reach that group), wait for nothing and reap nothing.
 * On the path of each kernel. */
TEST(proc_handle_inherited_by_fork_signals_nothing)
{
    need_ns_last_pid();
    for (enum kernel k = 0; k < KERNELS; k++) {
        if (!play_kernel(k))
            break;
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.kill_after = CCTX_NO_DEADLINE; /* no deadline to arm: no thread in the fork child */
        int in[2], out[2], go[2], ready[2];
        CHECK(pipe2(in, O_CLOEXEC) == 0);
        CHECK(pipe2(out, O_CLOEXEC) == 0);
        CHECK(pipe2(go, O_CLOEXEC) == 0);
        CHECK(pipe2(ready, O_CLOEXEC) == 0);
        o.stdin_fd = in[0];
        o.stdout_fd = out[1];
        cctx_proc_t *p = spawn_sh(ctx, "echo R; read x", &o);
        close(in[0]);
        close(out[1]);
        char c;
        CHECK_EQ(read(out[0], &c, 1), 1);
        close(out[0]);
        pid_t pid = cctx_proc_pid(p);
        fflush(NULL);
        pid_t f = fork();
        CHECK(f >= 0);
        if (f == 0) {
            close(in[1]);
            close(go[1]);
            if (write(ready[1], "r", 1) != 1)
                _exit(2);
            if (read(go[0], &c, 1) != 1)
                _exit(2);
            cctx_cancel(cancel); /* the copy of the context ends here */
            int st = -1;
            int rc = cctx_proc_wait(p, &st);
            cctx_proc_free(p);
            _exit(rc == ECHILD && st == -1 ? 0 : 3);
        }
        close(go[0]);
        /* The fork child runs: a thread it starts at the fork (ThreadSanitizer
         * does) takes no number the child's is about to free. */
        close(ready[1]);
        CHECK_EQ(read(ready[0], &c, 1), 1);
        close(ready[0]);
        /* The parent ends the child itself, waits, reaps, frees. */
        CHECK_EQ(kill(pid, SIGKILL), 0);
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        close(in[1]);
        cctx_proc_free(p);
        CHECK(proc_state(pid) == 0 || proc_state(pid) != 'Z');
        int hold[2];
        CHECK(pipe2(hold, O_CLOEXEC) == 0);
        pid_t stranger = take_pid(pid, true, hold[0], hold[1]);
        close(hold[0]);
        /* The fork child ends its copy of the context now (a byte: the
         * stranger holds a copy of go[1], no end of file would come). */
        CHECK_EQ(write(go[1], "g", 1), 1);
        close(go[1]);
        CHECK_EQ(child_exit_status(f), 0);
        close(hold[1]);
        CHECK_EQ(waitpid(stranger, &st, 0), stranger);
        if (!WIFEXITED(st))
            fprintf(stderr, "%s: the stranger was killed by signal %d\n", kernel_name[k],
                    WTERMSIG(st));
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
        cctx_release(ctx);
        check_no_children();
    }
}

/* The handle's lock was held by another thread of the parent at the fork
 * (signalling, reaping, or in cctx_proc_wait): in the child it stays held
 * for ever. The child's copy must not need it: the end of its context, its
 * wait and its free all return. */
static cctx_proc_t *held_proc;

static void hold_proc_lock(bool hold)
{
    cctx__test_proc_hold_lock(held_proc, hold);
}

TEST(proc_handle_inherited_by_fork_needs_no_lock_another_thread_held)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_NO_DEADLINE;
    int in[2];
    CHECK(pipe2(in, O_CLOEXEC) == 0);
    o.stdin_fd = in[0];
    cctx_proc_t *p = spawn_sh(ctx, "read x", &o);
    close(in[0]);
    held_proc = p;
    struct lock_holder holder;
    lock_holder_start(&holder, hold_proc_lock);
    fflush(NULL);
    pid_t f = fork();
    CHECK(f >= 0);
    if (f == 0) {
        alarm(10); /* a hang dies of SIGALRM, which fails the test */
        cctx_cancel(cancel);
        int rc = cctx_proc_wait(p, NULL);
        cctx_proc_free(p);
        _exit(rc == ECHILD ? 0 : 3);
    }
    CHECK_EQ(child_exit_status(f), 0);
    lock_holder_join(&holder);
    CHECK_EQ(write(in[1], "\n", 1), 1);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cctx_proc_free(p);
    close(in[1]);
    cctx_release(ctx);
    check_no_children();
}
