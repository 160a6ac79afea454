/* SPDX-License-Identifier: MIT */
/*
 * The parts of cctx-mhd and what they share.
 *
 *   server.c      starting, libmicrohttpd's callbacks (its one thread),
 *                 shutdown
 *   request.c     a request's context (deadline, trace, values, name) and
 *                 the request accessors
 *   response.c    what a handler answers, built into libmicrohttpd's response
 *   workers.c     the bounded queue and the worker pool that runs
 *                 middleware and handlers
 *   watch.c       the disconnect watcher: one thread, its own epoll set
 *   header_timeout.c  the deadline of a request's line and headers, which
 *                 the watcher enforces
 *   middleware.c  the validator chain and the built-in validators
 *   debug_route.c the route serving cctx_dump of the server's tree
 *
 * Lock order: server->lock, then watch->lock (never the other way: the
 * watcher takes only its own lock, and cancels outside it). Neither is held
 * while calling into libmicrohttpd, user code, or a cancellation.
 *
 * A request's life (its `state`):
 *   READING  on libmicrohttpd's thread: headers read, context derived, body
 *            being received. Only that thread touches the request.
 *   QUEUED   the connection is suspended and watched; the request is on the
 *            queue or with a worker. Only the worker touches it (the watcher
 *            reads ctx/cancel under watch->lock while the watch exists).
 *   DONE     the worker stored the response, removed the watch and resumed
 *            the connection; from then on only libmicrohttpd's thread
 *            touches it again (stored with release, read with acquire).
 */
#ifndef CCTX_MHD_INTERNAL_H
#define CCTX_MHD_INTERNAL_H

#include <cctx/mhd.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "../atomics.h"

enum { REQ_READING, REQ_QUEUED, REQ_DONE };

struct mhd_route {
    char *method; /* NULL: any */
    char *path;
    size_t path_len;
    bool prefix; /* the pattern ended in '*' */
    cctx_mhd_handler_fn *handler;
    void *arg;
    int64_t max_timeout;
    struct mhd_route *_Atomic next;
};

struct mhd_check {
    cctx_mhd_check_fn *fn;
    void *arg; /* the user's, or this entry for a built-in */
    int64_t nanos;
    size_t bytes;
    int status;
    char *name;
    cctx_mhd_t *server;
    struct mhd_check *_Atomic next;
};

struct mhd_header {
    char *name, *value;
    struct mhd_header *next;
};

struct cctx_mhd_response {
    int status;
    bool status_set; /* by cctx_mhd_status, not by default */
    struct mhd_header *headers, **tail;
    char *body;
    size_t len, cap;
    int err; /* the first ENOMEM: answered 500 */
};

struct cctx_mhd_request {
    cctx_mhd_t *server;
    struct MHD_Connection *conn;
    const char *method, *path; /* libmicrohttpd's, valid until completion */
    const struct mhd_route *route; /* NULL: the default handler */
    cctx_mhd_handler_fn *handler;
    void *arg;
    cctx_t *ctx;           /* the request context (one reference)           */
    cctx_cancel_t *cancel; /* its cancel handle                             */
    cctx_t *run_ctx;       /* ctx, or a narrower child made by cctx_mhd_limit */
    bool has_deadline;     /* the deadline header was present               */
    bool validating;       /* a validator runs: cctx_mhd_limit may narrow    */
    char *body;
    size_t body_len, body_cap;
    bool body_too_large, replied, counted;
    bool receiving;  /* counted in the server's `receiving` (see there)  */
    bool sending;    /* counted in the server's `sending` (see there)    */
    bool body_timed; /* the connection's timeout is the deadline's until the body is in */
    int fail_status; /* answered on libmicrohttpd's thread when non-zero */
    char fail_msg[192];
    bool fail_close; /* and the connection closed after that answer */
    _Atomic int state;
    struct MHD_Response *response; /* built by the worker */
    unsigned status;
    int fd;       /* the watched descriptor, -1 when not watched */
    uint32_t gen; /* the watch's generation                       */
    _Atomic(struct mhd_trimmed *) trimmed; /* cctx_mhd_header's copies */
    struct cctx_mhd_request *next;
};

/* A header value without the whitespace libmicrohttpd left after it, kept
 * until the request is freed (request.c: cctx_mhd_header). */
struct mhd_trimmed {
    struct mhd_trimmed *next;
    const char *of; /* libmicrohttpd's value */
    char value[];
};

