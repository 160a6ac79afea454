/* SPDX-License-Identifier: MIT */
/*
 * <cctx/proc.h>: spawning, the two signals on the context's end (to the whole
 * group), the reaping rule, descriptors, and no leak of descriptors or
 * zombies. Children that need to report what they see are bodies of this
 * test binary (CHILD), started with cctx_proc_spawn itself; they tell the
 * test what happens through pipes, which the test waits on (no sleeps).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/proc.h>
#include <cctx/testing.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "cctx_config.h" /* CCTX_PORTABLE */
#include "harness.h"
#include "support.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Reads fd to its end (within ms) into a NUL-terminated malloc'd string. */
static char *read_all(int fd, int ms)
{
    size_t len = 0, cap = 256;
    char *s = malloc(cap);
    CHECK(s != NULL);
    for (;;) {
        int c = read_byte(fd, ms);
        if (c < 0)
            break;
        if (len + 2 > cap)
            CHECK((s = realloc(s, cap *= 2)) != NULL);
        s[len++] = (char)c;
    }
    s[len] = '\0';
    return s;
}

static void make_pipe(int fds[2])
{
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
}

/* A child of this binary (spawn_child) whose stdout is a pipe, once it
 * has said 'R' there; the pipe's read end in *from. */
static cctx_proc_t *spawn_ready(cctx_t *ctx, const char *name, cctx_proc_opts_t *o, int *from);

/* A child of this binary: argv = cctx-tests --child NAME. */
static cctx_proc_t *spawn_child(cctx_t *ctx, const char *name, const cctx_proc_opts_t *o)
{
    char *argv[] = {"cctx-tests", "--child", (char *)name, NULL};
    cctx_proc_t *p = cctx_proc_spawn(ctx, "/proc/self/exe", argv, NULL, o);
    CHECK(p != NULL);
    return p;
}

static cctx_proc_t *spawn_ready(cctx_t *ctx, const char *name, cctx_proc_opts_t *o, int *from)
{
    int out[2];
    make_pipe(out);
    o->stdout_fd = out[1];
    cctx_proc_t *p = spawn_child(ctx, name, o);
    close(out[1]);
    *from = out[0];
    CHECK_EQ(read_byte(out[0], 30000), 'R');
    return p;
}

/* ---- children ------------------------------------------------------------------- */

/* SIGTERM taken through a signalfd rather than a handler: ThreadSanitizer
 * defers a handler until the thread leaves a blocking call it entered just
 * before the signal, which for a child blocked in read can be never. */
static int term_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        _exit(3);
    return fd;
}

/* Survives SIGTERM (noting it with 'T' on stdout), says 'R' when ready, then
 * echoes what comes on stdin (proof that it is alive) until end of file. */
CHILD(proc_term_catcher)
{
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = term_fd(), .events = POLLIN}};
    (void)!write(1, "R", 1);
    for (;;) {
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            (void)!read(p[1].fd, &si, sizeof si);
            (void)!write(1, "T", 1);
        }
        if (p[0].revents) {
            char c;
            ssize_t n = read(0, &c, 1);
            if (n == 0)
                _exit(0);
            if (n == 1)
                (void)!write(1, &c, 1);
        }
    }
}

/* Says 'R', then waits; on SIGTERM writes 'T' and exits 0. */
CHILD(proc_term_exit)
{
    int fd = term_fd();
    (void)!write(1, "R", 1);
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
        ;
    (void)!write(1, "T", 1);
    _exit(0);
}

/* Leaves the group it leads for its parent's (in the same session), says
 * 'R', and waits for a signal to end it. */
CHILD(proc_leaves_its_group)
{
    if (setpgid(0, getpgid(getppid())) != 0)
        _exit(3);
    (void)!write(1, "R", 1);
    for (;;)
        pause();
}

/* Writes the numbers of its open descriptors, space-separated, to stdout. */
CHILD(proc_list_fds)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        _exit(3);
    char out[4096];
    size_t len = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", len ? " " : "",
                                e->d_name);
    }
    closedir(d);
    (void)!write(1, out, len);
    _exit(0);
}

/* ---- input and plain runs ---------------------------------------------------------- */

