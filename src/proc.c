/* SPDX-License-Identifier: MIT */
/*
 * <cctx/proc.h>: child processes tied to a context. Built on the public API
 * of <cctx.h> only.
 *
 * Pieces:
 *  - The spawn: posix_spawn (glibc and musl implement it with
 *    clone(CLONE_VM|CLONE_VFORK), so it costs no copy of the address space
 *    and runs no atfork handler), with POSIX_SPAWN_SETPGROUP for the new
 *    group, an empty signal mask and default dispositions, the three
 *    descriptors dup2'd onto 0, 1 and 2 and every other one closed.
 *  - A pidfd (pidfd_open, Linux 5.3) opened right after the spawn. Between
 *    the spawn and pidfd_open the child cannot be reaped by anyone but us
 *    (the rule of proc.h), so the pidfd names the right process. From then
 *    on it names that process and nothing else, even once someone else has
 *    reaped it and its number went to another process: the library waits
 *    and reaps through it (waitid P_PIDFD, Linux 5.4), signals the child
 *    through it and, for the group, signals the group the child leads
 *    through it (PIDFD_SIGNAL_PROCESS_GROUP, Linux 6.9). Each step falls
 *    back to the PID where the kernel lacks it, safe by the rule.
 *  - Two after-functions: on_end, on ctx, sends the first signal and arms
 *    the second; on_kill, on a context of the library's with a timeout of
 *    kill_after (so kill_after is measured on cctx_now(), and the fake clock
 *    drives it in tests), sends SIGKILL.
 *
 * The reaping rule. Every signal is sent, and the child is reaped, under
 * p->lock, and the flag `reaped` is checked before each signal. While the
 * child is unreaped (running, or a zombie) its PID and its group ID stay
 * allocated to it, so kill(pid) and kill(-pid) cannot reach another process.
 * cctx_proc_wait learns of the exit with waitid(WEXITED | WNOWAIT), which
 * leaves the child a zombie, and reaps only when no signal can be due any
 * more (see may_reap); cctx_proc_free always reaps. So after the context
 * ends, group members that outlive the leader still get the SIGKILL on time.
 *
 * Locks: p->lock is a leaf, never held across a cctx call that may run an
 * after-function (cctx_after_func on a done context runs it at once,
 * cctx_after_stop waits for a running one, and both of ours take p->lock).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/proc.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "after.h"
#include "atomics.h"
#include "cctx_config.h"
#include "io_internal.h" /* a fork child's restart, tried while it waits */
#include "proc_internal.h"

extern char **environ;

/* posix_spawn_file_actions_addclosefrom_np: glibc 2.34. */
#define HAVE_ADDCLOSEFROM CCTX_USE_ADDCLOSEFROM

#define DEFAULT_KILL_AFTER CCTX_SEC(5)

#if CCTX_USE_LINUX
/* waitid's idtype for a pidfd (Linux 5.4) and pidfd_send_signal's flag for
 * the process group the pidfd's process leads (Linux 6.9): the
 * kernel's numbers, spelled out because glibc names the first only in an
 * enum (no #ifdef can see it) and no libc header has the second yet. */
#define WAIT_P_PIDFD ((idtype_t)3)
#define PIDFD_SIGNAL_PGRP (1U << 2)
#endif

atomic_bool cctx__proc_no_pidfd;
atomic_bool cctx__proc_no_wait_pidfd;
atomic_bool cctx__proc_no_group_pidfd;
atomic_bool cctx__proc_no_pidfd_signal;
_Atomic(cctx__proc_hook_fn) cctx__proc_before_wait;

struct cctx_proc {
    pthread_mutex_t lock;
    pid_t pid;
    pid_t owner;        /* the process that spawned it: see ours() */
    int pidfd;          /* -1 where the kernel has no pidfd_open */
    bool wait_pidfd;    /* waitid takes the pidfd (P_PIDFD) */
    int sig;            /* the first signal */
    int64_t kill_after; /* resolved: never 0 */
    bool group;         /* signals go to the group -pid */
    cctx_t *ctx;        /* our reference, released by free */
    cctx_after_t end_reg;
    /* Armed by on_end; touched by free only after on_end has finished, or
     * in a fork child only once arming was over at the fork (kill_state). */
    cctx_t *kill_ctx;
    cctx_after_t kill_reg;
    _Atomic int kill_state; /* KILL_NONE, KILL_ARMING, KILL_ARMED */
    /* Under lock. */
    bool term_sent, kill_sent, exited, reaped;
    bool lost; /* reaped by someone else: no status (ECHILD) */
    int waiting; /* threads of cctx_proc_wait in (or about to enter) waitid */
    int status;
};

