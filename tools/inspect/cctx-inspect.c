/* SPDX-License-Identifier: MIT */
/*
 * cctx-inspect — the live context tree of a running program.
 *
 *   cctx-inspect PID [--text|--json|--dot|--html]
 *
 * The program must run with CCTX_DEBUG=inspect (src/inspect.c): it serves
 * its tree on DIR/PID.sock, DIR being $CCTX_INSPECT_DIR or /tmp/cctx-UID
 * (UID: the program's user, read from /proc/PID, else ours). The program's
 * threads do not pause while it answers. Exit status: 0, 1 when the program
 * cannot be reached or refuses (another user), 2 for a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int usage(void)
{
    fputs("usage: cctx-inspect PID [--text|--json|--dot|--html]\n"
          "  the program must run with CCTX_DEBUG=inspect\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *format = "text";
    long pid = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--text") == 0 || strcmp(argv[i], "--json") == 0 ||
            strcmp(argv[i], "--dot") == 0 || strcmp(argv[i], "--html") == 0) {
            format = argv[i] + 2;
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
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path, sizeof a.sun_path, "%s/%ld.sock", dir, pid);
    if (len < 0 || (size_t)len >= sizeof a.sun_path) {
        fprintf(stderr, "cctx-inspect: socket path too long: %s/%ld.sock\n", dir, pid);
        return 1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "cctx-inspect: cannot reach process %ld at %s: %s\n"
                        "  (is it running with CCTX_DEBUG=inspect, as your user?)\n",
                pid, a.sun_path, strerror(errno));
        return 1;
    }
    char req[16];
    int n = snprintf(req, sizeof req, "%s\n", format);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        fprintf(stderr, "cctx-inspect: %s\n", strerror(errno));
        return 1;
    }
    char buf[65536];
    size_t total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r)
            return 1;
        total += (size_t)r;
    }
    close(fd);
    if (total == 0) {
        fprintf(stderr, "cctx-inspect: process %ld sent nothing (refused: another user?)\n",
                pid);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
