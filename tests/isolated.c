/* SPDX-License-Identifier: MIT */
/* A test body in namespaces of its own: see isolated.h. */
#define _GNU_SOURCE
#include "isolated.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* Exit statuses of the child before its exec. */
enum { NOT_PERMITTED = 77, NO_HOSTS = 76, SETUP_FAILED = 78 };

/* Writes `text` to a new file made from `templ` (a mkstemp template, copied
 * first) and bind-mounts it over `target` (when target exists); the file
 * itself is unlinked at once, the mount keeps it. Only system calls: this
 * runs between fork and exec. */
static int bind_text(const char *templ, const char *target, const char *text)
{
    if (access(target, F_OK) != 0)
        return 0; /* glibc's default without resolv.conf is 127.0.0.1 anyway */
    char path[4096];
    size_t tl = strlen(templ);
    if (tl >= sizeof path)
        return -1;
    memcpy(path, templ, tl + 1);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    ok = ok && mount(path, target, NULL, MS_BIND, NULL) == 0;
    unlink(path);
    return ok ? 0 : -1;
}

static int loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc;
}

char *run_isolated_with_hosts(const char *name, const char *hosts)
{
    char *templ = temp_path_for("cctx-isolated-XXXXXX"); /* no malloc after the fork */
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0)
            _exit(NOT_PERMITTED);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            _exit(NOT_PERMITTED);
        if (hosts && access("/etc/hosts", F_OK) != 0)
            _exit(NO_HOSTS);
        if (loopback_up() != 0 ||
            bind_text(templ, "/etc/resolv.conf",
                      "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n") != 0 ||
            bind_text(templ, "/etc/nsswitch.conf", "hosts: files dns\n") != 0 ||
            (hosts && (bind_text(templ, "/etc/hosts", hosts) != 0 ||
                       bind_text(templ, "/etc/host.conf", "multi on\n") != 0)))
            _exit(SETUP_FAILED);
        unsetenv("RES_OPTIONS");
        unsetenv("LOCALDOMAIN");
        unsetenv("HOSTALIASES");
        execl("/proc/self/exe", "cctx-tests", "--child", name, (char *)NULL);
        _exit(127);
    }
    free(templ);
    close(out[1]);
    size_t len = 0, cap = 4096;
    char *text = malloc(cap);
    CHECK(text != NULL);
    for (;;) {
        if (len + 1024 > cap)
            CHECK((text = realloc(text, cap *= 2)) != NULL);
        ssize_t n = read(out[0], text + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    text[len] = '\0';
    close(out[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st) && (WEXITSTATUS(st) == NOT_PERMITTED || WEXITSTATUS(st) == NO_HOSTS)) {
        free(text);
        if (WEXITSTATUS(st) == NO_HOSTS)
            SKIP("no /etc/hosts to mount a test's names over");
        SKIP("new mount and network namespaces not permitted");
    }
    fputs(text, stdout);
    fflush(stdout);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "isolated child %s failed (status %#x)\n", name, st);
        abort();
    }
    return text;
}

char *run_isolated(const char *name)
{
    return run_isolated_with_hosts(name, NULL);
}