/* ---- signalling --------------------------------------------------------- */

static int pidfd_open_(pid_t pid)
{
#if CCTX_USE_LINUX && defined(SYS_pidfd_open)
    /* A pidfd is always close-on-exec. ENOSYS (kernel before 5.3) and
     * EPERM (some seccomp sandboxes) leave the portable path. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -1 : (int)fd;
#else
    (void)pid;
    return -1;
#endif
}

/* Whether this process is the one that spawned the child. A child of
 * fork() inherits the handle, and its copy of ctx ends too (an inherited
 * deadline fires there as well), but the child process is its parent's to
 * wait for, reap and signal: the parent may have reaped it, and the number
 * gone to a stranger, whatever the copy says. getpid() is not cached by
 * glibc or musl, so a fork without atfork handlers is seen too. Each entry
 * point asks before it takes p->lock: a thread the fork child lacks may
 * have held it at the fork, and there it stays held for ever. */
static bool ours(const struct cctx_proc *p)
{
    return getpid() == p->owner;
}

#if CCTX_USE_LINUX && defined(SYS_pidfd_send_signal)
/* pidfd_send_signal, or the error of what a test makes this kernel look
 * like: a sandbox that lets pidfd_open through but not this call (ENOSYS),
 * or a kernel before 6.9 (EINVAL for the group's flag). */
static long pidfd_signal(const struct cctx_proc *p, int sig, unsigned flags)
{
    if (cctx__atomic_load_relaxed(&cctx__proc_no_pidfd_signal)) {
        errno = ENOSYS;
        return -1;
    }
    if (flags && cctx__atomic_load_relaxed(&cctx__proc_no_group_pidfd)) {
        errno = EINVAL;
        return -1;
    }
    return syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, flags);
}
#endif

/* Sends sig to the child, or to the group it leads (group). Called with
 * p->lock held and the child unreaped, which is what makes the PID (and the
 * group ID, equal to it) safe to name. */
static void send_to(struct cctx_proc *p, int sig, bool group)
{
#if CCTX_USE_LINUX && defined(SYS_pidfd_send_signal)
    if (p->pidfd >= 0 && group) {
        /* The group the child leads, named by the pidfd: exact even if
         * someone else reaped the child and its number now names another
         * group. ESRCH: nobody is left in it. EINVAL: a kernel before 6.9;
         * ENOSYS: no pidfd_send_signal at all (a sandbox's filter). */
        if (pidfd_signal(p, sig, PIDFD_SIGNAL_PGRP) == 0 || (errno != EINVAL && errno != ENOSYS))
            return;
        /* kill(-pid) is safe while the leader is unreaped (a zombie
         * included), which signal 0 through the pidfd tells: ESRCH once it
         * has been reaped behind our back, when -pid may name a stranger's
         * group. Only ESRCH: EPERM (a leader running as a user we may not
         * signal) is an unreaped one, and kill(-pid) reaches the members we
         * may signal; ENOSYS: no pidfd_send_signal, the rule alone. */
        if (pidfd_signal(p, 0, 0) != 0 && errno == ESRCH)
            return;
    } else if (p->pidfd >= 0) {
        /* Only a kernel without the call falls back to the PID: ESRCH
         * means the child was reaped behind our back, and its PID may name
         * a stranger now. */
        if (pidfd_signal(p, sig, 0) == 0 || errno != ENOSYS)
            return;
    }
#endif
    /* By the rule of proc.h the unreaped child holds its PID and group ID:
     * neither can name another process. */
    (void)kill(group ? -p->pid : p->pid, sig);
}

/* Sends sig to the child, and to its group unless same_group. A child may
 * leave the group it leads (setpgid into another group of its session):
 * the group's signal then reaches only those left in it, and the child
 * itself, never ended, held cctx_proc_free's reaping for ever. So a child
 * no longer in its own group is sent the signal alone too. (One that left
 * after the group's signal was sent had it already, and may get it twice.)
 * Called with p->lock held. */
static void send_locked(struct cctx_proc *p, int sig)
{
    if (p->reaped)
        return;
    send_to(p, sig, p->group);
    pid_t pgid;
    if (p->group && (pgid = getpgid(p->pid)) >= 0 && pgid != p->pid)
        send_to(p, sig, false);
}

