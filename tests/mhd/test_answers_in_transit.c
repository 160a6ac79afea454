/* SPDX-License-Identifier: MIT */
/*
 * Shutdown and answers still being written: an answer larger than the
 * sockets' buffers is still going out when its handler has returned, and
 * MHD_stop_daemon closes its connection wherever the writing stands. The
 * drain lets such answers go out whole, and no longer than the drain.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_bool answered;

struct shutting {
    cctx_mhd_t *s;
    int64_t drain;
    int rc;
    atomic_bool done;
};

static void *shut_down(void *arg)
{
    struct shutting *sh = arg;
    sh->rc = cctx_mhd_shutdown(sh->s, sh->drain);
    atomic_store(&sh->done, true);
    return NULL;
}

/* A server answering BIG_ANSWER_BYTES, and a client whose request's answer has
 * begun to arrive (so it is queued with libmicrohttpd); the client has read
 * none of it. */
static cctx_mhd_t *answer_begun(struct conn *c)
{
    atomic_store(&answered, false);
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, answer_big, &answered);
    CHECK(s);
    conn_open(c, cctx_mhd_port(s));
    conn_send(c, "GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 10000), 1);
    for (int k = 0; !atomic_load(&answered); k++) {
        CHECK(k < 2000);
        real_sleep_ms(5);
    }
    return s;
}

/* Reads until the server closes c; returns how many bytes of the body came
 * (what follows the blank line after the headers). */
static size_t read_to_close(struct conn *c)
{
    static char buf[1 << 20];
    size_t total = 0, head = 0;
    char tail[4] = {0};
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (head) {
                total += (size_t)(n - i);
                break;
            }
            memmove(tail, tail + 1, 3);
            tail[3] = buf[i];
            if (memcmp(tail, "\r\n\r\n", 4) == 0)
                head = 1;
        }
    }
    return total;
}

/* The answer was begun before shutdown: before, MHD_stop_daemon closed its
 * connection a few ms into the shutdown, and the client got the few MB
 * that were in the sockets' buffers. */
TEST(mhd_shutdown_lets_an_answer_in_transit_go_out_whole)
{
    static struct conn c;
    cctx_mhd_t *s = answer_begun(&c);
    struct shutting sh = {s, CCTX_SEC(30), -1, false};
    pthread_t t;
    int64_t t0 = real_now();
    CHECK_EQ(pthread_create(&t, NULL, shut_down, &sh), 0);
    /* Reading only now: shutdown has had the time to close the connection
     * if it does (before, it returned within a few ms); it waits for the
     * answer instead. */
    for (int k = 0; k < 60 && !atomic_load(&sh.done); k++)
        real_sleep_ms(5);
    CHECK(!atomic_load(&sh.done));
    size_t got = read_to_close(&c);
    printf("body: %zu of %u bytes\n", got, BIG_ANSWER_BYTES);
    CHECK_EQ(got, BIG_ANSWER_BYTES);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(sh.rc, 0);
    CHECK(real_now() - t0 < CCTX_SEC(20)); /* it ended with the answer, not the drain */
    conn_close(&c);
    cctx_mhd_free(s);
}

/* An answer nobody reads holds shutdown until the drain ends, no longer;
 * then its connection is closed. With no drain (< 0) nothing waits for it. */
TEST(mhd_shutdown_cuts_an_answer_in_transit_when_the_drain_ends)
{
    static struct conn c;
    int64_t drains[] = {CCTX_MSEC(300), -1};
    for (size_t i = 0; i < sizeof drains / sizeof drains[0]; i++) {
        cctx_mhd_t *s = answer_begun(&c);
        struct shutting sh = {s, drains[i], -1, false};
        int64_t t0 = real_now();
        shut_down(&sh);
        int64_t took = real_now() - t0;
        printf("drain %lld ns: shutdown took %.3f s\n", (long long)drains[i], (double)took / 1e9);
        CHECK_EQ(sh.rc, 0);
        if (drains[i] > 0)
            CHECK(took >= drains[i]);
        CHECK(took < CCTX_SEC(10));
        CHECK(read_to_close(&c) < BIG_ANSWER_BYTES);
        conn_close(&c);
        cctx_mhd_free(s);
    }
}
