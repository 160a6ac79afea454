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
 * "html"; the process answers with cctx_dump(NULL, ...) in that format and
 * closes. The dump is the registry's (the switch implies `trees`): it takes
 * each registry shard's lock briefly and a reference on each context, and
 * writes to memory first, so no thread of the program pauses beyond a shard
 * lock, and a slow reader holds nothing. One library thread (signals
 * blocked) serves one client at a time, each with 2 s to ask and 5 s to read.
 *
 * The socket is removed at exit. A child of fork() does not serve (its
 * parent's socket is not its own); a program it execs reads CCTX_DEBUG anew.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t served_by;

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

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void serve(int fd)
{
    if (peer_uid(fd) != (long)geteuid())
        return; /* another user: nothing, not even why */
    struct timeval ask = {2, 0}, answer = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ask, sizeof ask);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &answer, sizeof answer);
    char req[16];
    size_t n = 0;
    while (n < sizeof req - 1) {
        ssize_t r = recv(fd, req + n, 1, 0);
        if (r <= 0 || req[n] == '\n')
            break;
        n++;
    }
    req[n] = '\0';
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
        send_all(fd, bad, sizeof bad - 1);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return;
    int err = cctx_dump(NULL, m, format);
    if (fclose(m) == 0 && !err)
        send_all(fd, text, len);
    free(text);
}

static void *inspect_main(void *arg)
{
    int listener = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            /* Out of descriptors, say: try again a little later. */
            struct timespec pause = {0, 10000000};
            nanosleep(&pause, NULL);
            continue;
        }
        serve(fd);
        close(fd);
    }
    return NULL;
}

/* The directory is ours alone, or we do not serve. */
static const char *private_dir(char *buf, size_t n)
{
    const char *dir = getenv("CCTX_INSPECT_DIR");
    if (!dir || !*dir) {
        snprintf(buf, n, "/tmp/cctx-%ld", (long)geteuid());
        dir = buf;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return NULL;
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        errno = EPERM;
        return NULL;
    }
    return dir;
}

void cctx__inspect_start(void)
{
    char buf[64];
    const char *dir = private_dir(buf, sizeof buf);
    if (!dir) {
        fprintf(stderr, "cctx: CCTX_DEBUG=inspect: no private directory for the socket "
                        "(%s must be a directory of this user, mode 0700): %s\n",
                getenv("CCTX_INSPECT_DIR") ? getenv("CCTX_INSPECT_DIR") : buf,
                strerror(errno));
        return;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path, sizeof a.sun_path, "%s/%ld.sock", dir, (long)getpid());
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
    memcpy(sock_path, a.sun_path, sizeof sock_path);
    served_by = getpid();
    atexit(remove_socket);
    if (cctx__os_thread_start(inspect_main, (void *)(intptr_t)fd) != 0) {
        fputs("cctx: CCTX_DEBUG=inspect: cannot start its thread\n", stderr);
        remove_socket();
        close(fd);
    }
}