/* waitid on the child, restarted after EINTR: through the pidfd where the
 * kernel takes one, which gives ECHILD once someone else has reaped the
 * child, where P_PID would wait for (and with WNOWAIT unset, reap) another
 * child of ours that took the number since. */
static int wait_child(const struct cctx_proc *p, siginfo_t *si, int options)
{
    int r;
    do {
        memset(si, 0, sizeof *si);
#if CCTX_USE_LINUX
        if (p->wait_pidfd)
            r = waitid(WAIT_P_PIDFD, (id_t)p->pidfd, si, options);
        else
#endif
            r = waitid(P_PID, (id_t)p->pid, si, options);
    } while (r < 0 && errno == EINTR);
    return r;
}

static int status_of(const siginfo_t *si);

/* No signal can be due any more: reaping is then safe for whoever still
 * signals by PID. */
static bool may_reap(const struct cctx_proc *p)
{
    if (!p->group && p->pidfd >= 0)
        return true; /* signals go through the pidfd: ESRCH after reaping */
    return p->term_sent && (p->kill_sent || p->kill_after == CCTX_NO_DEADLINE);
}

/* Reaps the child (blocking until it exits, which it has or will shortly
 * after a SIGKILL). With p->lock held. */
static void reap_locked(struct cctx_proc *p)
{
    if (p->reaped)
        return;
    siginfo_t si;
    int r = wait_child(p, &si, WEXITED);
    if (r == 0 && !p->exited) {
        p->status = status_of(&si);
        p->exited = true;
    }
    /* r < 0 (ECHILD) means someone broke the rule and reaped it: nothing
     * left to do but stop naming the PID. */
    p->reaped = true;
}

static void on_kill(void *arg)
{
    struct cctx_proc *p = arg;
    if (!ours(p))
        return;
    pthread_mutex_lock(&p->lock);
    if (!p->kill_sent) {
        send_locked(p, SIGKILL);
        p->kill_sent = true;
    }
    pthread_mutex_unlock(&p->lock);
}

/* The SIGKILL's deadline. Stored seq_cst around the arming, so that a fork
 * child's copy shows ARMING for as long as any of the arming's stores (or a
 * lock it takes) may be in it: see free_inherited. */
enum { KILL_NONE, KILL_ARMING, KILL_ARMED };

static void on_end(void *arg)
{
    struct cctx_proc *p = arg;
    /* A fork child's copy sends nothing (see ours): no SIGKILL to arm
     * either, nor the timer thread that would take. */
    if (!ours(p))
        return;
    pthread_mutex_lock(&p->lock);
    send_locked(p, p->sig);
    p->term_sent = true;
    bool arm = p->kill_after != CCTX_NO_DEADLINE && !p->reaped;
    pthread_mutex_unlock(&p->lock);
    if (!arm)
        return;
    /* The second signal rides on a deadline of the library's, so it costs no
     * thread of ours and follows the fake clock. A negative kill_after gives
     * a context born done: on_kill runs at once, inside cctx_after_func. */
    cctx__atomic_store_seq_cst(&p->kill_state, KILL_ARMING);
    cctx_t *k = cctx_with_timeout_cause(cctx_background(), p->kill_after, 0,
                                        "cctx_proc: kill_after", NULL);
    if (!k) {
        cctx__atomic_store_seq_cst(&p->kill_state, KILL_NONE);
        on_kill(p); /* out of memory: escalate now rather than never */
        return;
    }
    (void)cctx_set_name(k, "cctx_proc kill_after");
    p->kill_ctx = k;
    cctx__after_func_first(k, &p->kill_reg, on_kill, p, __FILE__, __LINE__, __func__);
    cctx__atomic_store_seq_cst(&p->kill_state, KILL_ARMED);
}

/* ---- spawning ------------------------------------------------------------- */

/* Adds to fa a close of every descriptor from 3 up that is open without
 * close-on-exec, where posix_spawn has no closefrom. */
static int close_others(posix_spawn_file_actions_t *fa)
{
#if HAVE_ADDCLOSEFROM
    return posix_spawn_file_actions_addclosefrom_np(fa, 3);
#else
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0; /* no /proc: close-on-exec descriptors only */
    int self = dirfd(d), rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        if (fd < 3 || fd == self)
            continue;
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            rc = posix_spawn_file_actions_addclose(fa, fd);
    }
    closedir(d);
    return rc;
#endif
}

static cctx_proc_t *spawn_failed(int err)
{
    errno = err;
    return NULL;
}