TEST(proc_bad_input)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    char *argv[] = {"true", NULL};
    CHECK_ERRNO(cctx_proc_spawn(NULL, "/bin/true", argv, NULL, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_proc_spawn(ctx, NULL, argv, NULL, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/bin/true", NULL, NULL, NULL), NULL, EINVAL);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.signal = -1;
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/bin/true", argv, NULL, &o), NULL, EINVAL);
    o.signal = 100000;
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/bin/true", argv, NULL, &o), NULL, EINVAL);
    o = (cctx_proc_opts_t)CCTX_PROC_OPTS_INIT;
    o.stdout_fd = -7;
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/bin/true", argv, NULL, &o), NULL, EINVAL);
    int fds[2];
    make_pipe(fds);
    close(fds[0]);
    close(fds[1]);
    o.stdout_fd = fds[1]; /* closed now */
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/bin/true", argv, NULL, &o), NULL, EBADF);
    /* The exec's own failure, reported by posix_spawn. */
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/nonexistent/program", argv, NULL, NULL), NULL, ENOENT);
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/dev/null", argv, NULL, NULL), NULL, EACCES);
    CHECK_EQ(cctx_proc_wait(NULL, NULL), EINVAL);
    CHECK_EQ(cctx_proc_pid(NULL), -1);
    cctx_proc_free(NULL);
    /* An ended context starts nothing. */
    cctx_cancel(cancel);
    CHECK_ERRNO(cctx_proc_spawn(ctx, "/bin/true", argv, NULL, NULL), NULL, ECANCELED);
    cctx_release(ctx);
    check_no_children();
}

TEST(proc_exit_status)
{
    cctx_proc_t *p = spawn_sh(cctx_background(), "exit 3", NULL);
    CHECK(cctx_proc_pid(p) > 0);
    int st = -1;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    st = -1;
    CHECK_EQ(cctx_proc_wait(p, &st), 0); /* again: the same status */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    CHECK_EQ(cctx_proc_wait(p, NULL), 0);
    cctx_proc_free(p);
    check_no_children();
}

TEST(proc_envp)
{
    int fds[2], fds2[2];
    make_pipe(fds);
    make_pipe(fds2);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.stdout_fd = fds[1];
    char *env[] = {"CCTX_PROC_A=given", NULL};
    char *argv[] = {"sh", "-c", "printf '%s/%s' \"$CCTX_PROC_A\" \"${CCTX_PROC_B-unset}\"", NULL};
    setenv("CCTX_PROC_B", "inherited", 1);
    cctx_proc_t *p = cctx_proc_spawn(cctx_background(), "/bin/sh", argv, env, &o);
    CHECK(p != NULL);
    /* envp NULL: the caller's environment. */
    o.stdout_fd = fds2[1];
    cctx_proc_t *q = cctx_proc_spawn(cctx_background(), "/bin/sh", argv, NULL, &o);
    CHECK(q != NULL);
    close(fds[1]);
    close(fds2[1]);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(cctx_proc_wait(q, &st), 0);
    char *out = read_all(fds[0], 10000);
    CHECK_STR(out, "given/unset");
    free(out);
    out = read_all(fds2[0], 10000);
    CHECK_STR(out, "/inherited");
    free(out);
    close(fds[0]);
    close(fds2[0]);
    cctx_proc_free(p);
    cctx_proc_free(q);
}

/* The child has 0, 1 and 2 and nothing else, even descriptors this process
 * opened without O_CLOEXEC. */
TEST(proc_only_three_descriptors)
{
    int leaky[2];
    CHECK(pipe(leaky) == 0); /* no O_CLOEXEC on purpose */
    int devnull = open("/dev/null", O_RDONLY);
    CHECK(devnull >= 0);
    int fds[2];
    make_pipe(fds);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.stdin_fd = devnull;
    o.stdout_fd = fds[1];
    o.stderr_fd = fds[1];
    cctx_proc_t *p = spawn_child(cctx_background(), "proc_list_fds", &o);
    close(fds[1]);
    char *out = read_all(fds[0], 30000);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR(out, "0 1 2");
    free(out);
    cctx_proc_free(p);
    close(fds[0]);

    /* Descriptors 0 to 2 given crosswise: stdin_fd = 1, stdout_fd = 0 would
     * break with plain dup2s in order. Here the test's own 0 and 1 become a
     * pipe's two ends; the child copies stdin to stdout with cat. */
    int saved0 = dup(0), saved1 = dup(1);
    int in[2], outp[2];
    make_pipe(in);
    make_pipe(outp);
    CHECK(dup2(in[0], 1) == 1);   /* our 1: the read end of `in`  */
    CHECK(dup2(outp[1], 0) == 0); /* our 0: the write end of `outp` */
    o = (cctx_proc_opts_t)CCTX_PROC_OPTS_INIT;
    o.stdin_fd = 1;
    o.stdout_fd = 0;
    char *argv[] = {"cat", NULL};
    p = cctx_proc_spawn(cctx_background(), "/bin/cat", argv, NULL, &o);
    int err = errno;
    CHECK(dup2(saved0, 0) == 0);
    CHECK(dup2(saved1, 1) == 1);
    close(saved0);
    close(saved1);
    if (!p) {
        fprintf(stderr, "spawn: %s\n", strerror(err));
        abort();
    }
    close(in[0]);
    close(outp[1]);
    CHECK(write(in[1], "hi", 2) == 2);
    close(in[1]);
    out = read_all(outp[0], 30000);
    CHECK_STR(out, "hi");
    free(out);
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cctx_proc_free(p);
    close(outp[0]);
    close(leaky[0]);
    close(leaky[1]);
    close(devnull);
}

/* ---- the end of the context ----------------------------------------------------------- */

/* A child that survives SIGTERM gets SIGKILL kill_after later, not sooner. */
TEST(proc_ignores_term)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int in[2], out[2];
    make_pipe(in);
    make_pipe(out);
    const int64_t kill_after = CCTX_MSEC(300);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = kill_after;
    o.stdin_fd = in[0];
    o.stdout_fd = out[1];
    cctx_proc_t *p = spawn_child(ctx, "proc_term_catcher", &o);
    close(in[0]);
    close(out[1]);
    CHECK_EQ(read_byte(out[0], 30000), 'R');
    int64_t t0 = real_now();
    cctx_cancel(cancel);
    CHECK_EQ(read_byte(out[0], 10000), 'T');
    int64_t t_term = real_now() - t0;
    /* Still alive after SIGTERM: it echoes. */
    CHECK(write(in[1], "x", 1) == 1);
    CHECK_EQ(read_byte(out[0], 10000), 'x');
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    int64_t t_kill = real_now() - t0;
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK(t_kill >= kill_after);
    CHECK(t_kill < kill_after + CCTX_SEC(5));
    printf("SIGTERM after %.3f ms, SIGKILL'd and reaped after %.3f ms (kill_after %.0f ms)\n",
           t_term / 1e6, t_kill / 1e6, kill_after / 1e6);
    cctx_proc_free(p);
    close(in[1]);
    close(out[0]);
    cctx_release(ctx);
    check_no_children();
}

/* kill_after is measured on cctx_now(): on the fake clock, SIGKILL comes
 * when the clock is moved past it, and not one nanosecond before. */
TEST(proc_kill_after_fake_clock)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int in[2], out[2];
    make_pipe(in);
    make_pipe(out);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_SEC(10);
    o.stdin_fd = in[0];
    o.stdout_fd = out[1];
    cctx_proc_t *p = spawn_child(ctx, "proc_term_catcher", &o);
    close(in[0]);
    close(out[1]);
    CHECK_EQ(read_byte(out[0], 30000), 'R');
    cctx_cancel(cancel);
    CHECK_EQ(read_byte(out[0], 10000), 'T');
    cctx_fake_clock_advance(CCTX_SEC(10) - 1);
    CHECK(write(in[1], "a", 1) == 1);
    CHECK_EQ(read_byte(out[0], 10000), 'a'); /* alive at kill_after - 1 ns */
    cctx_fake_clock_advance(1);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    cctx_proc_free(p);
    close(in[1]);
    close(out[0]);
    cctx_release(ctx);
    cctx_fake_clock_stop();
    check_no_children();
}

