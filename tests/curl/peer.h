/* SPDX-License-Identifier: MIT */
/*
 * Peers for the cctx-curl tests and benchmarks: servers written by others
 * (Go's net/http, grpc-go, Node's http) run as child processes. Each prints
 * "port N" and then one line per event on its stdout, which is a pipe to
 * us; its stdin is a pipe too, whose closing ends it. Waiting on those
 * lines is how a test knows the peer got a request, or saw it canceled,
 * without sleeping and hoping.
 */
#ifndef CCTX_CURL_TEST_PEER_H
#define CCTX_CURL_TEST_PEER_H

#include <cctx.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct peer {
    pid_t pid;
    int out, in; /* its stdout (we read), its stdin (we close to end it) */
    int port;
    char buf[16384];
    size_t len;
    char url[64]; /* "http://127.0.0.1:PORT" */
};

/* The path of a built Go peer (httppeer, grpcpeer), or NULL when it was
 * not built (no Go). */
const char *peer_go(const char *name);
/* node's path, or NULL when node is not installed. */
const char *peer_node(void);
/* The Node peer script. */
const char *peer_node_script(void);

/* Starts the Go peer `name` (as peer_go finds it); skips the test (SKIP),
 * saying not_built, when it was not built, and fails it when it does not
 * start. peer_start_go starts the net/http peer (httppeer). */
void peer_start_go_named(struct peer *p, const char *name, const char *not_built);
void peer_start_go(struct peer *p);
/* Starts argv[0] (a path) and reads its "port N" line. false when it could
 * not start or said nothing within 20 s. */
bool peer_start(struct peer *p, const char *const argv[]);
/* Reads lines until one starts with prefix, for at most timeout_ms; copies
 * it (without the newline) to line and the CLOCK_MONOTONIC time at which
 * it was read to *arrival (either may be NULL). Lines that do not match are
 * dropped. */
bool peer_line(struct peer *p, const char *prefix, int timeout_ms, char *line, size_t n,
               int64_t *arrival);
/* Whether a line with prefix arrives within timeout_ms (dropping others). */
bool peer_quiet(struct peer *p, const char *prefix, int timeout_ms);
/* Ends the peer and waits for it. */
void peer_stop(struct peer *p);

/* The value of "key=" in a peer line: up to the next tab or space (or the
 * end), copied to out. false if absent. */
bool peer_field(const char *line, const char *key, char *out, size_t n);

/* A thread that waits for `count` lines starting with prefix from p, then
 * notes the time and cancels `cancel` with ECANCELED and msg "test cancel". */
struct canceller {
    struct peer *p;
    cctx_cancel_t *cancel;
    const char *prefix;
    int count;
    pid_t caller; /* canceller_start_polled's */
    int done_fd;  /* -1: cancel once the lines came */
    int64_t at;   /* CLOCK_MONOTONIC of the cancel */
    bool ok;      /* the lines came */
    bool polled;  /* caller was seen asleep in poll on done_fd */
    void *thread;
};
void canceller_start(struct canceller *c, struct peer *p, cctx_cancel_t *cancel,
                     const char *prefix, int count);
/* The same, but once the lines came it also waits (10 s at most) until the
 * thread `caller` sleeps in poll with done_fd (a context's cctx_done_fd)
 * among its descriptors: the cancel then tests that the descriptor is what
 * wakes the call, which a time bound cannot tell from the call's own
 * periodic wake-up on a loaded machine. */
void canceller_start_polled(struct canceller *c, struct peer *p, cctx_cancel_t *cancel,
                            const char *prefix, int count, pid_t caller, int done_fd);
void canceller_join(struct canceller *c);

int64_t mono_now(void); /* CLOCK_MONOTONIC, ns */



/* ---- libcurl around the tests ---- */
#include <curl/curl.h>

struct body {
    char data[4096];
    size_t len;
};
/* A CURLOPT_WRITEFUNCTION that keeps the first 4095 bytes in a body. */
size_t body_cb(char *ptr, size_t size, size_t nmemb, void *userdata);
/* An easy handle for url (printf format), writing into b (NULL: dropped). */
CURL *easy_for(struct body *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* curl_global_init before a test; after it, the thread's multi handle and
 * libcurl's global state freed, so leak checkers see nothing. */
void curl_test_begin(void);
void curl_test_end(void);
#endif
