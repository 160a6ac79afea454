/* SPDX-License-Identifier: MIT */
/*
 * Signal contexts: Go's signal.NotifyContext (see <cctx/signal.h>). Built on
 * the public API of <cctx.h>, and on the library's runner threads
 * (runner.c), which run each delivery.
 *
 * Pieces:
 *  - Two contexts per call: an inner one, a cctx_with_cancel child of the
 *    parent that the library owns (a reference held by the watcher) and
 *    that a signal cancels; and the caller's, a cctx_with_cancel child of
 *    the inner one, which reports the inner one's cause when a signal ends
 *    it. Both carry the caller's site; the inner one is named after the
 *    signals ("signal.NotifyContext [interrupt terminated]") in dumps.
 *  - A registry, one list of watchers per signal number, under one mutex
 *    (dispatcher.lock). A watcher is one cctx_with_signals call: a malloc'ed struct
 *    with one link per distinct signal, and the storage of the
 *    after-function (unwatch) that unregisters it when the caller's
 *    context ends, however it ends.
 *  - The handler: sets pending[signo] and writes a byte to a pipe, keeping
 *    errno and with thread cancellation off. Nothing else is
 *    async-signal-safe enough. The "pipe" is a connected pair of sockets,
 *    written with MSG_NOSIGNAL: a pipe's write with no reader left raises
 *    SIGPIPE in whatever thread the handler interrupted, and a program
 *    that closed the read end (the case renew_pipe repairs) would die of
 *    it before the thread could notice.
 *  - The signal thread: started on first use with every signal blocked,
 *    it reads the pipe and hands each pending signal's delivery (deliver())
 *    to a runner. A delivery cancels contexts, which runs their
 *    after-functions, and its releases may run value destructors: user code
 *    that may block. On the signal thread one that blocks would hold up every
 *    later signal, of every watcher; on a runner it holds up only the rest
 *    of its own delivery. Only when no runner can be started, or every
 *    runner is busy (perhaps blocked in an after-function for ever) and
 *    no more can start, does the signal thread deliver itself: in the
 *    second case as a runner without a place, so the after-functions it
 *    queues still go to runners (hand_to_runner).
 *
 * fork(). The child gets the registry, the flags and the handlers, but not
 * the thread, and must not get the parent's pipe (the parent's thread would
 * read the child's bytes). The atfork handler starts nothing: a child that
 * execs next (the common case) should not pay for a thread, and POSIX allows
 * only async-signal-safe calls in the child of a multithreaded process. It
 * closes the inherited pipe and marks the thread as not started, nothing
 * more; every signal is blocked across the fork, so none that is the
 * child's can set a flag that this handler then clears. The handler never
 * depends on the thread: it sets the flag first and writes a byte only if a
 * pipe exists, so a signal that arrives before the child's thread starts
 * stays flagged. The child's first cctx_with_signals makes the pipe, then
 * starts the thread, which looks at the flags first (delivering what arrived
 * meanwhile to the inherited watches). A watcher linked after a signal
 * arrived is not canceled by it: see arrived.
 * A delivery still queued for a runner as the process forks is the
 * parent's signal: the child's copy of the job does nothing.
 *
 * Why the inner context. A delivery must cancel outside dispatcher.lock (the
 * cancellation runs after-functions, unwatch among them, which take it),
 * so it must hold the context it cancels by a reference of its own: a
 * cancel handle is valid only while its context is, and the caller's last
 * cctx_release may free a done context while a cancellation of it is
 * still under way on another thread. On the caller's context no reference
 * can be taken safely from the registry: its count may already be zero,
 * with unwatch about to run from the releaser, and cctx_ref would bring
 * it back to life. The inner context's count cannot be zero while its
 * watcher is linked (the watcher's reference is dropped by unwatch, after
 * unlinking), so deliver() takes one under the lock, unlinks the watcher,
 * and cancels and releases it outside. A watcher itself is touched only
 * under the lock while linked, and freed by unwatch alone, exactly once
 * (after-functions run exactly once, and nobody stops this one).
 *
 * Unlinking when a delivery takes a watcher, rather than in unwatch after
 * the cancel, means that when a signal's context reports done, the signal
 * is no longer caught (if that was its last watcher): the previous
 * disposition is back before anyone waiting on the context wakes.
 *
 * Locks: dispatcher.lock is a leaf. It is never held across a cctx call that can
 * take a context lock or run user code (cctx_ref and cctx_err are atomic
 * operations), nor across cctx_after_func, which runs unwatch at once on a
 * done context.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include "atomics.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cctx_config.h"
#include "internal.h"
#include "signal_internal.h"
#if CCTX_USE_PRCTL
#include <sys/prctl.h>
#endif

/* The handler may only touch lock-free atomics. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int must be lock-free");

/* Contexts cancelled per pass of deliver(), outside the lock. */
#define BATCH 16

