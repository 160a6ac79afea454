/* SPDX-License-Identifier: MIT */
/*
 * cctx/io.h — blocking calls that honour a context.
 *
 * Each call blocks until it succeeds, fails, or ctx ends, whichever comes
 * first. Rules common to all of them:
 *
 *  - When ctx ends first the call fails with the context's error, ECANCELED
 *    or ETIMEDOUT, having done nothing the caller does not learn about: no
 *    byte is read and dropped, a partial transfer returns its count, no
 *    connection is accepted, no lock, unit or join is taken (a connection
 *    attempt in flight goes on: see cctx_connect). A context that
 *    is already done at entry fails at once, without touching the descriptor
 *    or object. When success and the end of ctx race, either may be reported.
 *  - Failure values: the descriptor calls and cctx_sem_wait return -1 and set
 *    errno, as read(2) and sem_wait(3) do; cctx_cond_wait, cctx_mutex_lock and
 *    cctx_thread_join return 0 or an error number and leave errno alone, as
 *    the pthread functions do.
 *  - Bad input never crashes: a NULL ctx, object, or buffer with a non-zero
 *    length gives EINVAL, and so does a length above SSIZE_MAX (a negative
 *    length cast to size_t), which recv and send would not refuse; a
 *    negative descriptor gives EBADF.
 *  - EINTR is retried inside every call.
 *  - Thread cancellation (pthread_cancel): the descriptor calls,
 *    cctx_cond_wait, cctx_sem_wait and cctx_thread_join are cancellation
 *    points, as the calls they stand for are; a thread cancelled in one
 *    leaves no lock held, no descriptor's option changed, nothing
 *    registered on ctx, and nothing the call made for itself (cctx_write's
 *    descriptor for a terminal, cctx_poll's context under the fake clock
 *    and its array, cctx_dial's socket, address list and the context of
 *    its attempt's share of time are given back as the thread unwinds).
 *    cctx_mutex_lock and cctx_getaddrinfo are no cancellation points, in
 *    their waits or in a lookup made on the calling thread: the cancel acts
 *    after they return (a lookup still ends with ctx).
 *
 * Descriptors. The wait is poll(2) on the descriptor and on
 * cctx_done_fd(ctx), so a cancel, a deadline (marked by the library's timer
 * thread) and cctx_fake_clock_advance past a deadline all wake it. The first
 * wait on a context makes its done fd; if that fails the call returns -1
 * with that errno (EMFILE, ENFILE). Blocking and non-blocking descriptors
 * work alike and their flags are never changed (nothing sets O_NONBLOCK): on
 * a non-blocking descriptor EAGAIN is waited on, not returned. On a ready
 * descriptor cctx_read, cctx_write, cctx_recv and cctx_send cost the one
 * system call a plain call costs, and no done fd: reads and writes try
 * preadv2/pwritev2 with RWF_NOWAIT, recv and send add MSG_DONTWAIT, before
 * any poll. Where the kernel does not take RWF_NOWAIT (ttys, most character
 * devices, pipes on older kernels), the call polls first and then does a
 * plain read or write (a descriptor open the other way, which poll never
 * reports ready, fails at once with EBADF, as read(2) and write(2) do; one
 * that never reports readiness for another reason, an epoll descriptor
 * read, or an eventfd read of fewer than 8 bytes, waits for ctx); on such
 * a descriptor that is blocking, a write goes
 * PIPE_BUF bytes at a time, which POLLOUT guarantees room for on a pipe. A
 * terminal's POLLOUT promises one byte, so a write to a blocking tty goes
 * through a non-blocking descriptor of the call's own for it (opened through
 * /proc/self/fd, a new open file description, closed before the call
 * returns): it ends with ctx while the terminal is stopped or nobody reads
 * it. Where that open fails (no /proc, a terminal in exclusive mode) or
 * would reach another terminal (a pty's master side, /dev/tty, the
 * console), such a write may block until the terminal takes the bytes.
 * The one window left: a blocking descriptor without RWF_NOWAIT (and any
 * blocking listening socket, see cctx_accept) that another thread reads or
 * accepts on too may lose the data poll reported to that thread, and the
 * call then blocks in the kernel, deaf to ctx, as a plain call would.
 * (An eventfd takes RWF_NOWAIT for reads, not for writes: on a blocking
 * eventfd, a write that would overflow its count blocks so, as write(2)
 * would.) A call that takes RWF_NOWAIT, and any call on a non-blocking
 * descriptor, keeps no such window: where a try right after poll reported
 * readiness finds nothing (another thread took it, or poll overstates, as
 * it may on an eventfd, whose POLLOUT promises room for a count of 1, or on
 * a device), the call waits again; where that repeats at once, it naps
 * between the tries (1 ms, doubling to 16 ms, cut short by ctx), so it does
 * not spin. Pipes and sockets, whose readiness is exact, never nap; but
 * for a socket whose error queue holds entries (IP_RECVERR's ICMP errors,
 * SO_TIMESTAMPING, MSG_ZEROCOPY), which reports POLLERR until they are read
 * with MSG_ERRQUEUE: a call that waits on it naps so, and its data can then
 * come up to 16 ms late.
 * Regular files (/proc files too) and block devices never wait on readiness:
 * their reads and writes block on the disk as read(2) does.
 *
 * Locks, semaphores and joins. POSIX offers no way to wake a thread blocked
 * in pthread_mutex_lock, sem_wait or pthread_join from outside (short of
 * signals, which cannot be used without a race and a stolen signal number),
 * so cctx_mutex_lock, cctx_sem_wait and cctx_thread_join wait in timed
 * slices: 1 ms, doubling to at most 16 ms, each ending at ctx's deadline if
 * that comes first (on the real clock: a virtual deadline of the fake clock
 * does not shorten them), with cctx_err(ctx) checked between slices. A cancel is
 * therefore noticed within one slice (at most 16 ms, plus scheduling); a
 * deadline on the real clock ends the wait no earlier than the deadline and
 * promptly after it, since a slice ends at the deadline. The
 * calls never trust the system's timeout alone: they fail only once
 * cctx_err(ctx) is non-zero, so under the fake clock of <cctx/testing.h> a
 * deadline passes only when the clock is advanced (noticed within a slice).
 * A try-call comes first, so an uncontended call costs no clock read.
 */
