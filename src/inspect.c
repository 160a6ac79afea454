/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=inspect: the process serves its live context tree on a Unix
 * socket, for cctx-inspect (tools/inspect).
 *
 * The socket is DIR/PID.sock, DIR being $CCTX_INSPECT_DIR or
 * /tmp/cctx-EUID. The directory must be the process's own: made with mode
 * 0700 if missing, and refused (the switch then stays off, said on stderr)
 * if it is a symbolic link, another user's, or open to group or others.
 * The socket itself is mode 0600. So only the process's own user can reach
 * it; and in case the directory's mode is changed later, every connection's
 * peer credentials (SO_PEERCRED: the connecting process's user) are checked
 * too, and a connection from another user is closed unanswered.
 *
 * The protocol: the client writes one line, "text", "json", "dot" or
 * "html", optionally followed by " sized"; the process answers with
 * cctx_dump(NULL, ...) in that format and closes. A sized answer starts with
 * the line "size N", N the number of bytes that follow, so that a client can
 * tell a complete answer from one cut short (cctx-inspect asks so); the
 * plain one is the dump alone, as a hand-made client expects. The dump is
 * the registry's (the switch implies `trees`): it takes each registry
 * shard's lock briefly and a reference on each context, and writes to memory
 * first, so no thread of the program pauses beyond a shard lock, and a slow
 * reader holds nothing. One library thread (signals blocked) serves one
 * client at a time, each with 2 s in all to ask and 5 s in all to read: whole
 * bounds, not per call, so that no client dribbling a byte at a time holds
 * the thread longer.
 *
 * The socket is removed at exit. A child of fork() does not serve (its
 * parent's socket is not its own): a fork handler closes the listening
 * descriptor in the child, so that the parent's socket, left behind if the
 * parent is killed, refuses connections rather than queueing them for no one.
 * A connection being served as the process forks is shut down when its
 * answer is sent, so its client sees the end although the child holds a copy.
 * A program the child execs reads CCTX_DEBUG anew.
 *
 * The listening descriptor is the library's, but a program may close every
 * descriptor it did not open (daemons do, at start-up) and get the number
 * again for a socket or file of its own. So the thread, and the child's
 * fork handler, use it only while it is still the socket made here (same
 * device and inode); once it is not, the thread stops serving, says so on
 * stderr and removes the socket's file. (A close and a reuse that fall
 * between that check and the accept could still lose the program one
 * connection.) The directory is kept as an absolute path where that fits in
 * a socket's address, so the file is removed at exit whatever the program's
 * working directory is by then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t served_by;
static int listener = -1;
static dev_t listener_dev; /* the socket made here, to tell it by */
static ino_t listener_ino;

enum { ASK_MS = 2000, ANSWER_MS = 5000 };

/* Whether `listener` still refers to the socket made here (see the top).
 * fstat is async-signal-safe, as a child's fork handler needs. */
static bool listener_is_ours(void)
{
    struct stat st;
    return listener >= 0 && fstat(listener, &st) == 0 && st.st_dev == listener_dev &&
           st.st_ino == listener_ino;
}

/* The listening descriptor is the parent's: in a child it would queue
 * connections that no thread accepts (the serving thread is not forked). Only
 * the descriptor goes; the socket's file stays the parent's, and close is
 * async-signal-safe, as a child's fork handler needs. */
static void stop_listening_in_child(void)
{
    if (listener_is_ours())
        close(listener);
    listener = -1;
}

static void remove_socket(void)
{
    if (getpid() == served_by)
        unlink(sock_path);
}

/* The uid of the peer of a connected Unix socket, or -1. */
static long peer_uid(int fd)
{
#ifdef SO_PEERCRED
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -1;
    return (long)cr.uid;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) != 0)
        return -1;
    return (long)uid;
#endif
}

/* Waits until fd is ready for events or the monotonic clock reaches
 * deadline (ns); false when the time is up or poll fails. A hang-up counts as
 * ready: the recv or send that follows says what it is. */
static bool ready_before(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - cctx__os_now();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)((left + 999999) / 1000000));
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

static bool send_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        if (!ready_before(fd, POLLOUT, deadline))
            return false;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads the request line into req (NUL-terminated, without its newline or
 * a CR before it) before deadline; false if it did not come whole in time.
 * The end of the stream ends a request too (a client that shuts its side
 * after the word). */
