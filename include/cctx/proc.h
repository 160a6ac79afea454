/* SPDX-License-Identifier: MIT */
/*
 * cctx/proc.h — child processes tied to a context.
 *
 * Go's exec.CommandContext with Cmd.Cancel and WaitDelay: when the context
 * ends, the child gets a signal (SIGTERM by default), then SIGKILL once
 * kill_after has passed, and cctx_proc_wait returns its wait status. The
 * signal goes ahead of the user's after-functions of that end, and neither
 * signal waits for after-functions that block (on this context or any
 * other): an after-function may wait for the child.
 *
 *   cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
 *   o.kill_after = CCTX_SEC(2);
 *   char *argv[] = {"/usr/bin/make", "-j4", NULL};
 *   cctx_proc_t *p = cctx_proc_spawn(ctx, argv[0], argv, NULL, &o);
 *   if (!p) return errno;
 *   int status;
 *   cctx_proc_wait(p, &status);      // returns when make has exited
 *   cctx_proc_free(p);
 *
 * Process groups. By default the child leads a new process group (its
 * group ID is its PID) and both signals go to the whole group, so the
 * grandchildren a shell or a build tool starts end with it. A child that
 * has left that group (setpgid into another group of its session) is
 * signalled alone as well; the members of the group it joined are not.
 * With same_group the child stays in the caller's group and only the child
 * is signalled.
 *
 * Reaping, and why no signal ever reaches a stranger. A PID, and a process
 * group ID, cannot be reused while the process that bears it is unreaped,
 * so the library signals only while it holds the child unreaped, and reaps
 * it itself, under the same lock as the signalling:
 *  - cctx_proc_wait waits for the exit without reaping (waitid WNOWAIT),
 *    returns the status, and reaps the child when no further signal can be
 *    due: the context ended and SIGKILL was sent (or kill_after is
 *    CCTX_NO_DEADLINE), or same_group on a kernel with pidfds (the signal
 *    then goes through a pidfd, which never names another process);
 *  - otherwise the exited child stays a zombie until cctx_proc_free, so
 *    that if the context ends between cctx_proc_wait and cctx_proc_free the
 *    members of its group that outlived it are still signalled safely;
 *  - cctx_proc_free reaps it in every case: no zombie outlives the handle.
 * Two rules for the application. Nobody else may reap this child: do not
 * call wait(), waitpid(-1, ...) or waitid(P_ALL, ...) for children you did
 * not start, and do not set SIGCHLD to SIG_IGN or SA_NOCLDWAIT (the kernel
 * would then reap it). libuv, GLib and Go's runtime state the same rule.
 * Nor may anybody close the pidfd the handle holds (below): a program that
 * closes every descriptor it did not open must spare it. Once it is closed
 * the library cannot tell its number from whatever reuses it, so the child
 * is then neither waited for (ECHILD), signalled nor reaped, and
 * cctx_proc_free closes whatever then has that number.
 * Where pidfd_open(2) exists (Linux 5.3) the library holds a pidfd of the
 * child, which keeps it safe even if the first rule is broken, when the child's
 * PID goes to another process: it waits and reaps through the pidfd (Linux
 * 5.4), so that process is never waited for nor reaped (cctx_proc_wait
 * reports ECHILD); the child's own signals (same_group) go through it; the
 * group's go through it too on Linux 6.9 and later (the process group the
 * pidfd's process leads), and before 6.9 by kill(-pgid) only while the
 * pidfd shows the child unreaped (a child running as a user this process
 * may not signal is unreaped too: the members of its group that this
 * process may signal get the signal). Without pidfds, all of it goes by
 * PID, safe by the rule alone; so do the signals where a sandbox refuses
 * pidfd_send_signal (ENOSYS) but not pidfd_open.
 *
 * Descriptors. The child has exactly three open descriptors from the
 * parent, 0, 1 and 2: stdin_fd, stdout_fd and stderr_fd (-1: the parent's
 * own 0, 1 or 2 as exec leaves it: not open in the child if it is closed,
 * or close-on-exec, in the parent, so that a descriptor the program marked
 * close-on-exec never reaches a child by landing on 0, 1 or 2; give 1 as
 * stdout_fd to hand such a 1 over on purpose). Every other descriptor is
 * closed in the child, including those the application opened without
 * O_CLOEXEC (posix_spawn's addclosefrom on glibc 2.34 and later; elsewhere
 * each open descriptor found in /proc/self/fd at spawn time is closed, so
 * one opened without O_CLOEXEC by another thread during the spawn may leak
 * into the child there). The given descriptors may be any numbers, 0 to 2
 * in any order included.
 *
 * Signals in the child: no signal is blocked, and every signal has its
 * default action (an ignored SIGPIPE or SIGTERM of the parent is not
 * inherited).
 *
 * After fork(). A handle inherited by a child of fork() is its parent's:
 * the child process is not the fork child's child, and the parent may reap
 * it at any time. There, the end of the context (the inherited copy ends too, an
 * inherited deadline fires there as well) signals nothing, cctx_proc_wait
 * returns ECHILD, and cctx_proc_free frees the copy without signalling or
 * reaping anything, even if another thread of the parent was using the
 * handle at the moment of the fork. It leaves the copy's descriptor (a
 * pidfd, close-on-exec) open: its number was the parent's, and the child
 * may have closed it and opened something of its own under it since. A
 * copy that the parent's library was at work on at the moment of the fork
 * (arming the SIGKILL, or firing the context's end or the SIGKILL's
 * deadline) is left allocated (a few hundred bytes), with the user's
 * context referenced if its end was being fired: that work may have been
 * caught half done, and a thread the child lacks would finish it. A handle
 * the fork child spawns itself is its own: while the child's library
 * threads cannot start (see fork() in <cctx.h>), cctx_proc_wait looks for
 * the exit every 10 ms and tries them again, so that a deadline of ctx
 * inherited from the parent still fires and signals the process.
 */
