/* SPDX-License-Identifier: MIT */
/*
 * The debugging switches in programs that do what daemons and privileged
 * tools do. A program that closes a descriptor it did not open and gets the
 * number again for a file or socket of its own: the trace stops rather than
 * overwrite the file, and the inspect thread stops serving rather than take
 * the program's connections (and removes its socket's file). A relative
 * CCTX_INSPECT_DIR: the socket's file is removed at exit after a chdir. A
 * set-user-ID program ignores CCTX_DEBUG, CCTX_TRACE and CCTX_INSPECT_DIR.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

enum { DATA_SIZE = 65536 };

/* CHECK, saying first what the child wrote. */
#define CHECK_OR_SAY(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fprintf(stderr, __VA_ARGS__);                                                          \
        CHECK(cond);                                                                               \
    } while (0)

static char *make_temp_dir(void)
{
    char *dir = temp_path_for("cctx-env-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    return dir;
}

static void remove_tree(const char *dir)
{
    char *cmd;
    CHECK(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
    CHECK(system(cmd) == 0);
    free(cmd);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The descriptor of this process whose link in /proc/self/fd is target. */
static int fd_linked_to(const char *target)
{
    char link[64], got[4096];
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, got, sizeof got - 1);
        if (n > 0 && (size_t)n == strlen(target) && memcmp(got, target, (size_t)n) == 0)
            return fd;
    }
    return -1;
}

/* The descriptor of the listening Unix socket bound to path. */
static int fd_bound_to(const char *path)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_un a;
        socklen_t len = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &len) == 0 && a.sun_family == AF_UNIX &&
            strcmp(a.sun_path, path) == 0)
            return fd;
    }
    return -1;
}

static int listen_at(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof a.sun_path);
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 4) == 0);
    return fd;
}

static int connect_to(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Returns once one of this process's threads sleeps in the system call nr
 * (/proc/self/task/TID/syscall), five reads in a row; fails after 10 s. */
static void wait_for_a_thread_in(long nr)
{
    for (int tries = 0, seen = 0; seen < 5; tries++) {
        CHECK(tries < 10000);
        bool in = false;
        DIR *d = opendir("/proc/self/task");
        CHECK(d);
        for (struct dirent *e; !in && (e = readdir(d));) {
            char path[300];
            snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
            FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
            long got;
            in = f && fscanf(f, "%ld", &got) == 1 && got == nr;
            if (f)
                fclose(f);
        }
        closedir(d);
        seen = in ? seen + 1 : 0;
        real_sleep_ms(1);
    }
}

/* ---- a descriptor closed and its number used again -------------------------------------- */

/* CCTX_TRACE is set: the trace's descriptor is closed, and a data file gets
 * its number. Flushing and exiting must leave the data file as written. */
CHILD(trace_descriptor_taken)
{
    const char *data = getenv("TEST_DATA_FILE");
    int fd = fd_linked_to(getenv("CCTX_TRACE"));
    CHECK(fd >= 0);
    CHECK(close(fd) == 0);
    CHECK_EQ(open(data, O_RDWR | O_CREAT | O_TRUNC, 0600), fd);
    static char block[DATA_SIZE];
    memset(block, 'd', sizeof block);
    CHECK(write(fd, block, sizeof block) == (ssize_t)sizeof block);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel); /* events to write */
    cctx_cancel(cancel);
    cctx_release(c);
    CHECK_EQ(cctx_trace_flush(), EIO);
    CHECK_EQ(cctx_trace_flush(), 0); /* tracing is off now */
    exit(0);                         /* and at exit nothing is written either */
}