struct watcher;

/* A watcher's place in one signal's list (circular, with a sentinel head;
 * prev == NULL: in no list). */
struct sub {
    struct sub *prev, *next;
    struct watcher *w;
    int signo;
};

struct watcher {
    cctx_after_t after;  /* unwatch's registration on the caller's context */
    cctx_t *inner;       /* one reference, dropped by unwatch */
    cctx_cancel_t *inner_cancel;
    const char *file, *func; /* the cctx_with_signals call: the cause's origin */
    int line;
    unsigned long long serial; /* from watch_serial when linked (see arrived) */
    int n;
    struct sub subs[];   /* one per distinct signal */
};

static struct {
    pthread_mutex_t lock;
    struct sub heads[NSIG]; /* per signal, oldest first; non-empty <=> our
                               handler is installed (set up by init()) */
    bool started;           /* the thread exists in this process */
    int wake_r;             /* the pipe's read end, the thread's; -1: no pipe */
    struct stat read_st;    /* the identity of each end (a socket each: */
    struct stat write_st;   /* the two ends have inodes of their own) */
    sigset_t fork_mask;     /* the forking thread's mask, kept over a fork */
} dispatcher = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_r = -1};

_Atomic(cctx__signal_create_fn) cctx__signal_thread_create = pthread_create;

/* Read by the handler: saved[sig] is written only before our handler is
 * installed for sig, wake_w only while no handler of ours can run with
 * the old value mattering (see after_fork_child). */
static struct sigaction saved[NSIG];
static atomic_int pending[NSIG];
static atomic_int wake_w = -1;

/* Which watchers a signal reaches: those that watched it when it arrived.
 * Each watcher takes the next serial as it is linked, and the handler
 * raises arrived[sig] to the serial reached before it sets the flag; a
 * delivery cancels the watchers numbered up to that (64 bits: no wrap on
 * any target). Two arrivals before one delivery: the higher serial, as both
 * reach the watchers the first one did. A context created
 * after the signal arrived, while the delivery was still to come (the
 * thread busy with an earlier one, or not yet run), is not canceled by it;
 * nor one created by an after-function of the delivery itself, so a program
 * that re-arms on a signal does not loop. */
static atomic_ullong watch_serial;
static atomic_ullong arrived[NSIG];
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "atomic_ullong must be lock-free");

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ---- The handler ------------------------------------------------------------------ */

static bool is_fault(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL;
}

/* A fault the kernel raised for an instruction (kill and raise give
 * si_code <= 0): returning would fault again, for ever. A handler the
 * program had before the watch gets it, as if the watch were not there (it
 * may repair the fault and return, as a guard page's or a garbage
 * collector's does), and the watch goes on. Anything else (the default,
 * SIG_IGN, which the kernel does not honour for a fault, or a handler that
 * asked to be reset) gets the disposition back, and the instruction faults
 * again under it: by default the process dies. sigaction and
 * pthread_sigmask are async-signal-safe. */
static void forward_fault(int sig, siginfo_t *info, void *uc)
{
    const struct sigaction *before = &saved[sig];
    /* sa_handler and sa_sigaction share their storage: SIG_DFL and SIG_IGN
     * read the same through either, SA_SIGINFO or not. */
    bool is_function = before->sa_handler != SIG_DFL && before->sa_handler != SIG_IGN;
    if (!is_function || (before->sa_flags & SA_RESETHAND)) {
        sigaction(sig, before, NULL);
        return;
    }
    /* Its mask, as the kernel would have applied it; sig itself stays
     * blocked (as during ours) unless it asked for SA_NODEFER. */
    sigset_t mask = before->sa_mask, was, self;
    pthread_sigmask(SIG_BLOCK, &mask, &was);
    sigemptyset(&self);
    sigaddset(&self, sig);
    if (before->sa_flags & SA_NODEFER)
        pthread_sigmask(SIG_UNBLOCK, &self, NULL);
    if (before->sa_flags & SA_SIGINFO)
        before->sa_sigaction(sig, info, uc);
    else
        before->sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
}

