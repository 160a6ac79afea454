/* SPDX-License-Identifier: MIT */
/*
 * cctx-inspect — the live context tree of a running program.
 *
 *   cctx-inspect PID [--text|--json|--dot|--html] [--timeout SECONDS]
 *
 * The program must run with CCTX_DEBUG=inspect (src/inspect.c): it serves
 * its tree on DIR/PID.sock, DIR being $CCTX_INSPECT_DIR or /tmp/cctx-UID
 * (UID: the program's user, read from /proc/PID, else ours). The program's
 * threads do not pause while it answers.
 *
 * The answer is asked "sized" (it starts with its length) and read whole into
 * memory before any of it is written: a slow reader of the output (a pager)
 * does not make the program give up on us, and an answer cut short is
 * reported, never printed as if complete. Each wait for the program (to
 * connect, for the first byte, between bytes) is bounded by the timeout.
 * Exit status: 0; 1 when the program cannot be reached, refuses (another
 * user), does not answer in time or answers short, or when the answer
 * cannot be written (a full disk: said on stderr, as for the others); 2 for
 * a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int usage(void)
{
    fputs("usage: cctx-inspect PID [--text|--json|--dot|--html] [--timeout SECONDS]\n"
          "  the program must run with CCTX_DEBUG=inspect; SECONDS (default 10) bounds\n"
          "  each wait for it: to connect, for the first byte and between bytes\n",
          stderr);
    return 2;
}

static long pid;
static double timeout_s = 10;

/* A connection to the socket with every wait bounded by the timeout, or -1
 * (errno set). The send timeout bounds connect too: a listener whose queue is
 * full makes connect wait. */