#ifndef CCTX_PROC_H
#define CCTX_PROC_H

#include <cctx.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cctx_proc cctx_proc_t;

/* Start from CCTX_PROC_OPTS_INIT (or pass NULL opts for all defaults): a
 * zeroed struct means descriptor 0 for stdin, stdout and stderr, which is
 * what it says (the parent's stdin as the child's stdout), not "inherit". */
typedef struct cctx_proc_opts {
    int     signal;        /* sent when ctx ends; 0: SIGTERM */
    int64_t kill_after;    /* then SIGKILL after this long (measured on cctx_now(),
                              so on the fake clock while it runs); 0: 5 s;
                              negative: with the first signal; CCTX_NO_DEADLINE: never */
    bool    same_group;    /* false (default): the child leads a new process group, and the
                              signals go to the whole group */
    int     stdin_fd, stdout_fd, stderr_fd;   /* -1: inherit */
} cctx_proc_opts_t;

/* Positional, in the fields' order, so that C++ before C++20 takes it too:
 * signal, kill_after, same_group, stdin_fd, stdout_fd, stderr_fd. */
#define CCTX_PROC_OPTS_INIT { 0, 0, false, -1, -1, -1 }

/* Starts path (no PATH search: as execve) with argv (argv[0] included) and
 * envp (NULL: the caller's environ). Returns the handle, or NULL with errno:
 * EINVAL (NULL ctx, path or argv; a signal out of range; a negative
 * descriptor other than -1), EBADF (a given descriptor is not open),
 * ctx's error if ctx has already ended (nothing is started), ENOMEM,
 * EAGAIN (the process limit, RLIMIT_NPROC), EMFILE or ENFILE (no descriptor
 * for a copy of a given one), or the error of the exec itself (ENOENT,
 * EACCES, ENOEXEC...), which posix_spawn reports from the child. Where no
 * descriptor is left for the child's pidfd once it has started, it is kept
 * and watched by PID, as on a kernel without pidfds. The handle holds a
 * reference on ctx until cctx_proc_free. */
CCTX_API cctx_proc_t *cctx_proc_spawn(cctx_t *ctx, const char *path, char *const argv[],
                                      char *const envp[], const cctx_proc_opts_t *opts);

/* Waits until the child has exited (however long: it does not stop when ctx
 * ends, since the end of ctx is what makes the child exit) and stores its
 * wait status (WIFEXITED, WTERMSIG...) in *status if status is not NULL.
 * 0, EINVAL for a NULL p, or ECHILD if something else reaped the child
 * (the rule at the top of this file was broken) or p was inherited by a
 * child of fork() (see "After fork()" above); *status is not written then.
 * May be called again: it returns the same status. Threads may wait at the
 * same time (the child is reaped only once none of them has still to look
 * at it, so none can wait by a PID already free for reuse). Its wait for
 * the exit is a cancellation point, as waitid is: a thread cancelled in it
 * leaves the reaping to the next wait or to cctx_proc_free. Once the exit
 * is known the call is none: its reaping does not wait. cctx_proc_spawn and
 * cctx_proc_free are none: a pthread_cancel acts after they return. */
CCTX_API int cctx_proc_wait(cctx_proc_t *p, int *status);

/* The child's PID (also its process group ID unless same_group); -1 for a
 * NULL p. Valid until cctx_proc_free; do not signal it yourself after
 * cctx_proc_wait returned, the library may have reaped it. */
CCTX_API pid_t cctx_proc_pid(const cctx_proc_t *p);

/* Ends the tie to ctx, reaps the child and frees p. Normally called after
 * cctx_proc_wait. A child still running is sent SIGKILL (its group too,
 * unless same_group) and reaped, so this never leaves a zombie; a group
 * whose SIGKILL was still pending after the context's signal gets it now
 * (after free the group could no longer be signalled safely); with
 * kill_after CCTX_NO_DEADLINE none is ever pending. A child this process
 * may not signal (a set-user-ID program that changed its real user) is
 * waited for until it exits by itself, a wait that a pthread_cancel does
 * not end (the call is no cancellation point). NULL: nothing. */
CCTX_API void cctx_proc_free(cctx_proc_t *p);

#ifdef __cplusplus
}
#endif

#endif /* CCTX_PROC_H */
