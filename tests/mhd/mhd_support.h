/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the cctx-mhd tests: a raw HTTP/1.1 client over real sockets on
 * 127.0.0.1, and a "probe" handler that tells the test what it saw, with
 * events to wait on (started, ended) instead of sleeps.
 */
#ifndef CCTX_MHD_TEST_SUPPORT_H
#define CCTX_MHD_TEST_SUPPORT_H

#include <cctx/mhd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- raw client ------------------------------------------------------------ */

struct conn {
    int fd;
    size_t len; /* bytes of buf not yet consumed */
    char buf[1 << 16];
};
struct http_resp {
    int status; /* 0: the connection closed before a whole response */
    char headers[4096];
    char body[1 << 16];
    size_t body_len;
};
/* Connects to 127.0.0.1:port; fails the test on error. */
void conn_open(struct conn *c, uint16_t port);
void conn_send(struct conn *c, const char *text);
/* Reads one response (Content-Length framed), waiting up to 10 s. */
void conn_read(struct conn *c, struct http_resp *r);
void conn_close(struct conn *c);
/* Waits up to ms for the server to close c (EOF or reset); true if it did.
 * Any bytes it answers with are read over. */
bool conn_closed_within(struct conn *c, int ms);
/* Whether a new connection to 127.0.0.1:port is refused now (the
 * listening socket is shut down once shutdown has begun). */
bool conn_refused(uint16_t port);
/* Sends `request` (any bytes, several requests even) on a fresh connection
 * and reads one response into r, whose status must be `status`; a refusal
 * (>= 400) must also close the connection, so that nothing after it is read
 * as a request. */
void exchange(uint16_t port, const char *request, int status, struct http_resp *r);
/* One request on a fresh connection: "GET /path" plus extra header lines
 * ("Name: value\r\n" each, or ""). */
void http_get(uint16_t port, const char *path, const char *extra, struct http_resp *r);
/* The value of a response header (case-insensitive), copied into out, or false. */
bool resp_header(const struct http_resp *r, const char *name, char *out, size_t size);

/* Whether the server's context has a request named `name` ("GET /path")
 * under it: its headers are in, and it is not answered yet. */
/* The library's test hook (src/mhd): the workers waiting for work now. */
unsigned cctx__mhd_test_idle_workers(cctx_mhd_t *s);
/* Waits (10 s at most, then fails the test) until every one of the server's
 * n workers waits for work. */
void wait_idle_workers(cctx_mhd_t *s, unsigned n);
bool server_has_request(cctx_mhd_t *s, const char *name);

/* A handler that answers BIG_ANSWER_BYTES, far more than loopback's send
 * and receive buffers hold together (a few MB each at most), so that most
 * of it is still to be written when it returns; then it sets the
 * atomic_bool its arg points to. */
#define BIG_ANSWER_BYTES (32u << 20)
void answer_big(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg);

/* ---- the probe handler ------------------------------------------------------ */

struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool block;        /* wait for the context to end (at most 10 s) before answering */
    bool keep;         /* keep a reference on the context in `kept`            */
    int started, ended; /* handler runs that started / finished waiting         */
    int64_t t_started, t_ended; /* real clock, of the last run                   */
    cctx_cause_t cause;
    char msg[128], name[128], route[64], trace_id[33], span_id[17], parent_id[17];
    uint64_t id;
    int64_t remaining;
    cctx_t *kept;
    const char *body; /* answered; NULL: "ok\n" */
};
void probe_init(struct probe *p);
void probe_destroy(struct probe *p);
void probe_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg);
/* Waits until p->started (or ended) reaches n; false after timeout_ms. */
bool probe_wait_started(struct probe *p, int n, int timeout_ms);
bool probe_wait_ended(struct probe *p, int n, int timeout_ms);

/* A server on an ephemeral port with the probe as default handler. */
cctx_mhd_t *start_probe_server(struct probe *p, cctx_mhd_options_t *o);

/* Whether the executable at path exists and can be run. */
bool peer_exists(const char *path);
/* Runs argv, returns its exit status (-1 if it could not run); output to
 * the test's stdout. */
int run_peer(char *const argv[]);

#endif
