/* SPDX-License-Identifier: MIT */
/*
 * The lingering close (src/mhd/linger.c) as a client sees it: the end of
 * the answer arrives at once, not when the lingering is over; the server's
 * stop closes what still lingers; a child of fork() holding a lingering
 * socket leaves no registration behind in the linger thread's set.
 */
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Answered at the headers (413): the body is still unread when
 * libmicrohttpd closes, the case the lingering close is for. */
static const char too_large[] = "POST /upload HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 100000000000\r\n\r\n";

/* Milliseconds from a whole "Connection: close" answer to the end of the
 * connection. */
static double ms_to_end(uint16_t port)
{
    struct conn c;
    struct http_resp r;
    conn_open(&c, port);
    conn_send(&c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    conn_read(&c, &r);
    CHECK(r.status != 0);
    int64_t t0 = real_now();
    CHECK(conn_closed_within(&c, 5000));
    double ms = (double)(real_now() - t0) / 1e6;
    conn_close(&c);
    return ms;
}

/* The socket lingers for 500 ms, but its write side is shut down at once:
 * a client that reads to the end must not wait for the lingering. The best
 * of three, so that one stall of a loaded machine does not fail it, while
 * a server that sends its end only when the lingering is over takes at
 * least 500 ms every time. */
TEST(mhd_linger_end_reaches_client_at_once)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, NULL, NULL);
    CHECK(s != NULL);
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        double ms = ms_to_end(cctx_mhd_port(s));
        best = ms < best ? ms : best;
    }
    printf("end of the connection %.1f ms after the answer (best of 3)\n", best);
    CHECK(best < 400);
    cctx_mhd_free(s);
}

/* Opens a connection that the server answers 413 and then lingers on: the
 * client's end is not in, and the end of the server's is (the duplicate
 * exists once the client sees it). */
static void open_lingering(struct conn *c, uint16_t port)
{
    struct http_resp r;
    conn_open(c, port);
    conn_send(c, too_large);
    conn_send(c, "some of the body");
    conn_read(c, &r);
    CHECK_EQ(r.status, 413);
    CHECK(conn_closed_within(c, 5000));
}

/* Stopping the server closes the sockets still lingering, at once: none
 * outlives cctx_mhd_free, which does not wait out the 500 ms. */
TEST(mhd_linger_free_closes_lingering)
{
    int before = count_open_fds();
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, NULL, NULL);
    CHECK(s != NULL);
    struct conn c[4];
    for (int i = 0; i < 4; i++)
        open_lingering(&c[i], cctx_mhd_port(s));
    int64_t t0 = real_now();
    cctx_mhd_free(s);
    double ms = (double)(real_now() - t0) / 1e6;
    printf("cctx_mhd_free took %.1f ms\n", ms);
    CHECK(ms < 400);
    CHECK_EQ(count_open_fds(), before + 4); /* the clients' own */
    for (int i = 0; i < 4; i++)
        conn_close(&c[i]);
    CHECK_EQ(count_open_fds(), before);
}

/* How many descriptors this process's epoll sets hold registered, from
 * /proc/self/fdinfo ("tfd:" lines). */
static int epoll_registrations(void)
{
    DIR *d = opendir("/proc/self/fdinfo");
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the directory's own descriptor, closed by now */
        while (fgets(line, sizeof line, f))
            n += strncmp(line, "tfd:", 4) == 0;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* A child of fork() holds a duplicate of every lingering socket. The
 * linger thread's close then leaves the socket open, and, unless the
 * thread takes it out of its epoll set first, the registration stays:
 * ready for ever once the client's end is in, under a slot that is free or
 * holds another socket by then. */
TEST(mhd_linger_fork_child_leaves_no_registration)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, NULL, NULL);
    CHECK(s != NULL);
    int fds = count_open_fds(), regs = epoll_registrations();
    struct conn c;
    open_lingering(&c, cctx_mhd_port(s));
    /* The client's and the lingering one. The client sees the end at the
     * duplicate's shutdown, which comes before libmicrohttpd closes its
     * own descriptor: wait for that close. */
    int64_t closed_by = real_now() + CCTX_SEC(10);
    while (count_open_fds() != fds + 2 && real_now() < closed_by)
        real_sleep_ms(1);
    CHECK_EQ(count_open_fds(), fds + 2);
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        struct timespec ts = {.tv_sec = 10};
        nanosleep(&ts, NULL);
        _exit(0);
    }
    conn_close(&c); /* the linger thread reads the end, and closes */
    int64_t until = real_now() + CCTX_SEC(10);
    while (count_open_fds() != fds && real_now() < until)
        real_sleep_ms(5);
    CHECK_EQ(count_open_fds(), fds);
    int left = epoll_registrations() - regs;
    kill(pid, SIGKILL);
    CHECK_EQ(waitpid(pid, NULL, 0), pid);
    printf("registrations left behind: %d\n", left);
    CHECK_EQ(left, 0);
    cctx_mhd_free(s);
}