static int connect_to(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {(time_t)timeout_s,
                         (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    if (tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1; /* zero would mean no bound at all */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, (const struct sockaddr *)a, sizeof *a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

struct answer {
    char *bytes;
    size_t len, cap;
    bool timed_out; /* else the program closed, or reading failed (errno) */
    int err;
};

/* Reads into a until the program closes, a wait times out, or, once a's
 * first want(a) bytes are in, enough has come. */
static void read_answer(int fd, struct answer *a, size_t (*want)(const struct answer *))
{
    for (;;) {
        if (want && a->len >= want(a))
            return;
        if (a->cap - a->len < 65536) {
            size_t cap = a->cap ? a->cap * 2 : 65536;
            char *p = realloc(a->bytes, cap + 1);
            if (!p) {
                a->err = ENOMEM;
                return;
            }
            a->bytes = p;
            a->cap = cap;
        }
        ssize_t r = read(fd, a->bytes + a->len, a->cap - a->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            a->timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            a->err = errno;
            return;
        }
        if (r == 0)
            return;
        a->len += (size_t)r;
        a->bytes[a->len] = '\0';
    }
}

/* How much a sized answer takes: its first line, "size N\n", and N bytes
 * more. Until the line is whole, no end is known. */
static size_t head_len(const struct answer *a)
{
    const char *nl = a->len ? memchr(a->bytes, '\n', a->len) : NULL;
    return nl ? (size_t)(nl - a->bytes) + 1 : 0;
}

static size_t sized_end(const struct answer *a)
{
    size_t head = head_len(a);
    if (!head || strncmp(a->bytes, "size ", 5) != 0)
        return head ? head : SIZE_MAX; /* not sized: its first line says why */
    unsigned long long n = strtoull(a->bytes + 5, NULL, 10);
    return n > SIZE_MAX - head ? SIZE_MAX : head + (size_t)n;
}

/* A connection that has sent the request, or -1 (said on stderr). */
static int ask(const struct sockaddr_un *addr, const char *request)
{
    int fd = connect_to(addr);
    if (fd < 0) {
        fprintf(stderr,
                "cctx-inspect: cannot reach process %ld at %s: %s\n"
                "  (is it running with CCTX_DEBUG=inspect, as your user?)\n",
                pid, addr->sun_path, strerror(errno));
        return -1;
    }
    size_t n = strlen(request);
    if (send(fd, request, n, MSG_NOSIGNAL) != (ssize_t)n) {
        fprintf(stderr, "cctx-inspect: process %ld: %s\n", pid,
                errno == EAGAIN ? "took no request in time" : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The tail of a failed read: why, on stderr, and status 1. */
static int short_answer(const struct answer *a, const char *what)
{
    if (a->timed_out)
        fprintf(stderr, "cctx-inspect: process %ld sent nothing for %g s %s\n", pid, timeout_s,
                what);
    else if (a->err)
        fprintf(stderr, "cctx-inspect: process %ld: %s %s\n", pid, strerror(a->err), what);
    else
        fprintf(stderr, "cctx-inspect: process %ld closed %s\n", pid, what);
    return 1;
}

/* Writes the answer to stdout and flushes it, or says why it could not: a
 * small answer fails only at the flush, and an exit status of 1 with nothing
 * said would read as a refusal. 0 or 1, the exit status. */
static int put_answer(const char *p, size_t n)
{
    if ((n && fwrite(p, 1, n, stdout) != n) || fflush(stdout) != 0) {
        fprintf(stderr, "cctx-inspect: cannot write the answer: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* A program linked with an older cctx knows no sized answers: it is asked
 * again the old way, and read until it closes, which is all it says. */
static int ask_the_old_way(const struct sockaddr_un *addr, const char *format)
{
    char req[16];
    snprintf(req, sizeof req, "%s\n", format);
    int fd = ask(addr, req);
    if (fd < 0)
        return 1;
    struct answer a = {0};
    read_answer(fd, &a, NULL);
    close(fd);
    if (a.err)
        return short_answer(&a, "in its answer: it is incomplete, and not printed");
    fprintf(stderr,
            "cctx-inspect: process %ld runs an older cctx, whose answer has no "
            "size: it may be incomplete\n",
            pid);
    int status = put_answer(a.bytes, a.len);
    free(a.bytes);
    return status;
}

int main(int argc, char **argv)
{
    const char *format = "text";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--text") == 0 || strcmp(argv[i], "--json") == 0 ||
            strcmp(argv[i], "--dot") == 0 || strcmp(argv[i], "--html") == 0) {
            format = argv[i] + 2;
        } else if (strcmp(argv[i], "--timeout") == 0) {
            char *end;
            /* Written so that NaN, which compares false with everything,
             * is refused too. */
            if (++i == argc || (timeout_s = strtod(argv[i], &end), *end) ||
                !(timeout_s > 0 && timeout_s <= 1e6))
                return usage();
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else {
            char *end;
            pid = strtol(argv[i], &end, 10);
            if (*end || pid <= 0)
                return usage();
        }
    }
    if (pid <= 0)
        return usage();

    char dir[256];
    const char *env = getenv("CCTX_INSPECT_DIR");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
    } else {
        char proc[64];
        struct stat st;
        snprintf(proc, sizeof proc, "/proc/%ld", pid);
        long uid = stat(proc, &st) == 0 ? (long)st.st_uid : (long)geteuid();
        snprintf(dir, sizeof dir, "/tmp/cctx-%ld", uid);
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int len = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%ld.sock", dir, pid);
    if (len < 0 || (size_t)len >= sizeof addr.sun_path) {
        fprintf(stderr, "cctx-inspect: socket path too long: %s/%ld.sock\n", dir, pid);
        return 1;
    }
    char req[32];
    snprintf(req, sizeof req, "%s sized\n", format);
    int fd = ask(&addr, req);
    if (fd < 0)
        return 1;
    struct answer a = {0};
    read_answer(fd, &a, sized_end);
    close(fd);
    size_t head = head_len(&a);
    if (a.len == 0 && !a.err) {
        fprintf(stderr, "cctx-inspect: process %ld sent nothing (refused: another user?)\n",
                pid);
        return 1;
    }
    if (a.len == 0 && a.timed_out) {
        fprintf(stderr,
                "cctx-inspect: process %ld did not answer within %g s (stopped? or "
                "its socket left behind by a process killed?)\n",
                pid, timeout_s);
        return 1;
    }
    if (head && strncmp(a.bytes, "cctx: unknown format", 20) == 0)
        return ask_the_old_way(&addr, format);
    if (head && strncmp(a.bytes, "size ", 5) != 0) {
        fprintf(stderr, "cctx-inspect: process %ld: %.*s", pid, (int)head, a.bytes);
        return 1;
    }
    if (!head || a.len < sized_end(&a)) {
        char what[128];
        if (head)
            snprintf(what, sizeof what,
                     "after %zu of %zu bytes: the answer is incomplete, "
                     "and not printed",
                     a.len - head, sized_end(&a) - head);
        else
            snprintf(what, sizeof what, "before the size of its answer");
        return short_answer(&a, what);
    }
    int status = put_answer(a.bytes + head, sized_end(&a) - head);
    free(a.bytes);
    return status;
}