/* A deadline ends the child too; a chosen signal; kill_after never. */
TEST(proc_deadline_and_signal)
{
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.signal = SIGINT;
    o.kill_after = CCTX_NO_DEADLINE;
    cctx_proc_t *p = spawn_sh(ctx, "exec sleep 1000", &o);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
    cctx_proc_free(p);
    cctx_release(ctx);
    check_no_children();
}

/* The whole group ends: the shell and its grandchildren, one of which
 * ignores SIGTERM and so needs the SIGKILL. Every member holds the pipe's
 * write end: end of file on it means all of them have gone. */
TEST(proc_group_dies)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int out[2];
    make_pipe(out);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_MSEC(200);
    o.stdout_fd = out[1];
    cctx_proc_t *p = spawn_sh(ctx,
                              "(trap '' TERM; echo A; exec sleep 1000) & sleep 1000 & "
                              "sleep 1000 & echo R; wait",
                              &o);
    close(out[1]);
    CHECK_EQ(getpgid(cctx_proc_pid(p)), cctx_proc_pid(p)); /* a group of its own */
    /* 'A': the grandchild ignores SIGTERM from now on; 'R': the shell is
     * about to wait. In either order, each followed by a newline. */
    int seen = 0;
    while (seen != 3) {
        int c = read_byte(out[0], 30000);
        CHECK(c == 'A' || c == 'R' || c == '\n');
        seen |= c == 'A' ? 1 : c == 'R' ? 2 : 0;
    }
    int64_t t0 = real_now();
    cctx_cancel(cancel);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    /* The SIGTERM-proof grandchild lives on until kill_after. */
    int c;
    while ((c = read_byte(out[0], 30000)) != -1)
        CHECK(c == '\n');
    int64_t t = real_now() - t0;
    CHECK(t >= CCTX_MSEC(200));
    CHECK(t < CCTX_SEC(10));
    cctx_proc_free(p);
    close(out[0]);
    cctx_release(ctx);
    check_no_children();
}