struct mhd_watch_slot {
    uint32_t gen;
    struct cctx_mhd_request *req; /* suspended and watched for a hang-up */
    bool open;                    /* libmicrohttpd's connection, watched for its peer's end */
    bool fired;                   /* the one-shot registration reported: disabled until armed */
    bool busy;                    /* a request's line is in, the request not completed */
    bool served;                  /* a request of it completed */
    /* header_timeout.c: where the watcher stands in its search for the
     * first bytes of a later request (HDR_NEXT_*), and the kernel's count
     * of the bytes received when it began (HDR_NEXT_BYTES). Under `lock`. */
    unsigned char next;
    uint64_t received;
    /* Its header deadline (header_timeout.c): 0 none, HDR_* a clock not
     * yet read, else when (monotonic ns; INT64_MAX: no latest start). */
    _Atomic int64_t hdr;
};

/* The clock of a header deadline started since the watcher's last look,
 * which reads the time for it: at the connection's accept, or at the
 * completion of a request (the next one's latest start, after the idle
 * time; the watcher starts it earlier, at that request's first bytes). */
#define HDR_SINCE_START INT64_C(-1)
#define HDR_SINCE_COMPLETED INT64_C(-2)

/* A slot's `next` (header_timeout.c). */
enum {
    HDR_NEXT_NONE,      /* no later request awaited, or its clock runs       */
    HDR_NEXT_COUNT,     /* one completed: the next look reads the count      */
    HDR_NEXT_BYTES,     /* counted: four bytes more start the clock          */
    HDR_NEXT_LINE_ONLY, /* no count to read: only the request line starts it */
    HDR_NEXT_LINE,      /* the request line is in: the next look starts it   */
};

struct mhd_hdr_count; /* header_timeout.c */

/* A disconnect waiting for a canceller thread (see watch.c). */
struct mhd_hangup {
    cctx_t *ctx; /* a reference the watcher took */
    cctx_cancel_t *cancel;
    struct mhd_hangup *next;
};

#define MHD_MAX_CANCELLERS 64

struct mhd_watch {
    int epfd, wakefd;
    bool started;
    pthread_t thread;
    pthread_mutex_t lock;
    struct mhd_watch_slot *slots; /* indexed by descriptor */
    size_t nslots;
    atomic_bool stop;
    /* The cancellers, under `lock`. */
    pthread_cond_t hangup_ready;
    struct mhd_hangup *head, **tail;
    unsigned queued, idle, ncancellers;
    bool closing;
    pthread_t cancellers[MHD_MAX_CANCELLERS];
    bool close_idle; /* shutdown began: connections idle between requests are closed */
    /* header_timeout.c: the options (set before the watcher starts), and
     * the watcher's next look at the header deadlines (its own). */
    int64_t hdr_timeout;   /* ns; 0: none */
    int64_t hdr_idle;      /* ns granted an idle keep-alive connection first; < 0: no bound */
    int64_t hdr_next_look; /* monotonic ns */
    int64_t hdr_next_count;           /* monotonic ns: the next look that reads the byte counts */
    struct mhd_hdr_count *hdr_counts; /* the counts a look reads outside `lock` */
    size_t hdr_counts_cap;
};

/* linger.c: sockets closed with bytes unread, kept open a moment after
 * their FIN so that the client reads its answer before a reset. */
#define MHD_LINGER_MAX 64

struct mhd_linger {
    int epfd, wakefd;
    bool inited, started; /* inited: the lock and descriptors are set up */
    pthread_t thread;
    pthread_mutex_t lock; /* the slots and stop; taken by libmicrohttpd's thread */
    bool stop;
    int fds[MHD_LINGER_MAX]; /* -1: free; closed by the linger thread alone, or at stop */
    int64_t until[MHD_LINGER_MAX];
};

struct cctx_mhd {
    cctx_t *ctx;
    cctx_cancel_t *cancel;
    cctx_mhd_options_t opt; /* defaults filled in; strings owned */
    struct MHD_Daemon *daemon;
    int listen_fd;       /* ours until handed to libmicrohttpd, then -1 */
    unsigned idle_secs;  /* opt.idle_timeout for libmicrohttpd (0: none; at most
                            CCTX__MHD_TIMEOUT_SECS_MAX) */
    uint16_t port;
    cctx_mhd_handler_fn *handler;
    void *arg;