static bool read_request(int fd, char *req, size_t size, int64_t deadline)
{
    size_t n = 0;
    while (n < size - 1) {
        if (!ready_before(fd, POLLIN, deadline))
            return false;
        ssize_t r = recv(fd, req + n, size - 1 - n, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (r < 0)
            return false;
        char *nl = memchr(req + n, '\n', (size_t)r);
        if (nl) {
            if (nl > req && nl[-1] == '\r')
                nl--;
            *nl = '\0';
            return true;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    req[n] = '\0';
    return true;
}

static void serve(int fd)
{
    if (peer_uid(fd) != (long)geteuid())
        return; /* another user: nothing, not even why */
    char req[24];
    if (!read_request(fd, req, sizeof req, cctx__os_now() + (int64_t)ASK_MS * 1000000))
        return;
    char *space = strchr(req, ' ');
    bool sized = space && strcmp(space, " sized") == 0;
    if (sized)
        *space = '\0';
    static const struct {
        const char *word;
        int format;
    } formats[] = {{"text", CCTX_DUMP_TEXT}, {"json", CCTX_DUMP_JSON},
                   {"dot", CCTX_DUMP_DOT}, {"html", CCTX_DUMP_HTML}};
    int format = -1;
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (strcmp(req, formats[i].word) == 0)
            format = formats[i].format;
    if (format < 0) {
        static const char bad[] = "cctx: unknown format (text, json, dot or html)\n";
        send_all(fd, bad, sizeof bad - 1, cctx__os_now() + (int64_t)ANSWER_MS * 1000000);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    int err = m ? cctx_dump(NULL, m, format) : ENOMEM;
    if (m && fclose(m) != 0 && !err)
        err = ENOMEM; /* a memory stream fails only to grow */
    if (err) {
        /* Said, so that the asker does not take silence for another user's
         * refusal. ENOTSUP: the leak report at exit has begun. */
        char why[80];
        int n = snprintf(why, sizeof why, "cctx: no dump: %s\n",
                         err == ENOMEM    ? "out of memory"
                         : err == ENOTSUP ? "the program is exiting"
                                          : "error");
        send_all(fd, why, (size_t)n, cctx__os_now() + (int64_t)ANSWER_MS * 1000000);
    } else {
        /* The reader's time starts once the dump is made: making it is ours. */
        int64_t deadline = cctx__os_now() + (int64_t)ANSWER_MS * 1000000;
        char head[32];
        int n = snprintf(head, sizeof head, "size %zu\n", len);
        if (!sized || send_all(fd, head, (size_t)n, deadline))
            send_all(fd, text, len, deadline);
    }
    free(text);
}

/* The program closed the listening descriptor: an accept on that number
 * could take the program's own connections, and one on a closed number
 * would fail at once, again and again. */
static void *stop_serving(void)
{
    fprintf(stderr,
            "cctx: CCTX_DEBUG=inspect: the program closed the socket's descriptor; "
            "%s no longer served\n",
            sock_path);
    remove_socket();
    return NULL;
}

static void *inspect_main(void *arg)
{
    (void)arg;
    for (;;) {
        /* Checked before each accept: one that blocks meanwhile still
         * accepts on the socket made here, which the call keeps open. */
        if (!listener_is_ours())
            return stop_serving();
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL)
                return stop_serving();
            /* Out of descriptors, say: try again a little later. */
            struct timespec pause = {0, 10000000};
            nanosleep(&pause, NULL);
            continue;
        }
        serve(fd);
        /* A child forked meanwhile holds a copy of fd, and the peer would see
         * no end of the answer until that child exits: shutdown ends it for
         * the socket, whoever else holds a descriptor of it. */
        shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    return NULL;
}

/* The directory is ours alone, or we do not serve. Its absolute path goes
 * in abs (PATH_MAX bytes); NULL with errno when it is refused. */
static const char *private_dir(const char *dir, char *abs)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return NULL;
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        errno = EPERM;
        return NULL;
    }
    return realpath(dir, abs);
}

void cctx__inspect_start(void)
{
    char fallback[64], abs[PATH_MAX];
    const char *asked = cctx__os_getenv_unprivileged("CCTX_INSPECT_DIR");
    if (!asked || !*asked) {
        snprintf(fallback, sizeof fallback, "/tmp/cctx-%ld", (long)geteuid());
        asked = fallback;
    }
    const char *dir = private_dir(asked, abs);
    if (!dir) {
        fprintf(stderr,
                "cctx: CCTX_DEBUG=inspect: no private directory for the socket "
                "(%s must be a directory of this user, mode 0700): %s\n",
                asked, strerror(errno));
        return;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path, sizeof a.sun_path, "%s/%ld.sock", dir, (long)getpid());
    if (len >= 0 && (size_t)len >= sizeof a.sun_path && dir != asked) {
        /* The absolute path is too long for a socket's: the directory as
         * given, then (a relative one is then removed at exit only from
         * the directory the program started in). */
        dir = asked;
        len = snprintf(a.sun_path, sizeof a.sun_path, "%s/%ld.sock", dir, (long)getpid());
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (len < 0 || (size_t)len >= sizeof a.sun_path || fd < 0) {
        fprintf(stderr, "cctx: CCTX_DEBUG=inspect: cannot make the socket in %s\n", dir);
        if (fd >= 0)
            close(fd);
        return;
    }
    unlink(a.sun_path); /* a dead process's, with our pid */
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(a.sun_path, 0600) != 0 ||
        listen(fd, 16) != 0) {
        fprintf(stderr, "cctx: CCTX_DEBUG=inspect: %s: %s\n", a.sun_path, strerror(errno));
        close(fd);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "cctx: CCTX_DEBUG=inspect: %s: %s\n", a.sun_path, strerror(errno));
        unlink(a.sun_path);
        close(fd);
        return;
    }
    listener_dev = st.st_dev;
    listener_ino = st.st_ino;
    memcpy(sock_path, a.sun_path, sizeof sock_path);
    served_by = getpid();
    atexit(remove_socket);
    listener = fd;
    if (pthread_atfork(NULL, NULL, stop_listening_in_child) != 0 ||
        cctx__os_thread_start(inspect_main, NULL) != 0) {
        fputs("cctx: CCTX_DEBUG=inspect: cannot start its thread\n", stderr);
        remove_socket();
        listener = -1;
        close(fd);
    }
}