static void on_signal(int sig, siginfo_t *info, void *uc)
{
    int saved_errno = errno;
    if (info && info->si_code > 0 && is_fault(sig)) {
        forward_fault(sig, info, uc);
    } else {
        /* The flag first: the thread exchanges flags after each read, so
         * it sees this one on the read that takes our byte at the latest. A
         * full pipe already holds a byte the thread has yet to read. */
        /* The highest serial any arrival saw: two threads that take this
         * signal at once must not put it back to the older one. */
        unsigned long long now = cctx__atomic_load_seq_cst(&watch_serial);
        unsigned long long seen = cctx__atomic_load_relaxed(&arrived[sig]);
        while (seen < now && !cctx__atomic_cas_weak_relaxed(&arrived[sig], &seen, now))
            ;
        /* seq_cst, as the thread's exchanges of wake_w (renew_pipe) and of
         * the flags: a handler that reads the old write end, which the
         * renewal then closes, has its flag seen by the thread's next look
         * at the flags. With release and acquire both sides could miss the
         * other's write (store buffering), and the signal wait for the
         * next one. */
        cctx__atomic_store_seq_cst(&pending[sig], 1);
        int fd = cctx__atomic_load_seq_cst(&wake_w);
        if (fd >= 0) {
            /* send is a cancellation point: on a thread with a
             * pthread_cancel pending it unwound from here, through the
             * interrupted code (in malloc, holding a lock), the byte unsent.
             * The state is a word of the thread's own (glibc: an atomic
             * operation; musl: a plain store), as safe here as the send. A
             * pending cancel acts at the interrupted code's next
             * cancellation point (on glibc, under asynchronous
             * cancellation, at the restore, as its own signal would have).
             * MSG_NOSIGNAL: no SIGPIPE once the program closed the read
             * end; a number it reused for anything but a socket gets
             * nothing (ENOTSOCK). */
            int state;
            pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
            ssize_t r = send(fd, "", 1, MSG_NOSIGNAL);
            (void)r;
            pthread_setcancelstate(state, NULL);
        }
    }
    errno = saved_errno;
}

static bool is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_signal;
}

/* Called with dispatcher.lock held, for a signal nobody watches. */
static int install(int sig)
{
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_signal;
    act.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&act.sa_mask);
    /* A flag left by a signal that arrived before the last restore would
     * cancel the new watchers with a signal older than they are. */
    cctx__atomic_store_relaxed(&pending[sig], 0);
    /* Save first, then install: the handler may read saved[sig] as soon as
     * it is installed. Our own handler, left in place (see hand_back), is
     * never the disposition to go back to: the one saved before it is. */
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0)
        return errno ? errno : EINVAL;
    if (!is_ours(&cur))
        saved[sig] = cur;
    if (sigaction(sig, &act, NULL) != 0)
        return errno ? errno : EINVAL;
    return 0;
}

/* Called with dispatcher.lock held, when the last watcher of sig went.
 * True when it took our handler out. */
static bool restore(int sig)
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0)
        return false;
    /* The program replaced our handler meanwhile: its choice stands. */
    if (!is_ours(&cur))
        return false;
    return sigaction(sig, &saved[sig], NULL) == 0;
}

/* A signal with nobody watching it at its delivery (dispatcher.lock
 * held). Either it arrived while a watch was live and that watch ended
 * before the delivery, whose end put the old disposition back: the signal
 * was the watch's, and is dropped, as a signal that arrives during a
 * watch is. Or our handler was put back after the last watch's end by code
 * that had swapped in its own around it (as system() does with SIGINT and
 * SIGQUIT: it saves what is there, ignores, and puts that back), and caught
 * a signal meant for nobody: the disposition from before the watches is
 * put back, and the signal raised again for it, as it would have found it
 * without them (the process stops ignoring Ctrl-C, or ends on it by
 * default). Only the second finds our handler still in place. */
static void hand_back(int sig)
{
    if (restore(sig))
        kill(getpid(), sig);
}

/* ---- The registry (dispatcher.lock held) -------------------------------------------------- */

static bool watched(int sig)
{
    return dispatcher.heads[sig].next != &dispatcher.heads[sig];
}

