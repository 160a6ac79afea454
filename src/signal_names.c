/* SPDX-License-Identifier: MIT */
/*
 * The message a signal context's cause carries: Go's name of the signal
 * ("signal: interrupt"), or its number where Go has no name for it.
 */
#include <signal.h>
#include <stdio.h>

#include "signal_internal.h"

/* Go's names (syscall.Signal.String on Linux), indexed by number so that they
 * follow each architecture's numbering. */
static const char *const names[NSIG] = {
    [SIGHUP] = "hangup",
    [SIGINT] = "interrupt",
    [SIGQUIT] = "quit",
    [SIGILL] = "illegal instruction",
    [SIGTRAP] = "trace/breakpoint trap",
    [SIGABRT] = "aborted",
    [SIGBUS] = "bus error",
    [SIGFPE] = "floating point exception",
    [SIGKILL] = "killed",
    [SIGUSR1] = "user defined signal 1",
    [SIGSEGV] = "segmentation fault",
    [SIGUSR2] = "user defined signal 2",
    [SIGPIPE] = "broken pipe",
    [SIGALRM] = "alarm clock",
    [SIGTERM] = "terminated",
#ifdef SIGSTKFLT
    [SIGSTKFLT] = "stack fault",
#endif
    [SIGCHLD] = "child exited",
    [SIGCONT] = "continued",
    [SIGSTOP] = "stopped (signal)",
    [SIGTSTP] = "stopped",
    [SIGTTIN] = "stopped (tty input)",
    [SIGTTOU] = "stopped (tty output)",
    [SIGURG] = "urgent I/O condition",
    [SIGXCPU] = "CPU time limit exceeded",
    [SIGXFSZ] = "file size limit exceeded",
    [SIGVTALRM] = "virtual timer expired",
    [SIGPROF] = "profiling timer expired",
    [SIGWINCH] = "window changed",
    [SIGIO] = "I/O possible",
#ifdef SIGPWR
    [SIGPWR] = "power failure",
#endif
    [SIGSYS] = "bad system call",
};

void cctx__signal_message(int sig, char *buf, size_t len)
{
    if (sig > 0 && sig < NSIG && names[sig])
        snprintf(buf, len, "signal: %s", names[sig]);
    else
        snprintf(buf, len, "signal %d", sig);
}