static cctx_proc_t *spawn(cctx_t *ctx, const char *path, char *const argv[], char *const envp[],
                          const cctx_proc_opts_t *opts)
{
    static const cctx_proc_opts_t defaults = CCTX_PROC_OPTS_INIT;
    if (!opts)
        opts = &defaults;
    if (!ctx || !path || !argv)
        return spawn_failed(EINVAL);
    if (opts->signal < 0 || opts->signal >= NSIG)
        return spawn_failed(EINVAL);
    int given[3] = {opts->stdin_fd, opts->stdout_fd, opts->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (given[i] < -1)
            return spawn_failed(EINVAL);
        if (given[i] >= 0 && fcntl(given[i], F_GETFD) < 0)
            return spawn_failed(EBADF);
    }
    int err = cctx_err(ctx);
    if (err)
        return spawn_failed(err);

    struct cctx_proc *p = calloc(1, sizeof *p);
    if (!p)
        return spawn_failed(ENOMEM);
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->kill_state, KILL_NONE);
    p->owner = getpid();
    p->pidfd = -1;
    p->sig = opts->signal ? opts->signal : SIGTERM;
    p->kill_after = opts->kill_after ? opts->kill_after : DEFAULT_KILL_AFTER;
    p->group = !opts->same_group;

    /* A given descriptor that is itself 0, 1 or 2 but goes elsewhere (say
     * stdin_fd = 1, stdout_fd = 0) would be overwritten by an earlier dup2
     * in the child: such sources are first copied above 2, close-on-exec. */
    int src[3], tmp[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++) {
        src[i] = given[i];
        if (given[i] >= 0 && given[i] <= 2 && given[i] != i) {
            tmp[i] = fcntl(given[i], F_DUPFD_CLOEXEC, 3);
            if (tmp[i] < 0) {
                err = errno;
                goto out_tmp;
            }
            src[i] = tmp[i];
        }
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    if ((err = posix_spawn_file_actions_init(&fa)) != 0)
        goto out_tmp;
    if ((err = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        goto out_tmp;
    }
    /* dup2 onto the same number clears close-on-exec (POSIX 2024, glibc
     * 2.29, musl), so a given 1 as stdout_fd stays open in the child. */
    for (int i = 0; i < 3 && !err; i++)
        if (src[i] >= 0)
            err = posix_spawn_file_actions_adddup2(&fa, src[i], i);
    if (!err)
        err = close_others(&fa);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (p->group)
        flags |= POSIX_SPAWN_SETPGROUP;
    if (!err)
        err = posix_spawnattr_setflags(&at, flags);
    if (!err)
        err = posix_spawnattr_setsigmask(&at, &none);
    if (!err)
        err = posix_spawnattr_setsigdefault(&at, &all);
    if (!err && p->group)
        err = posix_spawnattr_setpgroup(&at, 0);
    if (!err)
        err = posix_spawn(&p->pid, path, &fa, &at, argv, envp ? envp : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (err)
        goto out_tmp;
    for (int i = 0; i < 3; i++)
        if (tmp[i] >= 0)
            close(tmp[i]), tmp[i] = -1;

    if (!cctx__atomic_load_relaxed(&cctx__proc_no_pidfd))
        p->pidfd = pidfd_open_(p->pid);
#if CCTX_USE_LINUX
    if (p->pidfd >= 0) {
        /* Linux 5.3 has pidfd_open but no P_PIDFD (EINVAL): waits go by
         * PID there, signals still through the pidfd. */
        siginfo_t si;
        p->wait_pidfd = !cctx__atomic_load_relaxed(&cctx__proc_no_wait_pidfd);
        if (p->wait_pidfd)
            p->wait_pidfd = wait_child(p, &si, WEXITED | WNOHANG | WNOWAIT) == 0 || errno != EINVAL;
    }
#endif
    p->ctx = cctx_ref(ctx);
    /* If ctx ended since the check above, on_end runs now: the child is
     * signalled at once, as it would have been a moment later. */
    if (cctx__after_func_first(ctx, &p->end_reg, on_end, p, __FILE__, __LINE__, __func__) != 0) {
        /* Only EINVAL, which a live reference rules out; be safe anyway. */
        pthread_mutex_lock(&p->lock);
        send_locked(p, SIGKILL);
        reap_locked(p);
        pthread_mutex_unlock(&p->lock);
        if (p->pidfd >= 0)
            close(p->pidfd);
        cctx_release(p->ctx);
        err = EINVAL;
        goto out_tmp; /* every tmp is -1 by now */
    }
    return p;

out_tmp:
    for (int i = 0; i < 3; i++)
        if (tmp[i] >= 0)
            close(tmp[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return spawn_failed(err);
}

/* ---- waiting, freeing ------------------------------------------------------ */

/* The wait status that waitpid would give, from waitid's siginfo. */
static int status_of(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED:
        return (si->si_status & 0xff) << 8;
    case CLD_DUMPED:
        return (si->si_status & 0x7f) | 0x80;
    default: /* CLD_KILLED */
        return si->si_status & 0x7f;
    }
}

/* A waiter cancelled (pthread_cancel) in its waitid is no longer counted:
 * counted for good, it kept every later wait from reaping. It reaps
 * nothing: the child may still run, and the reaping would wait for it. */
static void stop_waiting(void *arg)
{
    struct cctx_proc *p = arg;
    pthread_mutex_lock(&p->lock);
    p->waiting--;
    pthread_mutex_unlock(&p->lock);
}

/* waitid for the exit, but in a child of fork() whose library threads could
 * not all start: the deadline of the spawn's ctx cannot fire then, nor its
 * SIGTERM and SIGKILL come, so the wait would last as long as the process
 * does. It looks (WNOHANG) every slice instead and tries the threads again
 * (io_internal.h) until they start; then it waits as outside a child. */
static int wait_exit(const struct cctx_proc *p, siginfo_t *si)
{
    while (cctx__io_child_restart()) {
        int r = wait_child(p, si, WEXITED | WNOWAIT | WNOHANG);
        if (r != 0 || si->si_pid != 0)
            return r; /* si zeroed by wait_child: a PID only once it exited */
        int64_t ns = cctx__io_child_retry_ns();
        struct timespec nap = {.tv_sec = ns / CCTX_SEC(1), .tv_nsec = ns % CCTX_SEC(1)};
        if (ns > 0)
            nanosleep(&nap, NULL); /* a cancellation point, as waitid */
    }
    return wait_child(p, si, WEXITED | WNOWAIT);
}

/* The wait of cctx_proc_wait under that handler; its result through *r
 * (no local of this frame lives across the handler's setjmp). */
static void wait_counted(struct cctx_proc *p, siginfo_t *si, int *r)
{
    pthread_cleanup_push(stop_waiting, p);
    *r = wait_exit(p, si);
    pthread_cleanup_pop(0);
}

CCTX_API int cctx_proc_wait(cctx_proc_t *p, int *status)
{
    if (!p)
        return EINVAL;
    /* Not a child of this process (see ours): what waitid would say,
     * without naming a PID that may be one of ours now. */
    if (!ours(p))
        return ECHILD;
    pthread_mutex_lock(&p->lock);
    bool known = p->exited;
    if (!known)
        p->waiting++;
    pthread_mutex_unlock(&p->lock);
    if (!known) {
        /* WNOWAIT: learn of the exit but leave the child a zombie, so that
         * its PID stays ours until the reaping below, under the lock. This
         * call needs no lock: it neither reaps nor signals. And nobody
         * reaps while we are counted in `waiting`: without a pidfd this
         * waitid names the PID, which a reaping by another waiter would
         * hand to the next process (perhaps a child of ours, for which we
         * would then wait). */
        cctx__proc_hook_fn hook = cctx__atomic_load_relaxed(&cctx__proc_before_wait);
        if (hook)
            hook(p);
        siginfo_t si;
        int r;
        wait_counted(p, &si, &r);
        pthread_mutex_lock(&p->lock);
        p->waiting--;
        if (!p->exited) {
            if (r == 0) {
                p->status = status_of(&si);
                p->exited = true;
            } else {
                /* ECHILD: reaped behind our back (the rule of proc.h was
                 * broken); never name the PID again. */
                p->reaped = true;
                p->exited = true;
                p->lost = true;
            }
        }
        pthread_mutex_unlock(&p->lock);
    }
    /* The reaping's waitid is a cancellation point, made holding p->lock
     * once the exit is known (by this call's wait, or an earlier one): a
     * cancel acted on there left the lock held for good, and the child a
     * zombie. The exited child is reaped without waiting, so this runs with
     * cancellation off: only the wait for the exit is a cancellation point. */
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    pthread_mutex_lock(&p->lock);
    /* The last waiter out reaps (or free, which no wait may overlap). */
    if (p->waiting == 0 && may_reap(p))
        reap_locked(p);
    int rc = p->lost ? ECHILD : 0;
    if (status && !rc)
        *status = p->status;
    pthread_mutex_unlock(&p->lock);
    pthread_setcancelstate(state, NULL);
    return rc;
}

/* For the tests (proc_internal.h). */
void cctx__test_proc_hold_lock(struct cctx_proc *p, bool hold)
{
    if (hold)
        pthread_mutex_lock(&p->lock);
    else
        pthread_mutex_unlock(&p->lock);
}

CCTX_API pid_t cctx_proc_pid(const cctx_proc_t *p)
{
    return p ? p->pid : -1;
}

/* A fork child's copy of a handle (see ours): nothing to signal or reap,
 * and p->lock may be held for ever, so it is neither taken nor destroyed.
 * Nor is the pidfd closed: the number was the parent's, and the child may
 * have closed it and opened something of its own under it since (as
 * fork.c leaves an inherited done descriptor open); it is close-on-exec.
 *
 * The library's threads of the parent may have been at work on the handle
 * at the fork, and are not in the child to finish: firing the context's
 * end or the SIGKILL's deadline (a registration being queued, its
 * context's lock held), or arming the SIGKILL (kill_reg half registered).
 * A stop of such a registration would wait for ever, and the deadline may
 * yet run on_kill(p) here. So what may still be reached is left allocated
 * (p, the kill context; the user's context too while end_reg is caught),
 * as the library leaves the jobs of threads the fork left behind. */
static void free_inherited(struct cctx_proc *p)
{
    if (!cctx__after_stoppable_in_child(&p->end_reg))
        return;
    cctx_after_stop(&p->end_reg); /* a run on a thread the fork left is not waited for */
    int kill = cctx__atomic_load_seq_cst(&p->kill_state);
    bool kill_left = kill == KILL_ARMING ||
                     (kill == KILL_ARMED && !cctx__after_stoppable_in_child(&p->kill_reg));
    if (kill == KILL_ARMED && !kill_left) {
        cctx_after_stop(&p->kill_reg);
        cctx_release(p->kill_ctx);
    }
    cctx_release(p->ctx); /* on_kill does not read it */
    if (!kill_left)
        free(p);
}

static void proc_free(cctx_proc_t *p)
{
    if (!ours(p)) {
        free_inherited(p);
        return;
    }
    /* Order matters: once end_reg is stopped (or has finished running),
     * nobody arms kill_reg any more, so kill_state can be read. */
    cctx_after_stop(&p->end_reg);
    if (cctx__atomic_load_acquire(&p->kill_state) == KILL_ARMED) {
        cctx_after_stop(&p->kill_reg);
        cctx_release(p->kill_ctx);
    }
    pthread_mutex_lock(&p->lock);
    if (!p->reaped) {
        siginfo_t si;
        int r = wait_child(p, &si, WEXITED | WNOHANG | WNOWAIT);
        bool running = r == 0 && si.si_pid == 0;
        bool pending =
            p->group && p->term_sent && !p->kill_sent && p->kill_after != CCTX_NO_DEADLINE;
        if (r < 0) {
            /* ECHILD: reaped behind our back; nothing of it is ours to
             * signal or reap any more. */
            p->reaped = true;
        } else {
            if (running || pending) {
                send_locked(p, SIGKILL);
                p->kill_sent = true;
            }
            reap_locked(p);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (p->pidfd >= 0)
        close(p->pidfd);
    cctx_release(p->ctx);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The spawn's probe of the pidfd and the free's reaping (waitid), and their
 * closes, are cancellation points, which neither call is: a thread with a
 * pthread_cancel pending died in the spawn with the child started and no
 * handle to signal or reap it by, or in the free holding p->lock, the
 * child a zombie and the handle, its pidfd and its reference on ctx never
 * given back. Nothing there waits for long (the free's reaping follows a
 * SIGKILL), so both run with cancellation off, and a pending cancel acts at
 * the thread's next cancellation point. cctx_proc_wait is one, as waitid. */
CCTX_API cctx_proc_t *cctx_proc_spawn(cctx_t *ctx, const char *path, char *const argv[],
                                      char *const envp[], const cctx_proc_opts_t *opts)
{
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    cctx_proc_t *p = spawn(ctx, path, argv, envp, opts);
    pthread_setcancelstate(state, NULL);
    return p;
}

CCTX_API void cctx_proc_free(cctx_proc_t *p)
{
    if (!p)
        return;
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    proc_free(p);
    pthread_setcancelstate(state, NULL);
}
