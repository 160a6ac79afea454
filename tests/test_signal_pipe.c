/* SPDX-License-Identifier: MIT */
/*
 * The descriptors through which the handler of <cctx/signal.h> wakes the
 * library's signal thread, when the program closes one of them (as a daemon
 * that closes every descriptor it did not open does). The closing of the
 * write end, and of both, is in test_signal.c; here the read end alone, and
 * the notice of the renewal on a stderr that nobody drains.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "signal_internal.h"
#include "support.h"

enum { MAX_FDS = 64 };

/* This process's descriptors from 3 up. */
static int fds_now(int fds[MAX_FDS])
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd < 3 || fd == dirfd(d))
            continue;
        CHECK(n < MAX_FDS);
        fds[n++] = fd;
    }
    closedir(d);
    return n;
}

/* The signal thread, held before its first step until `go`: it then holds
 * no reference to the read end, as between two of its reads. */
static atomic_bool go;
static void *(*thread_main)(void *);

static void *held_thread(void *arg)
{
    for (int i = 0; i < 10000 && !atomic_load(&go); i++)
        real_sleep_ms(1);
    return thread_main(arg);
}

static int create_held(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                       void *arg)
{
    thread_main = fn;
    return pthread_create(thread, attr, held_thread, arg);
}

/* Closes the read end of the new descriptors (the one without O_NONBLOCK:
 * the handler's end is non-blocking), then raises a watched signal, with
 * SIGPIPE at its default action (the process ends on it). */
CHILD(signal_wake_read_end_closed)
{
    CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    atomic_store_explicit(&cctx__signal_thread_create, create_held, memory_order_relaxed);
    int before[MAX_FDS], after[MAX_FDS];
    int n_before = fds_now(before);
    static const int usr1[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK(c != NULL);
    int n_after = fds_now(after), read_end = -1, made = 0;
    for (int i = 0; i < n_after; i++) {
        bool old = false;
        for (int k = 0; k < n_before; k++)
            old = old || before[k] == after[i];
        if (old)
            continue;
        made++;
        if (!(fcntl(after[i], F_GETFL) & O_NONBLOCK))
            read_end = after[i];
    }
    CHECK_EQ(made, 2);
    CHECK(read_end >= 0);
    CHECK_EQ(close(read_end), 0);
    CHECK_EQ(raise(SIGUSR1), 0); /* before: SIGPIPE from the handler's write */
    atomic_store(&go, true);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    cctx_release(c);
    _exit(0);
}

TEST(signal_watch_survives_the_program_closing_the_read_end_under_sigpipe)
{
    static const char *const no_env[] = {NULL};
    struct child c;
    run_child("signal_wake_read_end_closed", no_env, &c);
    printf("%s%s", c.out, c.err);
    if (WIFSIGNALED(c.status))
        printf("ended by signal %d\n", WTERMSIG(c.status));
    fflush(stdout); /* before a CHECK's abort */
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "signal watches' pipe") != NULL); /* a new one, said once */
    child_done(&c);
}

/* stderr a pipe that is full and that nobody drains (its read end kept
 * here, never read), as when the reader of a program's stderr stalls. The
 * program closes the write end of the library's descriptors; once the
 * thread has made new ones (the old read end is gone: it says so on stderr
 * next), a watched signal arrives. CHECK reports on stderr, so none comes
 * while stderr is the full pipe. */
CHILD(signal_renewal_notice_on_a_full_stderr)
{
    int real_stderr = dup(STDERR_FILENO), full[2];
    CHECK(real_stderr >= 0);
    CHECK_EQ(pipe(full), 0);
    CHECK_EQ(fcntl(full[1], F_SETFL, O_NONBLOCK), 0);
    static const char block[4096];
    while (write(full[1], block, sizeof block) > 0)
        ;
    while (write(full[1], block, 1) > 0)
        ;
    CHECK_EQ(errno, EAGAIN);
    CHECK_EQ(fcntl(full[1], F_SETFL, 0), 0); /* blocking, as a stderr is */

    int before[MAX_FDS], after[MAX_FDS];
    int n_before = fds_now(before);
    static const int usr1[] = {SIGUSR1};
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK(c != NULL);
    int n_after = fds_now(after), read_end = -1, write_end = -1, made = 0;
    for (int i = 0; i < n_after; i++) {
        bool old = false;
        for (int k = 0; k < n_before; k++)
            old = old || before[k] == after[i];
        if (old)
            continue;
        made++;
        *(fcntl(after[i], F_GETFL) & O_NONBLOCK ? &write_end : &read_end) = after[i];
    }
    CHECK_EQ(made, 2);
    CHECK(read_end >= 0 && write_end >= 0);
    struct stat old_read;
    CHECK_EQ(fstat(read_end, &old_read), 0);

    CHECK_EQ(dup2(full[1], STDERR_FILENO), STDERR_FILENO);
    close(write_end);
    bool renewed = false;
    for (int i = 0; i < 10000 && !renewed; i++) {
        struct stat now;
        renewed = fstat(read_end, &now) != 0 || now.st_ino != old_read.st_ino;
        if (!renewed)
            real_sleep_ms(1);
    }
    int raised = raise(SIGUSR1);
    int err = cctx_wait(c, CCTX_SEC(5));
    dup2(real_stderr, STDERR_FILENO);
    if (!renewed || raised != 0 || err != ECANCELED) {
        /* On stdout: a thread blocked in a write to stderr through stdio
         * (as the signal thread was, before) holds stderr's lock, and
         * CHECK's report would wait for it. */
        printf("renewed: %d, raise: %d, cctx_wait: %d (before: 0, the timeout, the thread "
               "blocked in its notice)\n",
               renewed, raised, err);
        fflush(stdout);
        _exit(1);
    }
    cctx_release(c);
    _exit(0);
}

TEST(signal_watch_goes_on_when_stderr_cannot_take_the_renewal_notice)
{
    if (TEST_UNDER_TSAN)
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports the library's close of a descriptor that "
                           "the test looks at (fstat) to see the renewal");
    static const char *const no_env[] = {NULL};
    struct child c;
    run_child("signal_renewal_notice_on_a_full_stderr", no_env, &c);
    printf("%s%s", c.out, c.err);
    fflush(stdout); /* before a CHECK's abort */
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}