#ifndef CCTX_IO_H
#define CCTX_IO_H

#include <cctx.h>

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct addrinfo; /* <netdb.h> hides it from strict ISO C without _POSIX_C_SOURCE */

/* poll(2) that also ends when ctx does. Returns the number of entries of fds
 * with non-zero revents, or 0 when `timeout` (nanoseconds on cctx_now()'s
 * clock, so on the fake clock while it runs; negative: no limit; 0: check
 * once) passed with none ready and ctx still active; -1 with cctx_err(ctx)
 * if ctx ended first, or with poll's errno (a bad fds is EFAULT, an nfds
 * above RLIMIT_NOFILE is EINVAL, as poll says). Only the revents fields of
 * fds are written; entries with a negative fd are ignored, as poll does.
 * nfds may be 0 (fds may then be NULL): a wait for the timeout or ctx.
 * Descriptors are first polled without waiting, so when some are ready the
 * call costs one poll(2) and nothing else. A call that has to wait polls
 * nfds + 1 entries (the last is ctx's done fd; so a wait needs nfds below
 * RLIMIT_NOFILE), and a large nfds costs a malloc (ENOMEM). On the real
 * clock a timeout costs nothing more; under the fake clock a positive
 * timeout shorter than ctx's remaining time costs a derived context and its
 * done fd for the call. */
CCTX_API int cctx_poll(cctx_t *ctx, struct pollfd *fds, nfds_t nfds, int64_t timeout);

/* read(2): returns as soon as any data is read (possibly fewer than len
 * bytes), 0 at end of file, or -1. len 0 returns what read(fd, buf, 0)
 * returns (buf may then be NULL), without waiting. */
CCTX_API ssize_t cctx_read(cctx_t *ctx, int fd, void *buf, size_t len);

/* write(2) that writes all of buf, on blocking and non-blocking descriptors
 * alike, waiting for room as often as needed. Returns len; or, when ctx ends
 * or the descriptor fails part-way, the count written so far if it is
 * non-zero (the next call reports the failure again), else -1. SIGPIPE is
 * raised on a broken pipe or socket, as write does. len 0 returns what
 * write(fd, buf, 0) returns; on a socket, where that sends an empty
 * datagram, it waits for room as a write of data does. */