TEST(trace_stops_when_its_descriptor_is_a_file_of_the_programs)
{
    char *dir = make_temp_dir(), *trace, *data, *trace_env, *data_env;
    CHECK(asprintf(&trace, "%s/trace.json", dir) > 0);
    CHECK(asprintf(&data, "%s/data", dir) > 0);
    CHECK(asprintf(&trace_env, "CCTX_TRACE=%s", trace) > 0);
    CHECK(asprintf(&data_env, "TEST_DATA_FILE=%s", data) > 0);
    const char *env[] = {trace_env, data_env, NULL};
    struct child c;
    run_child("trace_descriptor_taken", env, &c);
    CHECK_OR_SAY(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
    CHECK_OR_SAY(strstr(c.err, "closed the trace file's descriptor, tracing off"), "%s", c.err);
    struct stat st;
    CHECK(stat(data, &st) == 0);
    CHECK_EQ(st.st_size, DATA_SIZE);
    FILE *f = fopen(data, "r");
    CHECK(f);
    int ch, others = 0;
    while ((ch = fgetc(f)) != EOF)
        others += ch != 'd';
    fclose(f);
    CHECK_EQ(others, 0);
    child_done(&c);
    remove_tree(dir);
    free(dir), free(trace), free(data), free(trace_env), free(data_env);
}

/* CCTX_DEBUG=inspect: once the inspect thread waits in accept, the socket's
 * descriptor is closed and the program's own listening socket gets its
 * number. The thread must stop (its socket's file goes) and leave the
 * program's connections to the program. */
CHILD(inspect_descriptor_taken)
{
    const char *dir = getenv("CCTX_INSPECT_DIR");
    char *ours, *mine;
    CHECK(asprintf(&ours, "%s/%ld.sock", dir, (long)getpid()) > 0);
    CHECK(asprintf(&mine, "%s/program.sock", dir) > 0);
    int fd = fd_bound_to(ours);
    CHECK(fd >= 0);
    wait_for_a_thread_in(SYS_accept4);
    CHECK(close(fd) == 0);
    CHECK_EQ(listen_at(mine), fd);
    /* The blocked accept still holds the inspect socket: a client it takes
     * wakes the thread, which must then see the number is no longer its. */
    close(connect_to(ours));
    for (int i = 0; exists(ours); i++) {
        CHECK(i < 5000);
        real_sleep_ms(1);
    }
    int client = connect_to(mine);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 5000), 1);
    int conn = accept(fd, NULL, NULL);
    CHECK(conn >= 0);
    close(conn);
    close(client);
    free(ours);
    free(mine);
}