/* A close-on-exec 1 in the parent (a log opened O_CLOEXEC and put on 1;
 * or, after a close(1), any descriptor the program marked so) is not the
 * child's stdout when inherited (-1), as exec leaves it; given as 1 on
 * purpose, it is. */
static void close_on_exec_stdout(void)
{
    int out[2];
    make_pipe(out); /* both close-on-exec */
    int saved = dup(1);
    CHECK(saved >= 0);
    CHECK_EQ(dup3(out[1], 1, O_CLOEXEC), 1);
    cctx_proc_t *inherited = spawn_sh(cctx_background(), "echo inherited", NULL);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.stdout_fd = 1;
    cctx_proc_t *given = spawn_sh(cctx_background(), "echo given", &o);
    CHECK_EQ(dup2(saved, 1), 1);
    close(saved);
    close(out[1]);
    int st;
    CHECK_EQ(cctx_proc_wait(inherited, &st), 0);
    CHECK(!WIFEXITED(st) || WEXITSTATUS(st) != 0); /* echo found no stdout */
    CHECK_EQ(cctx_proc_wait(given, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cctx_proc_free(inherited);
    cctx_proc_free(given);
    char buf[64] = "";
    CHECK(read(out[0], buf, sizeof buf - 1) > 0);
    close(out[0]);
    CHECK_STR(buf, "given\n");
}

TEST(proc_close_on_exec_stdout_reaches_a_child_only_when_given)
{
    fflush(stdout);
    run_with_watchdog(close_on_exec_stdout, 30);
}

/* A child that left the group it led: the group's signal reached nobody,
 * so it never ended, and cctx_proc_wait and cctx_proc_free waited for ever.
 * It is signalled alone too. */
static void child_that_left_its_group(void)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int from;
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    cctx_proc_t *p = spawn_ready(ctx, "proc_leaves_its_group", &o, &from);
    CHECK(getpgid(cctx_proc_pid(p)) != cctx_proc_pid(p));
    cctx_cancel(cancel);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    cctx_proc_free(p);
    close(from);
    cctx_release(ctx);
}

TEST(proc_child_that_left_its_group_still_ends)
{
    run_with_watchdog(child_that_left_its_group, 30);
}

/* kill_after CCTX_NO_DEADLINE: SIGKILL never comes, not even from
 * cctx_proc_free, for a member of the group that outlived the child. */
TEST(proc_free_sends_no_kill_when_kill_after_is_never)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int in[2], out[2];
    make_pipe(in);
    make_pipe(out);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_NO_DEADLINE;
    o.stdin_fd = in[0];
    o.stdout_fd = out[1];
    /* A grandchild that ignores SIGTERM and answers a line once it reads
     * one (a background job reads no stdin but a copy); the shell only waits. */
    cctx_proc_t *p =
        spawn_sh(ctx, "exec 3<&0; (trap '' TERM; echo A; read x <&3; echo B) & wait", &o);
    close(in[0]);
    close(out[1]);
    CHECK_EQ(read_byte(out[0], 30000), 'A');
    CHECK_EQ(read_byte(out[0], 30000), '\n');
    cctx_cancel(cancel);
    /* The shell ends by the SIGTERM; left unreaped (no cctx_proc_wait),
     * its group is still the library's to signal when it is freed. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_EQ(waitid(P_PID, (id_t)cctx_proc_pid(p), &si, WEXITED | WNOWAIT), 0);
    CHECK(si.si_code == CLD_KILLED && si.si_status == SIGTERM);
    cctx_proc_free(p);
    /* A SIGKILL sent by the free would have ended it before it could
     * answer: the pipe would only show its end. */
    CHECK(write(in[1], "x\n", 2) == 2);
    CHECK_EQ(read_byte(out[0], 30000), 'B');
    close(in[1]);
    close(out[0]);
    cctx_release(ctx);
    check_no_children();
}