CCTX_API ssize_t cctx_write(cctx_t *ctx, int fd, const void *buf, size_t len);

/* recv(2) with MSG_DONTWAIT added: returns as soon as any data arrives, as a
 * blocking recv does. With MSG_WAITALL on a stream socket (without MSG_PEEK)
 * it keeps receiving until len bytes, end of stream, an error or the end of
 * ctx, and then returns the count so far if non-zero. If the caller passes
 * MSG_DONTWAIT it gets one attempt, EAGAIN included, as recv would give; so
 * with MSG_ERRQUEUE, whose reads never block (an empty error queue is EAGAIN
 * at once, for a blocking recv too). */
CCTX_API ssize_t cctx_recv(cctx_t *ctx, int fd, void *buf, size_t len, int flags);

/* send(2) with MSG_DONTWAIT added, writing all of buf as cctx_write does (a
 * datagram goes in one piece or not at all). MSG_NOSIGNAL is not added: pass
 * it to avoid SIGPIPE. A caller's MSG_DONTWAIT gives one attempt. */
CCTX_API ssize_t cctx_send(cctx_t *ctx, int fd, const void *buf, size_t len, int flags);

/* accept(2): waits for POLLIN, then accepts; returns the new descriptor with
 * accept's defaults (blocking, not close-on-exec; set them with fcntl). addr
 * and addrlen may both be NULL; addr without addrlen is EINVAL. On a
 * non-blocking listener a connection that another thread took first is
 * waited for again; a blocking listener that other threads accept on too
 * may block in the kernel after POLLIN (see the top of this file). Errors of
 * the pending connection that accept reports (ECONNABORTED, EPROTO, ...) are
 * returned, as accept returns them. A descriptor that is not a listening
 * socket is refused at once, as accept refuses it (ENOTSOCK; EINVAL for a
 * stream socket that is not listening; EOPNOTSUPP for a datagram socket),
 * without waiting for ctx. */
CCTX_API int cctx_accept(cctx_t *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen);

/* connect(2): 0 once connected, -1 with errno otherwise. The attempt is
 * started and then waited for with POLLOUT (SO_ERROR gives the result) on
 * blocking and non-blocking sockets alike. A blocking socket's connect would
 * sleep in the kernel deaf to ctx, so for the connect system call itself its
 * SO_SNDTIMEO is set to the shortest timeout (a kernel tick or two, so up to
 * ~8 ms at HZ=250, during which a cancel waits), which makes the kernel
 * return EINPROGRESS as for a non-blocking socket (socket(7)), and put back
 * before the call returns: another thread reading that option during the
 * call would see it; the descriptor's flags are not touched. An interrupted
 * connect (EINTR) is asked again, as the kernel allows.
 * A Unix socket whose listener's backlog is full gets EAGAIN with nothing to
 * poll on: the call then retries after slices of 1 ms doubling to 16 ms of
 * real time (a wait on the done fd, so a cancel ends it at once).
 * When ctx ends while the attempt is in flight the socket is left connecting
 * (the kernel goes on with it): close it, or call cctx_connect again, which
 * waits for that attempt (EALREADY is waited on) and reports how it ended:
 * 0 if it connected, also when it did so meanwhile (connect(2) answers 0
 * there, not EISCONN). */
CCTX_API int cctx_connect(cctx_t *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen);