/* At the tail: a delivery cancels the oldest first, so an ancestor before
 * the descendants it takes with it. */
static void link_sub(struct sub *s)
{
    struct sub *head = &dispatcher.heads[s->signo];
    s->next = head;
    s->prev = head->prev;
    head->prev->next = s;
    head->prev = s;
}

static void unlink_sub(struct sub *s)
{
    if (!s->prev)
        return;
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (!watched(s->signo))
        restore(s->signo);
}

static void unlink_watcher(struct watcher *w)
{
    for (int i = 0; i < w->n; i++)
        unlink_sub(&w->subs[i]);
}

/* Links w under each of its signals, installing the handler for those that
 * nobody watched; all or nothing. */
static int link_watcher(struct watcher *w)
{
    /* Under the lock, so serials follow the lists' order. */
    w->serial = cctx__atomic_fetch_add_seq_cst(&watch_serial, 1) + 1;
    for (int i = 0; i < w->n; i++) {
        struct sub *s = &w->subs[i];
        if (!watched(s->signo)) {
            int err = install(s->signo);
            if (err) {
                unlink_watcher(w); /* the ones linked so far; restores */
                return err;
            }
        }
        link_sub(s);
    }
    return 0;
}

/* ---- Delivery (the signal thread) --------------------------------------------------- */

/* Cancels every watcher of sig numbered up to `upto` (see arrived) whose
 * inner context is still active, BATCH at a time: under the lock it takes a
 * reference on the inner context and unlinks the watcher (so unwatch, which
 * may run on this thread during the cancel, finds nothing to do but drop its
 * own reference); outside, it cancels and releases. Oldest first, so an
 * ancestor goes before the descendants it takes with it. */
static void deliver(int sig, unsigned long long upto)
{
    char msg[48];
    cctx__signal_message(sig, msg, sizeof msg);
    struct {
        cctx_t *ctx;
        cctx_cancel_t *cancel;
        const char *file, *func;
        int line;
    } batch[BATCH];

    pthread_mutex_lock(&dispatcher.lock);
    if (!watched(sig))
        hand_back(sig);
    for (;;) {
        struct sub *head = &dispatcher.heads[sig];
        int n = 0;
        for (struct sub *s = head->next, *next; s != head && n < BATCH; s = next) {
            next = s->next; /* unlink_watcher removes s, and nothing else here */
            struct watcher *w = s->w;
            if (w->serial > upto || cctx_err(w->inner) != 0)
                continue;
            batch[n].ctx = cctx_ref(w->inner); /* safe: w holds one */
            batch[n].cancel = w->inner_cancel;
            batch[n].file = w->file;
            batch[n].line = w->line;
            batch[n].func = w->func;
            n++;
            unlink_watcher(w);
        }
        if (n == 0)
            break;
        pthread_mutex_unlock(&dispatcher.lock);
        for (int i = 0; i < n; i++) {
            cctx_cancel_cause_at(batch[i].cancel, sig, msg, batch[i].file, batch[i].line,
                                 batch[i].func);
            cctx_release_at(batch[i].ctx, batch[i].file, batch[i].line, batch[i].func);
        }
        pthread_mutex_lock(&dispatcher.lock);
    }
    pthread_mutex_unlock(&dispatcher.lock);
}

/* One signal's delivery, queued for a runner (see the top of this file). */
struct delivery {
    struct cctx__job job;
    int sig;
    unsigned long long upto;
    pid_t pid; /* the process the signal arrived in */
};

static void run_delivery(struct cctx__job *job)
{
    struct delivery *d = container_of(job, struct delivery, job);
    /* A copy inherited by a child of fork() (queued there, run by the
     * child's first runner) is the parent's signal, not the child's. */
    if (d->pid == getpid())
        deliver(d->sig, d->upto);
    cctx__job_block_free(d);
}

static void hand_to_runner(int sig, unsigned long long upto)
{
    struct delivery *d = cctx__job_block(sizeof *d);
    if (d) {
        *d = (struct delivery){.job.run = run_delivery, .sig = sig, .upto = upto, .pid = getpid()};
        /* The contexts it ends must not wait behind a runner blocked in
         * an after-function. */
        if (cctx__runner_submit_at_once(&d->job))
            return;
        cctx__job_block_free(d);
    }
    /* Every runner busy and no more to start: here, as a runner without a
     * place would deliver, so the user's after-functions of what it ends
     * go to the runners' queue and the library's wakers run here
     * (cctx__runner_notify). Out of threads (or of memory and of spare
     * blocks): they run here too, a late delivery held up by a blocking
     * after-function rather than none. */
    bool placeless = cctx__runner_placeless;
    cctx__runner_placeless = true;
    deliver(sig, upto);
    cctx__runner_placeless = placeless;
}