/* same_group: the child stays in our group and is signalled alone; its own
 * children are not. */
TEST(proc_same_group)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int out[2];
    make_pipe(out);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.same_group = true;
    o.stdout_fd = out[1];
    cctx_proc_t *p = spawn_sh(ctx, "sleep 1000 </dev/null >/dev/null & echo $!; wait", &o);
    close(out[1]);
    char buf[32];
    size_t n = 0;
    int c;
    while ((c = read_byte(out[0], 30000)) != '\n') {
        CHECK(c >= 0 && n < sizeof buf - 1);
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    pid_t grandchild = atoi(buf);
    CHECK(grandchild > 0);
    CHECK_EQ(getpgid(cctx_proc_pid(p)), getpgrp());
    cctx_cancel(cancel);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    cctx_proc_free(p);
    CHECK_EQ(kill(grandchild, 0), 0); /* not signalled: it is not the child */
    CHECK_EQ(kill(grandchild, SIGKILL), 0);
    close(out[0]);
    cctx_release(ctx);
}

/* A child that exits on its own, then the context ends. Until free the
 * exited child stays a zombie, so its PID and group ID cannot be reused and
 * the signal of the context's end reaches nothing else; free reaps it. */
TEST(proc_exit_then_end)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_proc_t *p = spawn_sh(ctx, "exit 0", NULL);
    pid_t pid = cctx_proc_pid(p);
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(proc_state(pid), 'Z'); /* held, not reaped */
    cctx_cancel(cancel);            /* signals the zombie's group: harmless */
    CHECK_EQ(proc_state(pid), 'Z');
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cctx_proc_free(p);
    check_no_children();
    cctx_release(ctx);

    /* same_group with a pidfd: the signal goes through the pidfd, so wait
     * reaps at once. */
    {
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.same_group = true;
        p = spawn_sh(cctx_background(), "exit 0", &o);
        pid = cctx_proc_pid(p);
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        /* CCTX_PORTABLE: the library uses no pidfd. */
        long self = CCTX_PORTABLE ? -1 : syscall(SYS_pidfd_open, getpid(), 0);
        if (self >= 0) { /* the kernel has pidfds */
            close((int)self);
            char s = proc_state(pid);
            CHECK(s == 0 || s != 'Z' /* reused already */);
        }
        cctx_proc_free(p);
    }
}

/* Exit and cancel race: each child either exits 0 or dies of SIGTERM, never
 * anything else, and none is left behind. */
TEST(proc_exit_races_end)
{
    int runs = TEST_UNDER_TSAN || TEST_UNDER_ASAN ? 100 : 300;
    int exited = 0, killed = 0;
    for (int i = 0; i < runs; i++) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        char *argv[] = {"true", NULL};
        cctx_proc_t *p = cctx_proc_spawn(ctx, "/bin/true", argv, NULL, NULL);
        CHECK(p != NULL);
        if (i % 2)
            sched_yield();
        cctx_cancel(cancel);
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            exited++;
        else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)
            killed++;
        else
            CHECK(!"unexpected status");
        cctx_proc_free(p);
        cctx_release(ctx);
    }
    printf("%d exited, %d killed\n", exited, killed);
    check_no_children();
}

/* free kills and reaps a child still running. */
TEST(proc_free_kills_live_child)
{
    int out[2];
    make_pipe(out);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.stdout_fd = out[1];
    cctx_proc_t *p = spawn_sh(cctx_background(), "sleep 1000 & echo R; wait", &o);
    close(out[1]);
    CHECK_EQ(read_byte(out[0], 30000), 'R');
    cctx_proc_free(p);
    CHECK_EQ(read_byte(out[0], 30000), '\n');
    CHECK_EQ(read_byte(out[0], 30000), -1); /* the grandchild too */
    close(out[0]);
    check_no_children();
}

/* 1,000 spawns: no descriptor and no zombie left. Half the contexts end
 * before the wait. */