    pthread_mutex_t lock; /* routes, queue, counts, stopping */
    pthread_cond_t work;  /* workers: the queue has a request or closes */
    pthread_cond_t idle;  /* shutdown: a count it waits on went down */
    /* Append-only lists: appended under the lock, the new entry published
     * with a release store of the link; readers walk them without the lock
     * (acquire loads). */
    struct mhd_route *_Atomic routes, *_Atomic *routes_tail;
    struct mhd_check *_Atomic checks, *_Atomic *checks_tail;
    struct cctx_mhd_request *qhead, *qtail;
    unsigned qlen;
    unsigned idle_workers; /* waiting for work; a signalled one until it wakes */
    unsigned inflight;  /* queued or running                           */
    /* Suspended and not yet back on libmicrohttpd's thread. Atomic (seq_cst,
     * as `stopping`): that thread decrements it without the lock and takes
     * the lock to wake shutdown only once stopping is set. */
    atomic_uint suspended;
    /* Requests whose headers are in and that are not yet admitted, refused
     * or closed (their body is still arriving): the drain waits for them as
     * for those in flight. Atomic (seq_cst) for the same reason as
     * `suspended`; a request begun counts itself, then looks at `stopping`. */
    atomic_uint receiving;
    /* Answers queued with libmicrohttpd and not yet sent whole (from
     * MHD_queue_response to on_completed): MHD_stop_daemon would close
     * their connections mid-answer, so shutdown waits for them too, within
     * what is left of the drain. Atomic (seq_cst) as `suspended`. */
    atomic_uint sending;
    atomic_bool stopping; /* shutdown began: no new request is admitted; written under lock */
    bool drained;         /* the drain is over: a request still receiving is refused */
    bool closing;       /* workers exit                                */

    pthread_t *workers;
    unsigned nworkers;
    struct mhd_watch watch;
    struct mhd_linger linger;
    atomic_uint_fast64_t next_id;

    pthread_mutex_t shut_lock;
    bool shut;
};

/* server.c: takes one off a count shutdown waits on (`suspended`,
 * `receiving`, `sending`), without the lock unless shutdown may be waiting: seq_cst on
 * the count and on `stopping`, so either this thread sees stopping and wakes
 * shutdown, or shutdown sees the new count. */
void cctx__mhd_count_down(cctx_mhd_t *s, atomic_uint *count);

/* request.c, response.c */
/* nul_in_path: the undecoded path held "%00" (answered 400). version: the
 * request line's, as libmicrohttpd gives it. */
struct cctx_mhd_request *cctx__mhd_request_begin(cctx_mhd_t *s, struct MHD_Connection *conn,
                                                 const char *url, const char *method,
                                                 const char *version, bool nul_in_path);
void cctx__mhd_request_free(struct cctx_mhd_request *req);
void cctx__mhd_response_init(cctx_mhd_response_t *resp);
/* Whether the len bytes at s are an HTTP token, what a header field's name
 * must be (response.c). */
bool cctx__mhd_is_token(const char *s, size_t len);
/* Turns resp into req->response/status (resp is emptied). */
void cctx__mhd_response_finish(struct cctx_mhd_request *req, cctx_mhd_response_t *resp);
/* A duration in the unit letters of grpc-timeout, the largest unit that
 * divides it exactly ("80m", "1500u", "2S"), for cause messages. */
void cctx__mhd_format_duration(int64_t t, char *out, size_t size);
void cctx__mhd_response_text(cctx_mhd_response_t *resp, int status, const char *msg);

/* workers.c */
int cctx__mhd_workers_start(cctx_mhd_t *s);
void cctx__mhd_workers_stop(cctx_mhd_t *s);
/* Called on libmicrohttpd's thread for a complete request: suspends it and
 * queues it, or (queue full, shutdown) resumes it at once with a 503. */
/* Test hook: the workers waiting for work now. A test of the queue's bound
 * waits for all of them first: how fast workers get back to waiting is the
 * scheduler's business, not the server's. */
unsigned cctx__mhd_test_idle_workers(cctx_mhd_t *s);
void cctx__mhd_admit(cctx_mhd_t *s, struct cctx_mhd_request *req);
/* A request that counted as receiving and was neither admitted nor refused
 * there (answered early, or closed) stops counting: on libmicrohttpd's thread. */
void cctx__mhd_stop_receiving(cctx_mhd_t *s, struct cctx_mhd_request *req);
bool cctx__mhd_on_worker(const cctx_mhd_t *s);
/* The status for a request whose context ended before its handler ran, or
 * while it ran when the handler answered nothing of its own: the cause's
 * code when it is 400 to 599, else 504 for a deadline, else 503; *msg is
 * the cause's message (valid while ctx is held). */
int cctx__mhd_status_of_ended(const cctx_t *ctx, const char **msg);