/* The pipe (a socket pair: see the top of the file), once per process
 * (dispatcher.lock held). The write end is non-blocking, so the handler
 * never blocks; the read end blocks, so the thread sleeps in read. Either
 * end's close is seen at the other, as with a pipe: end of file at the read
 * end, EPIPE (and no signal) at the write end. */
static int open_pipe(int fds[2])
{
#if CCTX_USE_PIPE2 && defined(SOCK_CLOEXEC)
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return errno;
#else
    /* Without SOCK_CLOEXEC a fork and exec on another thread right here
     * could leak the two ends into that program. */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return errno;
    if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) < 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return err;
    }
#endif
    int fl = fcntl(fds[1], F_GETFL);
    if (fl < 0 || fcntl(fds[1], F_SETFL, fl | O_NONBLOCK) < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return err;
    }
    return 0;
}

/* The identities of a new pipe's ends (dispatcher.lock held). */
static void note_ends(const int fds[2])
{
    if (fstat(fds[0], &dispatcher.read_st) != 0)
        memset(&dispatcher.read_st, 0, sizeof dispatcher.read_st);
    if (fstat(fds[1], &dispatcher.write_st) != 0)
        memset(&dispatcher.write_st, 0, sizeof dispatcher.write_st);
}

static int make_pipe_locked(void)
{
    if (dispatcher.wake_r >= 0)
        return 0;
    int fds[2];
    int err = open_pipe(fds);
    if (err)
        return err;
    note_ends(fds);
    dispatcher.wake_r = fds[0];
    cctx__atomic_store_release(&wake_w, fds[1]);
    return 0;
}