TEST(proc_no_leak)
{
    int before = count_open_fds();
    char *argv[] = {"true", NULL};
    int64_t t0 = real_now();
    for (int i = 0; i < 1000; i++) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        o.same_group = i % 4 == 3;
        cctx_proc_t *p = cctx_proc_spawn(ctx, "/bin/true", argv, NULL, &o);
        CHECK(p != NULL);
        if (i % 2)
            cctx_cancel(cancel);
        if (i % 8 != 7) /* and some freed without a wait */
            CHECK_EQ(cctx_proc_wait(p, NULL), 0);
        cctx_proc_free(p);
        cctx_release(ctx);
    }
    printf("1000 spawns in %.1f ms\n", (real_now() - t0) / 1e6);
    CHECK_EQ(count_open_fds(), before);
    check_no_children();
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Figures: from cctx_cancel to the child's SIGTERM handler writing, and to
 * cctx_proc_wait's return (reaped). */
TEST(proc_end_latency)
{
    enum { RUNS = 100 };
    int runs = TEST_UNDER_TSAN || TEST_UNDER_ASAN ? 20 : RUNS;
    int64_t term[RUNS], reap[RUNS];
    for (int i = 0; i < runs; i++) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        int from;
        cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
        cctx_proc_t *p = spawn_ready(ctx, "proc_term_exit", &o, &from);
        int64_t t0 = real_now();
        cctx_cancel(cancel);
        CHECK_EQ(read_byte(from, 10000), 'T');
        term[i] = real_now() - t0;
        int st;
        CHECK_EQ(cctx_proc_wait(p, &st), 0);
        reap[i] = real_now() - t0;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        cctx_proc_free(p);
        close(from);
        cctx_release(ctx);
    }
    qsort(term, (size_t)runs, sizeof term[0], cmp64);
    qsort(reap, (size_t)runs, sizeof reap[0], cmp64);
    printf("%d runs: context end -> SIGTERM handled p50 %.1f us p90 %.1f us; "
           "-> reaped p50 %.1f us p90 %.1f us\n",
           runs, term[runs / 2] / 1e3, term[runs * 9 / 10] / 1e3, reap[runs / 2] / 1e3,
           reap[runs * 9 / 10] / 1e3);
    check_no_children();
}

/* The application breaks the rule and reaps the child itself: wait reports
 * ECHILD, the library names the PID no more, free is safe. */
TEST(proc_reaped_by_someone_else)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_proc_t *p = spawn_sh(ctx, "exit 4", NULL);
    int st;
    CHECK_EQ(waitpid(cctx_proc_pid(p), &st, 0), cctx_proc_pid(p));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 4);
    st = -1;
    CHECK_EQ(cctx_proc_wait(p, &st), ECHILD);
    CHECK_EQ(st, -1);
    cctx_cancel(cancel); /* signals nothing: the child is known to be gone */
    cctx_proc_free(p);
    cctx_release(ctx);
    check_no_children();
}

/* same_group with a pidfd: a child reaped behind the library's back (the
 * rule broken), its PID then taken by another process. The context's
 * signal goes through the pidfd, which fails with ESRCH, and must not fall
 * back to kill() by PID, which would now name the stranger. */
TEST(proc_pidfd_signal_never_reaches_a_process_that_took_the_pid)
{
    long self = CCTX_PORTABLE ? -1 : syscall(SYS_pidfd_open, getpid(), 0);
    if (self < 0)
        SKIP_IN_THIS_BUILD("no pidfd: the library signals by PID, as proc.h says");
    close((int)self);
    int probe = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
    if (probe < 0)
        SKIP_IN_THIS_BUILD("cannot choose the next PID (/proc/sys/kernel/ns_last_pid)");
    close(probe);

    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.same_group = true;
    o.kill_after = CCTX_NO_DEADLINE;
    cctx_proc_t *p = spawn_sh(ctx, "exit 0", &o);
    pid_t pid = cctx_proc_pid(p);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid); /* the rule broken: reaped here */

    pid_t stranger = -1;
    for (int tries = 0; tries < 50 && stranger != pid; tries++) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
        CHECK(fd >= 0);
        dprintf(fd, "%d", (int)pid - 1);
        close(fd);
        stranger = fork();
        CHECK(stranger >= 0);
        if (stranger == 0) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            _exit(7);
        }
        if (stranger != pid) {
            kill(stranger, SIGKILL);
            waitpid(stranger, NULL, 0);
        }
    }
    if (stranger != pid)
        SKIP_IN_THIS_BUILD("the PID was not handed out again in 50 tries");

    cctx_cancel(cancel); /* the SIGTERM goes through the pidfd, or nowhere */
    CHECK_EQ(waitpid(stranger, &st, 0), stranger);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    cctx_proc_free(p);
    cctx_release(ctx);
    check_no_children();
}