/* pthread_cond_wait that also wakes when ctx ends. The caller holds mutex;
 * it is held again on every return but ENOTRECOVERABLE, as from
 * pthread_cond_wait. Returns 0 when woken by a signal or broadcast, or
 * spuriously, as pthread_cond_wait may be: re-check the predicate;
 * cctx_err(ctx) if ctx has ended by the time it wakes (also when a signal
 * raced with the end: the predicate may hold); EOWNERDEAD, with mutex held,
 * when a robust mutex's owner died holding it during the wait: repair the
 * state and call pthread_mutex_consistent, as after pthread_mutex_lock (if
 * the library had to mark the mutex consistent to hand it on, that call
 * answers EINVAL, which is harmless; a thread that took the mutex in between
 * was not told); or another error of pthread_cond_wait. Nothing stays
 * registered on ctx after it returns, so cond and mutex may be destroyed
 * then even if ctx is canceled later. Like pthread_cond_wait it is a
 * cancellation point: a thread cancelled (pthread_cancel) while it waits
 * unwinds with mutex held, for its cleanup handlers to let go, and leaves
 * nothing registered on ctx either.
 *
 * The end of ctx wakes it through an after-function that takes and releases
 * mutex and broadcasts cond (Go's AfterFunc + sync.Cond pattern), so other
 * waiters on cond wake spuriously then. That after-function runs on the
 * thread that ends ctx (the canceller, a library thread that ends deadlines,
 * or the thread that advances the fake clock) and never blocks there: it
 * tries mutex once, and if mutex is busy (as when that very thread holds it)
 * it hands the locking to the "waker", one library thread per process
 * (detached, every signal blocked, named cctx-waker), so cancelling ctx while
 * holding mutex is safe and a busy mutex never delays other deadlines. The
 * first cctx_cond_wait of the process starts the waker; if it cannot be
 * created that call returns the error (EAGAIN) at once, having waited for
 * nothing, with mutex held, and a later call tries again. The waker tries
 * every mutex it has a wake-up for, and while all are busy waits for one
 * of them in turn for at most 16 ms, so a mutex held for long delays only
 * its own waiters' wake-up (a wake-up handed to the waker meanwhile waits
 * for that one wait at most). Only normal, error-checking and recursive
 * (held once) mutexes are supported, robust or not, as for
 * pthread_cond_wait.
 *
 * fork(): a child starts no thread at fork time; its first cctx_cond_wait
 * starts a waker of its own (ThreadSanitizer does not allow that in a child
 * that has not exec'd). As with a lock, a context on which another thread
 * was waiting in cctx_cond_wait at the moment of the fork must not be ended
 * in the child (that thread's registration is in a stack the child does
 * not have). While the child's library threads cannot start (see fork()
 * in <cctx.h>), the wait is timed, 10 ms at a time, to try them again; it
 * returns from such a slice only once ctx has ended (on a condition
 * variable with a clock other than CLOCK_REALTIME, only where the libc has
 * pthread_cond_clockwait). */
CCTX_API int cctx_cond_wait(cctx_t *ctx, pthread_cond_t *cond, pthread_mutex_t *mutex);

/* pthread_mutex_lock that gives up when ctx ends: 0 with the mutex locked,
 * else an error number (ctx's error, or pthread_mutex_lock's: EDEADLK,
 * EINVAL, EAGAIN; EOWNERDEAD comes with the lock held, as for
 * pthread_mutex_lock). Waits in slices (see the top of this file). */
CCTX_API int cctx_mutex_lock(cctx_t *ctx, pthread_mutex_t *mutex);

/* sem_wait that gives up when ctx ends: 0 with a unit taken, else -1 with
 * errno (ctx's error, or sem_wait's: EINVAL). Waits in slices; it never
 * posts to wake itself, so it cannot steal a unit from another waiter. */
CCTX_API int cctx_sem_wait(cctx_t *ctx, sem_t *sem);

/* pthread_join that stops waiting when ctx ends: 0 once joined (*ret, if ret
 * is not NULL, gets the thread's result), else an error number (ctx's error,
 * or pthread_join's: EDEADLK, EINVAL, ESRCH). When ctx ends the thread runs
 * on, still joinable: join it again later. As with pthread_join, only one
 * thread may join a given thread at a time. Waits in slices. */
CCTX_API int cctx_thread_join(cctx_t *ctx, pthread_t thread, void **ret);

/* ---- Name resolution ------------------------------------------------------ */