/* Whether fd is still the end of the pipe that *st describes. */
static bool same_pipe(int fd, const struct stat *st)
{
    struct stat now;
    return fd >= 0 && fstat(fd, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* renew_pipe's notice. The signal thread must never wait for stderr: a
 * pipe that nobody drains would hold up every later signal for good. So
 * the line is written only when poll finds room for it (a pipe's or a
 * socket's POLLOUT means room for more than this line) and no broken pipe,
 * and with write(2), not stdio, whose lock another thread may hold while
 * it waits on that same stderr. One window stays: another thread that
 * fills stderr between the poll and the write. False when nothing was
 * written: a later renewal tries again. */
static bool say_renewed(void)
{
    static const char line[] = "cctx: the program closed the descriptors of the signal "
                               "watches' pipe; the library makes a new one\n";
    struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
    if (poll(&p, 1, 0) != 1 || p.revents != POLLOUT)
        return false;
    ssize_t r = write(STDERR_FILENO, line, sizeof line - 1);
    return r > 0;
}

/* The program closed the pipe or one end of it (a daemon may close every
 * descriptor it did not open): read on, the thread would spin on end of
 * file or never wake, or read a file the program opened under the number.
 * It makes a new pipe, closes only numbers that are still the old pipe's,
 * and says so once on stderr if stderr can take it at once. The new read
 * end, or -1 when no pipe can be made now (the caller naps and tries
 * again). *st: the read end's identity, old on entry, new on return. */
static int renew_pipe(int old_r, struct stat *st)
{
    static bool said;
    int fds[2];
    pthread_mutex_lock(&dispatcher.lock);
    int err = open_pipe(fds);
    int old_w = cctx__atomic_exchange_seq_cst(&wake_w, err ? -1 : fds[1]); /* on_signal */
    if (same_pipe(old_w, &dispatcher.write_st))
        close(old_w);
    if (same_pipe(old_r, st))
        close(old_r);
    dispatcher.wake_r = err ? -1 : fds[0];
    if (!err)
        note_ends(fds);
    *st = dispatcher.read_st;
    pthread_mutex_unlock(&dispatcher.lock);
    if (!said)
        said = say_renewed();
    return err ? -1 : fds[0];
}

static void *signal_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
#ifdef PR_SET_NAME
    prctl(PR_SET_NAME, "cctx-signal", 0UL, 0UL, 0UL);
#endif
    pthread_mutex_lock(&dispatcher.lock);
    struct stat st = dispatcher.read_st;
    pthread_mutex_unlock(&dispatcher.lock);
    char buf[64];
    for (;;) {
        /* Flags first: after fork, the child's thread may start with
         * signals flagged while it did not exist. */
        for (int sig = 1; sig < NSIG; sig++)
            if (cctx__atomic_exchange_seq_cst(&pending[sig], 0)) /* on_signal */
                hand_to_runner(sig, cctx__atomic_load_relaxed(&arrived[sig]));
        /* Looked at before each read (one fstat per wake-up, which only a
         * signal causes): see renew_pipe. */
        bool woken = false;
        if (fd >= 0 && same_pipe(fd, &st)) {
            ssize_t r = read(fd, buf, sizeof buf);
            woken = r > 0 || (r < 0 && (errno == EINTR || errno == EAGAIN));
        }
        if (!woken && (fd = renew_pipe(fd, &st)) < 0) {
            struct timespec nap = {.tv_nsec = 10 * 1000 * 1000};
            nanosleep(&nap, NULL);
        }
    }
    return NULL; /* never reached: the thread lives as long as the process */
}

/* The pipe and the thread, once per process (dispatcher.lock held). The
 * pipe is published before the thread starts: in a child of fork() the
 * handlers and watches are live already, and a signal that came after the
 * thread's first look at the flags but before the pipe existed would leave
 * its flag set and no byte to wake the thread. Once published, the pipe is
 * kept even if the thread cannot start: a handler may be writing to it. */
static int start_locked(void)
{
    if (dispatcher.started)
        return 0;
    int err = make_pipe_locked();
    if (err)
        return err;
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The thread must never run a handler, ours or the program's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = cctx__atomic_load_relaxed(&cctx__signal_thread_create)(
        &tid, &attr, signal_main, (void *)(intptr_t)dispatcher.wake_r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return err == EAGAIN ? ENOMEM : err;
    dispatcher.started = true;
    return 0;
}

/* ---- fork --------------------------------------------------------------------------- */

/* Every signal stays blocked from here to the end of the fork, on both
 * sides: a signal that reached the child before after_fork_child would set
 * a flag that the child's handler then clears as the parent's, and, caught
 * by our handler, it would not take its default action either. Blocked,
 * it waits in the kernel until the child's flags are its own. */
static void before_fork(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&dispatcher.lock);
    dispatcher.fork_mask = old; /* one fork at a time: we hold the lock */
}

static void after_fork_parent(void)
{
    sigset_t old = dispatcher.fork_mask;
    pthread_mutex_unlock(&dispatcher.lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Only async-signal-safe work (see the top of the file): the pipe is the
 * parent's, so it is closed here, and the thread is left for the child's
 * first cctx_with_signals to start. Signals pending in the parent are not
 * the child's (POSIX clears them too); those sent to the child are still
 * blocked, and arrive once the flags are cleared. A delivery the parent's
 * thread was making is abandoned in the child: the watchers it had taken
 * are already unlinked, and the references it held leak there.
 * dispatcher.lock was taken by this very thread in before_fork. */
static void after_fork_child(void)
{
    /* fstat is async-signal-safe: a number the program closed and opened
     * a file of its own under is left to it. */
    int w = cctx__atomic_exchange_relaxed(&wake_w, -1);
    if (same_pipe(w, &dispatcher.write_st))
        close(w);
    if (same_pipe(dispatcher.wake_r, &dispatcher.read_st))
        close(dispatcher.wake_r);
    dispatcher.wake_r = -1;
    dispatcher.started = false;
    for (int sig = 1; sig < NSIG; sig++)
        cctx__atomic_store_relaxed(&pending[sig], 0);
    sigset_t old = dispatcher.fork_mask;
    pthread_mutex_unlock(&dispatcher.lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void init(void)
{
    for (int sig = 0; sig < NSIG; sig++)
        dispatcher.heads[sig].prev = dispatcher.heads[sig].next = &dispatcher.heads[sig];
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* ---- The after-function ------------------------------------------------------------- */

/* Runs once, when the caller's context ends (on the thread that ended it,
 * possibly the signal thread inside deliver()'s cancel). */
static void unwatch(void *arg)
{
    struct watcher *w = arg;
    pthread_mutex_lock(&dispatcher.lock);
    unlink_watcher(w);
    pthread_mutex_unlock(&dispatcher.lock);
    /* The inner context ends too, so that dumps show nothing active; it is
     * freed when the caller's context, which holds it, is. */
    cctx_cancel_at(w->inner_cancel, w->file, w->line, w->func);
    cctx_release_at(w->inner, w->file, w->line, w->func);
    /* Stopping our own registration from inside tells the runner not to
     * touch its storage after we return; only then may it be freed. */
    cctx_after_stop(&w->after);
    free(w);
}

/* ---- The API ------------------------------------------------------------------------ */

static bool valid_signal(int sig)
{
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
        return false;
    /* glibc refuses the signals it keeps for itself (32, 33), even to a query. */
    struct sigaction cur;
    return sigaction(sig, NULL, &cur) == 0;
}

static cctx_t *no_context(int err)
{
    errno = err;
    return NULL;
}

/* "signal.NotifyContext [interrupt terminated]", after Go's String(). */
static void name_inner(cctx_t *inner, const struct watcher *w)
{
    char name[256];
    size_t len = (size_t)snprintf(name, sizeof name, "signal.NotifyContext [");
    for (int i = 0; i < w->n && len < sizeof name; i++) {
        char one[48];
        cctx__signal_message(w->subs[i].signo, one, sizeof one);
        const char *label = strncmp(one, "signal: ", 8) == 0 ? one + 8 : one;
        len += (size_t)snprintf(name + len, sizeof name - len, "%s%s", i ? " " : "", label);
    }
    if (len < sizeof name)
        snprintf(name + len, sizeof name - len, "]");
    /* Only a label: without memory the context works unnamed. */
    int saved_errno = errno;
    cctx_set_name(inner, name);
    errno = saved_errno;
}

cctx_t *cctx_with_signals_at(cctx_t *parent, const int *signals, size_t n,
                             cctx_cancel_t **cancel, const char *file, int line,
                             const char *func)
{
    if (cancel)
        *cancel = NULL;
    if (!parent || !signals || n == 0)
        return no_context(EINVAL);
    sigset_t seen;
    sigemptyset(&seen);
    int distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (!valid_signal(signals[i]))
            return no_context(EINVAL);
        if (!sigismember(&seen, signals[i])) {
            sigaddset(&seen, signals[i]);
            distinct++;
        }
    }

    pthread_once(&init_once, init);
    pthread_mutex_lock(&dispatcher.lock);
    int err = start_locked();
    pthread_mutex_unlock(&dispatcher.lock);
    if (err)
        return no_context(err);

    /* A parent already done: a child born done, and nothing to watch. */
    if (cctx_err(parent) != 0)
        return cctx_with_cancel_at(parent, cancel, file, line, func);

    struct watcher *w = calloc(1, sizeof *w + (size_t)distinct * sizeof(struct sub));
    if (!w)
        return no_context(ENOMEM);
    sigemptyset(&seen);
    for (size_t i = 0; i < n; i++) {
        if (sigismember(&seen, signals[i]))
            continue;
        sigaddset(&seen, signals[i]);
        w->subs[w->n] = (struct sub){.w = w, .signo = signals[i]};
        w->n++;
    }
    w->file = file;
    w->line = line;
    w->func = func;

    cctx_cancel_t *cc;
    cctx_t *ctx = NULL;
    w->inner = cctx_with_cancel_at(parent, &w->inner_cancel, file, line, func);
    if (w->inner)
        ctx = cctx_with_cancel_at(w->inner, &cc, file, line, func);
    if (!ctx) {
        cctx_release_at(w->inner, file, line, func); /* NULL: nothing */
        free(w);
        return no_context(ENOMEM);
    }
    name_inner(w->inner, w);

    pthread_mutex_lock(&dispatcher.lock);
    err = link_watcher(w);
    pthread_mutex_unlock(&dispatcher.lock);
    if (err) {
        cctx_release_at(ctx, file, line, func);
        cctx_release_at(w->inner, file, line, func);
        free(w);
        return no_context(err);
    }
    /* From here w belongs to unwatch: if the parent (or a signal) ended ctx
     * already, unwatch runs now, on this thread, and frees w. */
    cctx__after_func_first(ctx, &w->after, unwatch, w, file, line, func);
    if (cancel)
        *cancel = cc;
    return ctx;
}