TEST(inspect_stops_when_its_descriptor_is_a_socket_of_the_programs)
{
    /* The program's close races the inspect thread's use of the number: the
     * misuse this test makes on purpose, which ThreadSanitizer reports. */
    if (TEST_UNDER_TSAN)
        SKIP_IN_THIS_BUILD("ThreadSanitizer (a descriptor closed under a library thread)");
    char *dir = make_temp_dir(), *dir_env;
    CHECK(asprintf(&dir_env, "CCTX_INSPECT_DIR=%s", dir) > 0);
    const char *env[] = {"CCTX_DEBUG=inspect", dir_env, NULL};
    struct child c;
    run_child("inspect_descriptor_taken", env, &c);
    CHECK_OR_SAY(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s%s", c.out, c.err);
    CHECK_OR_SAY(strstr(c.err, "closed the socket's descriptor"), "%s", c.err);
    child_done(&c);
    remove_tree(dir);
    free(dir), free(dir_env);
}

/* ---- a relative directory -------------------------------------------------------------- */

/* CCTX_INSPECT_DIR is relative to the directory it started in: its socket
 * is there; the process then moves to / and exits. */
CHILD(inspect_relative_dir)
{
    char *sock;
    CHECK(asprintf(&sock, "%s/%ld.sock", getenv("CCTX_INSPECT_DIR"), (long)getpid()) > 0);
    CHECK(exists(sock));
    printf("pid %ld\n", (long)getpid());
    CHECK(chdir("/") == 0);
    free(sock);
}

TEST(inspect_socket_in_a_relative_dir_is_removed_after_a_chdir)
{
    /* A directory made in the temporary directory, named from there: no
     * `..` that / would answer, and a short absolute path, which a socket's
     * address must hold (this process's own; each test runs in its own). */
    char *base = temp_path_for(".");
    CHECK(chdir(base) == 0);
    free(base);
    char dir[] = "cctx-env-XXXXXX", *env_dir;
    CHECK(mkdtemp(dir) != NULL);
    CHECK(asprintf(&env_dir, "CCTX_INSPECT_DIR=%s", dir) > 0);
    const char *env[] = {"CCTX_DEBUG=inspect", env_dir, NULL};
    struct child c;
    run_child("inspect_relative_dir", env, &c);
    CHECK_OR_SAY(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
    long pid;
    CHECK(sscanf(c.out, "pid %ld", &pid) == 1);
    char *sock;
    CHECK(asprintf(&sock, "%s/%ld.sock", dir, pid) > 0);
    bool left = exists(sock);
    child_done(&c);
    remove_tree(dir);
    CHECK_OR_SAY(!left, "%s was left behind\n", sock);
    free(env_dir), free(sock);
}

/* ---- a set-user-ID program ------------------------------------------------------------- */

/* Says whether it runs in secure mode, then leaks a context: with the
 * switches on, `leaks,strict` would report it and exit 1. */
CHILD(privileged)
{
    printf("secure %d\n", getauxval(AT_SECURE) ? 1 : 0);
    fflush(stdout);
    cctx_t *leaked = cctx_with_cancel(cctx_background(), NULL);
    (void)leaked;
    cctx_trace_flush();
}

TEST(debug_switches_are_ignored_in_a_set_user_id_program)
{
    /* Root makes a copy of this program owned by nobody, set-user-ID, and
     * runs it: the kernel's secure mode, as for any set-user-ID program. */
    if (geteuid() != 0)
        SKIP_IN_THIS_BUILD("needs root, to make a set-user-ID copy of the tests");
    /* A set-user-ID exec turns address randomization back on, which
     * ThreadSanitizer cannot run with, and leaves /proc/self/environ
     * unreadable, so AddressSanitizer's leak checker misses the
     * ASAN_OPTIONS that turn it off, and fails where it cannot stop the
     * world. */
    if (TEST_UNDER_TSAN || TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("%s (a set-user-ID copy)",
                           TEST_UNDER_TSAN ? "ThreadSanitizer" : "AddressSanitizer");
    char *dir = make_temp_dir(), *exe, *trace_env, *inspect_env, *trace, *inspect;
    CHECK(chmod(dir, 0777) == 0); /* nobody could write the trace there */
    CHECK(asprintf(&exe, "%s/cctx-tests", dir) > 0);
    CHECK(asprintf(&trace, "%s/trace.json", dir) > 0);
    CHECK(asprintf(&inspect, "%s/inspect", dir) > 0);
    CHECK(asprintf(&trace_env, "CCTX_TRACE=%s", trace) > 0);
    CHECK(asprintf(&inspect_env, "CCTX_INSPECT_DIR=%s", inspect) > 0);
    const char *env[] = {"CCTX_DEBUG=leaks,strict,inspect", trace_env, inspect_env, NULL};

    /* Without set-user-ID, the switches are on: the program's copy shows it. */
    struct child c;
    run_child("privileged", env, &c);
    CHECK_OR_SAY(WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0, "%s", c.err);
    CHECK(exists(trace) && exists(inspect));
    child_done(&c);
    remove_tree(trace), remove_tree(inspect);

    copy_file("/proc/self/exe", exe, 0755);
    CHECK(chown(exe, 65534, 65534) == 0);
    CHECK(chmod(exe, 04755) == 0);
    run_child_of(exe, "privileged", env, &c);
    if (strstr(c.out, "secure 0"))
        SKIP_IN_THIS_BUILD("set-user-ID is not honoured here (a nosuid mount?)");
    CHECK_OR_SAY(strstr(c.out, "secure 1"), "%s%s", c.out, c.err);
    CHECK_OR_SAY(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
    CHECK_OR_SAY(!strstr(c.err, "never released"), "%s", c.err);
    CHECK(!exists(trace));
    CHECK(!exists(inspect));
    child_done(&c);
    remove_tree(dir);
    free(dir), free(exe), free(trace_env), free(inspect_env), free(trace), free(inspect);
}