/* getaddrinfo(3) cannot be abandoned: it blocks for the resolver's whole
 * timeout and retries (by default 5 s times 2 attempts per server), and
 * nothing can stop it. cctx_getaddrinfo runs it on a helper thread of its
 * own (detached, every signal blocked, named cctx-resolve) and waits for
 * that thread or for the end of ctx, whichever comes first. When ctx ends
 * first the call returns at once and the helper is abandoned: it runs on
 * until the resolver gives up or answers, then frees the result itself and
 * exits, so nothing leaks and nothing touches the caller's memory (node,
 * service and hints are copied). The cost of the thread is paid only for a
 * name: a NULL node, a numeric address (inet_pton's IPv4 or IPv6 forms) or
 * AI_NUMERICHOST in hints never waits on the network and is resolved on the
 * calling thread. At most 256 helpers run at once, abandoned ones included:
 * a lookup that finds them all busy (a resolver that stopped answering
 * keeps each for its whole timeout) waits for one to finish, or for the end
 * of ctx, and starts no thread meanwhile, so that a flood of lookups cannot
 * take every thread the process may have. A child of fork() starts with
 * all 256 free. The helper-thread way works with any libc (musl included),
 * where glibc's getaddrinfo_a would need a signal or thread notification
 * and still could not cancel a lookup in progress (gai_cancel then answers
 * EAI_NOTCANCELED).
 *
 * Returns getaddrinfo's codes (0 with *res set, to be freed with
 * freeaddrinfo; EAI_SERVICE for a service that reads as a number outside
 * 0 to 65535, which glibc would cut to 16 bits and musl refuses), and
 * EAI_SYSTEM with errno
 * set: ctx's error (ECANCELED,
 * ETIMEDOUT) when ctx ends first or had already ended (nothing is started
 * then), EINVAL for a NULL ctx or res, or pthread_create's error (EAGAIN)
 * when the helper thread, or the waker thread that the wait needs (see
 * cctx_cond_wait), cannot be started; a helper already started is then
 * abandoned, as when ctx ends. *res is written only on success.
 *
 * fork(): a helper thread still running at the fork is not in the child;
 * its bookkeeping in the child's memory is then never freed (a few hundred
 * bytes per abandoned lookup), nothing else. */
CCTX_API int cctx_getaddrinfo(cctx_t *ctx, const char *node, const char *service,
                              const struct addrinfo *hints, struct addrinfo **res);

/* A connected socket to host:service (socktype: SOCK_STREAM, SOCK_DGRAM for
 * a connected UDP socket, or SOCK_SEQPACKET; 0 means SOCK_STREAM): resolves with
 * cctx_getaddrinfo (AF_UNSPEC), then tries each address in the order the
 * resolver gave, each with cctx_connect, until one connects. The socket is
 * blocking and close-on-exec.
 *
 * When ctx has a deadline the attempts share the time it leaves, as Go's
 * net.Dialer shares it (partialDeadline): each ends at now + remaining /
 * the addresses left (its own included), but has at least 2 s, taken from
 * the last addresses, unless less than 2 s remain, when it has all of it.
 * So an address that never answers (its SYNs dropped) leaves time for the
 * next: two addresses and 6 s give the first 3 s, and the second the rest;
 * three and 5 s give 2 s, 2 s and 1 s. An attempt that runs out of its
 * share fails with ETIMEDOUT, for that address, and the next one is tried;
 * the end of ctx itself ends the dial. The shares are measured on
 * cctx_now()'s clock (the fake clock of <cctx/testing.h> while it runs). A
 * share shorter than ctx's time costs a context derived from ctx for that
 * connect (and the descriptor its wait makes); out of memory for it, the
 * attempt has ctx's whole time. Without a deadline an attempt has no limit
 * of its own: the kernel's connect timeout (about two minutes with Linux's
 * defaults) ends one that gets no answer, unless ctx ends first.
 *
 * Returns the socket, or -1 with errno: ctx's error when ctx ends first
 * (during the resolution, a connect, or between the attempts), EINVAL (NULL
 * ctx, host or service, or a bad socktype), the resolution's failure
 * (EADDRNOTAVAIL for a name with no address, as EAI_NONAME, EAI_NODATA,
 * EAI_ADDRFAMILY and EAI_FAIL say; EAGAIN for EAI_AGAIN; ENOMEM; EINVAL for
 * a service or socktype the resolver refuses; the errno of EAI_SYSTEM), or,
 * when every address was tried, the error of the first connect that failed
 * (ECONNREFUSED, ETIMEDOUT for a share run out...). */
CCTX_API int cctx_dial(cctx_t *ctx, const char *host, const char *service, int socktype);

#ifdef __cplusplus
}
#endif

#endif /* CCTX_IO_H */
