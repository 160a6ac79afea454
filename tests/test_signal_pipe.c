/* SPDX-License-Identifier: MIT */
/*
 * The descriptors through which the handler of <cctx/signal.h> wakes the
 * library's signal thread, when the program closes one of them (as a daemon
 * that closes every descriptor it did not open does). The closing of the
 * write end, and of both, is in test_signal.c; here the read end alone.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
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
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "signal watches' pipe") != NULL); /* a new one, said once */
    child_done(&c);
}
