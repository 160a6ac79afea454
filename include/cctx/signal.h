/* SPDX-License-Identifier: MIT */
/*
 * <cctx/signal.h> — Go's signal.NotifyContext for cctx.
 *
 *     static const int stop[] = {SIGINT, SIGTERM};
 *     cctx_cancel_t *cancel;
 *     cctx_t *ctx = cctx_with_signals(cctx_background(), stop, 2, &cancel);
 *     ... serve until cctx_err(ctx) != 0, or block in cctx_wait / <cctx/io.h> ...
 *     cctx_release(ctx);   // ends the watch and restores SIGINT's and SIGTERM's
 *                          // previous dispositions (if the signal has not already)
 *
 * The choices the contract leaves open:
 *
 *  - The context is a cancelable context (as from cctx_with_cancel) created
 *    at the caller's site; `cancel` cancels it early, as for any other. Its
 *    parent is not `parent` itself but a context between the two that the
 *    library owns and that the signal cancels (a library thread must be able
 *    to hold what it cancels by a reference of its own); it carries the same
 *    site, ends when the caller's context does, and appears in cctx_dump
 *    named after the signals, as Go's String() does:
 *    "signal.NotifyContext [interrupt terminated]". Values, deadline and
 *    cancellation flow from `parent` as for a direct child. A parent already
 *    done gives a direct child born done with the parent's cause, and
 *    nothing is installed.
 *
 *  - Cause: when one of the signals arrives the context is canceled with
 *    ECANCELED, code = the signal number, message "signal: " + Go's name of
 *    the signal ("signal: interrupt", "signal: terminated", "signal: hangup",
 *    "signal: quit", "signal: user defined signal 1", ...; "signal N" for a
 *    signal Go has no name for, such as the real-time ones), and as origin
 *    the cctx_with_signals call, as a deadline's cause names the
 *    cctx_with_deadline call. Descendants report the same cause.
 *
 *  - The watch ends as soon as the context ends, whatever ended it: the
 *    signal, cancel, the parent, or the last cctx_release. The signals then
 *    get their previous dispositions back at once, ahead of the
 *    after-functions of that end (unlike Go, where they stay caught until
 *    stop is called): a second SIGINT during a graceful shutdown does what
 *    it did before the watch (by default, it terminates the process), the
 *    usual "press Ctrl-C again to force" behaviour. A context that the
 *    signal's delivery cancels has its watch ended before it is canceled;
 *    one that anything else ends (its parent's end included, even one the
 *    delivery caused) has it ended by the first of its after-functions, so
 *    a thread that a waiting call wakes may run a moment before that.
 *
 *  - Several contexts may watch one signal, from any threads; one delivery
 *    cancels every context that watched that signal when it arrived (each of
 *    Go's NotifyContext contexts gets its own copy). A context created after
 *    the signal arrived is not canceled by it, even while its delivery is
 *    still to come (the library's thread busy with an earlier one) or in
 *    progress (a context made by an after-function of a context that
 *    delivery canceled): a program that re-arms on a signal does not loop.
 *    A signal that
 *    arrives several times before it is handled is handled once: signals
 *    coalesce, as in the kernel.
 *
 *  - Dispositions: the first watcher of a signal installs the library's
 *    handler with sigaction (SA_RESTART | SA_ONSTACK, so the calls other
 *    threads are blocked in are restarted, not failed with EINTR), saving the
 *    previous disposition; the previous handler is not called while the
 *    signal is watched (as in Go). When the last watcher of that signal
 *    goes, the saved disposition is put back, unless the program replaced the
 *    library's handler meanwhile (then its own stays). A later
 *    cctx_with_signals installs again. A signal that was ignored (SIG_IGN,
 *    e.g. under nohup) is caught while watched, as Go's Notify does. Code
 *    that saved the library's handler and puts it back after the last watch
 *    ended (as system() does with SIGINT and SIGQUIT) leaves it catching
 *    for nobody: the first signal it then catches puts the saved disposition
 *    back and is raised again for it (unless a new watch of that signal
 *    started before its delivery ran: it is then dropped, as it came
 *    before that watch), and a later watch saves that
 *    disposition, never the library's handler, so a fault signal still ends
 *    the process.
 *
 *  - The handler does only async-signal-safe work: it sets a per-signal flag
 *    and writes one byte to a pipe, preserving errno (the pipe is a pair of
 *    connected sockets, written with MSG_NOSIGNAL: the write never raises
 *    SIGPIPE, even once the program has closed the read end). One library
 *    thread, started on first use with every signal blocked, reads the pipe
 *    and hands each signal's delivery to one of the library's runner threads
 *    (those that run a deadline's after-functions, see <cctx.h>), which
 *    cancels the contexts, oldest first. The after-functions of those
 *    contexts (and of their descendants) then start each on a runner of
 *    its own, as a deadline's do, so one that blocks holds up neither the
 *    rest of the delivery nor other signals; any value destructor that the
 *    delivery's releases run, runs on the delivering runner, and one that
 *    blocks holds up only the rest of its own delivery (the later watchers
 *    of that same signal). When runners exist but all are busy and no
 *    more can be started (a thread limit), the library's thread delivers
 *    itself, as a runner would: the after-functions still wait for a
 *    runner, so the contexts end even while every runner blocks in an
 *    after-function, but a value destructor the delivery runs holds up
 *    every delivery after it. Only when no runner can be started (out of
 *    threads or memory) does the library's thread deliver itself, running
 *    those after-functions in turn, and a blocking one then holds up every
 *    delivery after it. The thread and the pipe (two descriptors,
 *    close-on-exec) stay for the life of the process. A program that
 *    closes them (as a daemon that closes every descriptor it did not open)
 *    gets a new pipe, said once on stderr when stderr has room for the
 *    line at once (the thread never waits for a stderr that nobody
 *    drains, which would hold up every later signal; a later renewal tries
 *    the line again). The library looks at what a number is (fstat) before
 *    it reads or closes it, here and in a child of fork(), so a file the
 *    program opened under an old number is left alone, but for one it
 *    opens between that look and the read or close.
 *    Until the thread has made the new pipe, a signal's handler writes its
 *    byte to the old write end's number if the program opened a socket
 *    there (anything else refuses it).
 *
 *  - Signal masks are not touched, but for the duration of a fork() (see
 *    below): a signal blocked in every thread of the program stays pending
 *    and cancels nothing until some thread unblocks it. raise() delivers to
 *    the calling thread, kill() to any thread that does not block the
 *    signal.
 *
 *  - Fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL) may be watched, but only
 *    a signal sent by a process (kill, raise) cancels the context. One that
 *    the kernel raises for a faulting instruction goes to the handler the
 *    program had installed before the watch, called as the kernel would
 *    (its sa_mask applied), which may repair the fault and return, as a
 *    guard page's does: the watch goes on. Without such a handler (the
 *    default, SIG_IGN, or one with SA_RESETHAND) the watch puts the previous
 *    disposition back and returns, so the instruction faults again and the
 *    process ends as it would have without the watch (as in Go, where a
 *    real fault still crashes, and a fault is forwarded to the handler
 *    that was there before).
 *
 *  - Bad input: a NULL parent, a NULL `signals`, n == 0 (Go's "no signals
 *    means every signal" would take over SIGSEGV, SIGCHLD and the rest; here
 *    it is an error), a signal number <= 0 or >= NSIG, SIGKILL, SIGSTOP, or a
 *    signal the C library reserves for itself (glibc's 32 and 33) give NULL
 *    with errno EINVAL, having installed and allocated nothing. A signal
 *    listed twice is watched once. Out of memory gives ENOMEM; failing to
 *    make the pipe or start the thread gives that error (EMFILE, ENFILE,
 *    ENOMEM for EAGAIN); in each case nothing is changed, but that a pipe
 *    made before a thread that could not start is kept for the next try. On
 *    failure *cancel is set to NULL.
 *
 *  - fork(): the child inherits the contexts and their watches, and the
 *    handlers (which the kernel keeps across fork), but not the thread, and
 *    none is started at fork time: a child that execs (or just exits) never
 *    has one, and the atfork handler makes only async-signal-safe calls (it
 *    closes the parent's pipe in the child). The library's atfork handlers
 *    block every signal in the forking thread from its prepare handler to
 *    its parent and child handlers, and there restore the mask: a signal
 *    sent to the child at once (a kill() as fork returns in the parent)
 *    waits in the kernel until the child's flags are cleared, then is caught
 *    as the child's. The
 *    child's thread starts on its first cctx_with_signals, with any signals.
 *    Until then a watched signal that arrives is remembered, not lost: the
 *    thread, once started, delivers it to the inherited watches first (a
 *    watch that the starting call makes is not canceled by it). So a child that keeps using
 *    inherited watches and makes no new one should call cctx_with_signals
 *    once (and may release that context at once) to be served; until then
 *    its inherited contexts are not canceled by signals. A delivery that was
 *    in progress in the parent at the moment of the fork is not finished in
 *    the child. Under ThreadSanitizer a child that has not exec'd cannot
 *    start threads at all. exec() ends everything (caught signals return to
 *    their defaults; the pipe is close-on-exec).
 */
#ifndef CCTX_SIGNAL_H
#define CCTX_SIGNAL_H

#include <cctx.h>

#include <signal.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A cancelable child of parent that the first of signals[0..n) to arrive
 * cancels (see above). One reference, owned by the caller; NULL with errno
 * EINVAL or ENOMEM (or EMFILE, ENFILE) on failure. */
CCTX_API CCTX__OWNED cctx_t *cctx_with_signals_at(cctx_t *parent, const int *signals, size_t n,
                                                  cctx_cancel_t **cancel, const char *file,
                                                  int line, const char *func);
#define cctx_with_signals(parent, signals, n, cancel) \
    cctx_with_signals_at((parent), (signals), (n), (cancel), CCTX__SITE)

#ifdef __cplusplus
}
#endif

#endif /* CCTX_SIGNAL_H */
