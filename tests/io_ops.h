/* SPDX-License-Identifier: MIT */
/*
 * What the test_io*.c files share (tests/io_ops.c): the table of operations
 * that test_io.c runs through every scenario, the way a call is run on a
 * thread of its own, and the descriptor helpers that more than one of those
 * files needs. One copy, so that a scenario and a specific test of the same
 * call set it up alike.
 */
#ifndef CCTX_TEST_IO_OPS_H
#define CCTX_TEST_IO_OPS_H

#include <cctx.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SLOW_BOUND CCTX_SEC(5) /* "returns soon", generously */

/* ---- helpers ---------------------------------------------------------------- */

/* Returns once the thread whose tid will appear in *tid (0 until then) has
 * been seen asleep five times in a row, and fails the test if that takes
 * ten seconds: a test that went on would act before the call blocks, and
 * check another path than the one it is named for. */
void await_blocked(atomic_int *tid);

/* F_GETFL, checked: the tests compare flags before and after a call. */
int fd_flags(int fd);
void set_nonblock(int fd, bool on);

/* Bytes readable now, read without waiting (the fd's flags are put back). */
size_t drain(int fd, char *out, size_t cap);

/* Byte i of a stream, so that a lost, repeated or reordered byte shows. */
unsigned char pattern(size_t i);

/* A loopback TCP listener on a port the kernel picks; *addr is where it listens. */
int tcp_listener(struct sockaddr_in *addr, int backlog);

/* The SO_SNDTIMEO of 7 s that the connect set-ups give a socket is still
 * there: cctx_connect may change it while it waits, never for good. */
void check_sndtimeo(int fd);

/* ---- the table of operations ------------------------------------------------- */

/* Everything an operation needs; only its own parts are set up. */
struct fx {
    const struct op *op;
    bool nonblock;
    int fds[2];     /* pipe / socketpair: [0] the read side */
    int lfd, cfd;   /* listener, connecting socket */
    int filler;     /* the connection that fills a Unix backlog */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    size_t filled;  /* bytes written to fill fds[1] */
    int watch_fd, watch_flags; /* a descriptor whose flags must not change */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int signalled;
    sem_t sem, go;
    pthread_t target;
    bool target_joined;
    char buf[256];
    /* the call */
    cctx_t *ctx;
    pthread_t caller;
    atomic_int tid;
    long result;
    int err; /* 0, or the call's error number (errno or returned) */
    int64_t elapsed, ended; /* real_now() when the call returned */
};

struct op {
    const char *name;
    void (*setup)(struct fx *f);       /* a state in which the call blocks */
    int (*call)(struct fx *f);         /* 0 or the error; result in f->result */
    void (*ready)(struct fx *f);       /* make the call succeed */
    void (*check_ok)(struct fx *f);    /* after success */
    void (*check_untouched)(struct fx *f); /* after failure, with ready() done */
    void (*teardown)(struct fx *f);
};

/* One per call of <cctx/io.h>; io_ops.c says, at each, what it blocks on. */
extern const struct op op_read, op_write, op_recv, op_send, op_poll, op_accept, op_connect,
    op_cond, op_mutex, op_sem, op_join;

/* op_read's ready and check_ok, for a read set up by hand (a pty, say):
 * "hello" goes into fds[1], and the call must have read just that. */
void write_hello(struct fx *f);
void read_ok(struct fx *f);

/* ---- running a call ---------------------------------------------------------- */

/* f->op->call(f) on a thread of its own, so that the main thread can act
 * while it blocks; its tid appears in f->tid for await_blocked. finish_call
 * joins that thread and returns the call's error (0 on success). */
void start_call(struct fx *f, cctx_t *ctx);
int finish_call(struct fx *f);

#endif