/* The longest connection timeout, in seconds, that libmicrohttpd before
 * 1.0 (0.9.75 to 0.9.77) keeps: it turns the seconds given to
 * MHD_OPTION_CONNECTION_TIMEOUT and MHD_CONNECTION_OPTION_TIMEOUT into
 * milliseconds in 32 bits, so one more second (4294968 s, 49.7 days)
 * wrapped to 705 ms. A longer one is given as none (0), never as a shorter
 * one. Whatever MHD_VERSION says: the shared library run (same soname) may
 * be older than the headers built against, and none is never shorter than
 * asked with 1.0 either. */
#define CCTX__MHD_TIMEOUT_SECS_MAX (UINT32_MAX / 1000u)

/* CLOCK_MONOTONIC in nanoseconds: the watcher's looks (not cctx_now(),
 * which the fake clock moves; the watcher lives in real time). */
static inline int64_t cctx__mhd_mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * CCTX_SEC(1) + t.tv_nsec;
}

/* linger.c */
int cctx__mhd_linger_start(struct mhd_linger *l);
/* Stops the linger thread and closes every socket still lingering. */
void cctx__mhd_linger_stop(struct mhd_linger *l);
/* From libmicrohttpd's close report, before it closes fd: unless the
 * peer's end is in, keeps the socket open (a duplicate, its write side shut
 * down) for a moment, taken out of the watcher's set watch_epfd. */
void cctx__mhd_linger_close(struct mhd_linger *l, int fd, int watch_epfd);

/* watch.c */
/* header_timeout and idle: see struct mhd_watch (0 and < 0: none). */
int cctx__mhd_watch_start(struct mhd_watch *w, int64_t header_timeout, int64_t idle);
void cctx__mhd_watch_stop(struct mhd_watch *w);
/* A connection libmicrohttpd accepted (fd) starts, or closes before its
 * descriptor does: called on libmicrohttpd's thread. */
void cctx__mhd_watch_open(struct mhd_watch *w, int fd);
void cctx__mhd_watch_close(struct mhd_watch *w, int fd);
/* Watches req's connection for its hang-up. True when the connection's own
 * watch had already reported one (or there was none): a hang-up before now
 * would then reach the request only later, through a watch armed anew. */
bool cctx__mhd_watch_add(struct mhd_watch *w, struct cctx_mhd_request *req);
/* Whether req's client has gone (closed, reset, or shut down its writing
 * side, with nothing of its left unread), seen now, without waiting. */
bool cctx__mhd_peer_gone(const struct cctx_mhd_request *req);
void cctx__mhd_watch_remove(struct mhd_watch *w, struct cctx_mhd_request *req);
/* The connection of fd has a request begun (its request line is in) or
 * completed: on libmicrohttpd's thread. One that completes a request once
 * cctx__mhd_watch_close_idle has run is closed at once if idle. */
void cctx__mhd_watch_busy(struct mhd_watch *w, int fd, bool busy);
/* Shutdown began: closes every connection idle between requests now, and
 * from now on each that becomes idle (see watch.c). */
void cctx__mhd_watch_close_idle(struct mhd_watch *w);
/* The headers of the request on fd's connection are in (on_request's first
 * call): its header deadline is off. On libmicrohttpd's thread, without the
 * lock (header_timeout.c says why that is safe). */
void cctx__mhd_watch_headers_in(struct mhd_watch *w, int fd);
/* header_timeout.c, on the watcher: reads the clocks started since the last
 * look, starts those of later requests whose first bytes came, and shuts
 * down the connections past their header deadline, when the time for a
 * look has come; returns the wait until the next (ms, -1: none). */
int cctx__mhd_headers_look(struct mhd_watch *w);
/* Whether this thread is w's watcher or one of its cancellers: it may be
 * running an after-function of a request context, and shutdown joins it. */
bool cctx__mhd_on_watch(const struct mhd_watch *w);

/* middleware.c: 0, or the status to answer with msg. */
int cctx__mhd_run_checks(cctx_mhd_t *s, struct cctx_mhd_request *req, char *msg, size_t msg_size);
void cctx__mhd_checks_free(cctx_mhd_t *s);

/* debug_route.c */
void cctx__mhd_debug_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                             void *arg);

/* A library thread: every signal blocked, named. */
int cctx__mhd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name);
/* An epoll set with an eventfd in it (tagged CCTX__MHD_WAKE_TAG) to wake
 * its thread, then that thread: 0 or an errno. *epfd and *wakefd hold what
 * was made, for the caller's cleanup, also on failure. */
#define CCTX__MHD_WAKE_TAG UINT64_MAX
int cctx__mhd_loop_start(int *epfd, int *wakefd, pthread_t *t, void *(*fn)(void *), void *arg,
                         const char *name);

#endif
