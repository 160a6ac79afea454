/* SPDX-License-Identifier: MIT */
/*
 * The server: starting libmicrohttpd, its callbacks, routes, shutdown.
 *
 * libmicrohttpd runs one internal thread (epoll). Its access handler is
 * called several times per request:
 *   1. headers in: the request is looked up (route), checked (shutdown,
 *      Content-Length against max_body) and its context derived; an error
 *      found here is answered at once.
 *   2. body chunks: copied up to max_body, the rest discarded (413 at the
 *      end).
 *   3. end of the request: the connection's idle timeout given back if its
 *      deadline's stood in for it while the body was read (request.c);
 *      suspended and watched, then queued or refused (workers.c); a
 *      refused one is resumed at once with its 503.
 *   4. after the worker resumed the connection: the response it built is
 *      queued, and the request stops counting as suspended.
 * None of these waits for a worker or runs user code.
 *
 * Shutdown order (cctx_mhd_shutdown): stopping (no new request) ->
 * MHD_quiesce_daemon (no accept) -> keep-alives end (every answer queued
 * from now on closes its connection; idle connections closed) -> drain
 * (wait until nothing is in flight and no request begun before is still
 * receiving its body, bounded) -> cancel the server's context ("server
 * shutting down") -> wait until nothing is in flight and every suspended
 * connection is back on libmicrohttpd's thread -> wait until no answer is
 * still being written, within the drain -> MHD_stop_daemon -> workers ->
 * watcher.
 *
 * Lock order: server->lock (routes, queue, counts), then watch->lock;
 * shut_lock is taken first and alone, by shutdown only. No lock is held
 * across libmicrohttpd calls, user code or cancellation.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Every answer is queued here, and counts as being sent until
 * on_completed. Once shutdown has begun, each says "Connection: close", as
 * Go's Server.Shutdown disables keep-alives: libmicrohttpd then closes the
 * connection after it, so that a keep-alive client neither waits on it
 * until the daemon stops nor sends its next request into a server that
 * would refuse it. r was made for this request alone and is queued nowhere
 * else (response.c, reply_now), so adding the header races with no other
 * connection. Should the header not be added (out of memory), the answer
 * still goes out, and the connection is closed at the latest by the stop.
 * An answer queued just before `stopping` was set goes without it: its
 * connection is idle once it is sent, and on_completed closes it then.
 * libmicrohttpd closes after such an answer; linger.c keeps the socket
 * open a moment after its end, so bytes the client still sends (a
 * pipelined request, the rest of a body) do not reset it. */
static enum MHD_Result queue_answer(cctx_mhd_t *s, struct cctx_mhd_request *req, unsigned status,
                                    struct MHD_Response *r)
{
    if (cctx__atomic_load_seq_cst(&s->stopping))
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(req->conn, status, r);
    if (ret == MHD_YES && !req->sending) {
        req->sending = true;
        cctx__atomic_fetch_add_seq_cst(&s->sending, 1);
    }
    return ret;
}

static enum MHD_Result reply_now(cctx_mhd_t *s, struct cctx_mhd_request *req, int status,
                                 const char *msg, bool close)
{
    char body[256];
    int n = snprintf(body, sizeof body, "%s\n", msg);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        n > 0 ? (size_t)n < sizeof body ? (size_t)n : sizeof body - 1 : 0, body,
        MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = queue_answer(s, req, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

void cctx__mhd_count_down(cctx_mhd_t *s, atomic_uint *count)
{
    if (cctx__atomic_fetch_sub_seq_cst(count, 1) == 1 && cctx__atomic_load_seq_cst(&s->stopping)) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
    }
}

/* The request is back on libmicrohttpd's thread (shutdown also rechecks
 * `suspended` every 10 ms). */
static void uncount(cctx_mhd_t *s, struct cctx_mhd_request *req)
{
    if (!req->counted)
        return;
    req->counted = false;
    cctx__mhd_count_down(s, &s->suspended);
}

/* conn's descriptor, or -1. */
static int conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Its address is the *con_cls of a request whose path holds "%00". */
static char nul_in_path;
#define NUL_IN_PATH ((void *)&nul_in_path)

/* Called with the request target before libmicrohttpd decodes it in place;
 * what it returns is the request's *con_cls until on_request replaces it.
 * libmicrohttpd 0.9.75 decodes "%00" in the path to a NUL byte, and the
 * path everyone then reads (routes, cctx_mhd_path, the context's name) ends
 * there: "/admin%00.png", which a proxy in front matched as a picture,
 * would reach the route "/admin". That is no path a client can mean, so it
 * is answered 400 instead. The path runs to the '?': libmicrohttpd keeps a
 * '#' (which a client never sends) and what follows in it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    cctx_mhd_t *s = cls;
    /* The first call for a request: its connection is no longer idle (a
     * shutdown does not close it, see watch.c) until on_completed. */
    cctx__mhd_watch_busy(&s->watch, conn_fd(conn), true);
    for (const char *p = uri; *p && *p != '?'; p++)
        if (p[0] == '%' && p[1] == '0' && p[2] == '0') /* short-circuits at the NUL */
            return NUL_IN_PATH;
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    cctx_mhd_t *s = cls;
    struct cctx_mhd_request *req = *con_cls;
    if (!req || *con_cls == NUL_IN_PATH) {
        /* The first call: the headers are in, the header deadline is off. */
        cctx__mhd_watch_headers_in(&s->watch, conn_fd(conn));
        req = cctx__mhd_request_begin(s, conn, url, method, version, *con_cls == NUL_IN_PATH);
        if (!req)
            return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
        *con_cls = req;
        if (req->fail_status) {
            req->replied = true;
            return reply_now(s, req, req->fail_status, req->fail_msg,
                             req->fail_status == 503 || req->fail_close);
        }
        return MHD_YES;
    }
    if (cctx__atomic_load_acquire(&req->state) == REQ_DONE) {
        enum MHD_Result ret = MHD_NO;
        if (req->response) {
            ret = queue_answer(s, req, req->status, req->response);
            MHD_destroy_response(req->response);
            req->response = NULL;
        }
        req->replied = true;
        uncount(s, req);
        return ret;
    }
    if (req->replied) { /* answered at the headers: the body is not wanted */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* The request's context ended (its deadline, the parent, shutdown)
         * while the body still arrives: the answer is known, so reading the
         * rest would only hold the connection. libmicrohttpd 0.9.75 takes a
         * response only before the body is read, so this closes the
         * connection instead (a client past its deadline has stopped
         * waiting anyway). */
        if (req->ctx && cctx_err(req->ctx) != 0)
            return MHD_NO;
        if (req->body_too_large || req->body_len + n > s->opt.max_body) {
            req->body_too_large = true;
            return MHD_YES;
        }
        if (req->body_cap - req->body_len < n + 1) {
            size_t cap = req->body_cap ? req->body_cap : 1024;
            while (cap - req->body_len < n + 1)
                cap *= 2;
            char *b = realloc(req->body, cap);
            if (!b)
                return MHD_NO;
            req->body = b;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }
    if (req->body_timed) { /* the body is in: what follows has the idle timeout */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, s->idle_secs);
        req->body_timed = false;
    }
    req->replied = true;
    if (req->body_too_large) {
        cctx__mhd_stop_receiving(s, req);
        return reply_now(s, req, 413, "request body too large", false);
    }
    cctx__mhd_admit(s, req); /* queued, or refused: answered once resumed */
    req->replied = false;
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    cctx_mhd_t *s = cls;
    /* Idle now, or closing; once shutdown has begun, closed if idle. */
    cctx__mhd_watch_busy(&s->watch, conn_fd(conn), false);
    struct cctx_mhd_request *req = *con_cls;
    *con_cls = NULL;
    if (!req || req == NUL_IN_PATH) /* on_request never ran */
        return;
    uncount(s, req); /* resumed, but closed before the handler was called again */
    cctx__mhd_stop_receiving(s, req); /* closed while its body was arriving */
    /* Its answer went out whole (toe COMPLETED_OK), or its connection ended. */
    if (req->sending)
        cctx__mhd_count_down(s, &s->sending);
    cctx__mhd_request_free(req);
}

/* Every connection is watched for its peer's end from its start to its
 * close (watch.c says why). libmicrohttpd reports its close before it
 * closes the descriptor. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)socket_context;
    cctx_mhd_t *s = cls;
    int fd = conn_fd(conn);
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        cctx__mhd_watch_open(&s->watch, fd);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        cctx__mhd_watch_close(&s->watch, fd);
        cctx__mhd_linger_close(&s->linger, fd, s->watch.epfd);
    }
}

static int make_listener(const char *addr, uint16_t port, int *fd_out, bool *v6, uint16_t *bound)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        len = sizeof *a4;
        *v6 = false;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        len = sizeof *a6;
        *v6 = true;
    } else {
        return EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(*v6 ? a6->sin6_port : a4->sin_port);
    *fd_out = fd;
    return 0;
}

static char *dup_or(const char *s, const char *def)
{
    return strdup(s ? s : def);
}

/* Frees what start made; the daemon, threads and context must be gone. */
static void server_free(cctx_mhd_t *s)
{
    for (struct mhd_route *r = s->routes, *next; r; r = next) {
        next = cctx__atomic_load_relaxed(&r->next);
        free(r->method);
        free(r->path);
        free(r);
    }
    cctx__mhd_checks_free(s);
    free((char *)s->opt.bind_address);
    free((char *)s->opt.deadline_header);
    free((char *)s->opt.debug_path);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->shut_lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s);
}

/* The calls a program makes on its server from its own threads (start,
 * shutdown, free) are no cancellation points. The shutdown waits on
 * condition variables and joins libmicrohttpd's and our threads holding
 * shut_lock (and s->lock in its waits), and the start's failures close what
 * they opened and join what they started: all cancellation points. A thread
 * cancelled in one died with the shutdown half done and shut_lock held, so
 * the free that followed, or a second shutdown, waited for ever, or left a
 * failed start's socket and memory behind. They run with cancellation off
 * (a shutdown waits for its drain and for handlers in any case), and a
 * pthread_cancel acts at the thread's next cancellation point after the
 * call. Returns the state to give back. */
static int cancellation_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}

static void cancellation_back(int old)
{
    pthread_setcancelstate(old, NULL);
}

static cctx_mhd_t *start(cctx_t *parent, const cctx_mhd_options_t *options,
                         cctx_mhd_handler_fn *handler, void *arg)
{
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    if (options)
        o = *options;
    /* A deadline header that is no header name would never be seen. */
    if (!parent ||
        (o.deadline_header && !cctx__mhd_is_token(o.deadline_header, strlen(o.deadline_header))) ||
        o.max_timeout < 0 || (o.debug_path && o.debug_path[0] != '/')) {
        errno = EINVAL;
        return NULL;
    }
    cctx_mhd_t *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->listen_fd = -1;
    s->handler = handler;
    s->arg = arg;
    s->routes_tail = &s->routes;
    s->checks_tail = &s->checks;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->shut_lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->next_id, 0);
    atomic_init(&s->suspended, 0);
    atomic_init(&s->stopping, false);
    atomic_init(&s->receiving, 0);
    atomic_init(&s->sending, 0);
    s->watch.epfd = s->watch.wakefd = -1;

    s->opt = o;
    s->opt.bind_address = dup_or(o.bind_address, "127.0.0.1");
    s->opt.deadline_header = dup_or(o.deadline_header, CCTX_HEADER_GRPC_TIMEOUT);
    s->opt.debug_path = o.debug_path ? strdup(o.debug_path) : NULL;
    if (!s->opt.workers)
        s->opt.workers = 4;
    if (!s->opt.queue)
        s->opt.queue = 64;
    if (!s->opt.drain)
        s->opt.drain = CCTX_SEC(5);
    if (!s->opt.max_body)
        s->opt.max_body = 1024 * 1024;
    if (!s->opt.idle_timeout)
        s->opt.idle_timeout = CCTX_SEC(60);
    if (!s->opt.max_connections)
        s->opt.max_connections = 1000;
    if (!s->opt.header_timeout)
        s->opt.header_timeout = CCTX_SEC(10);
    /* libmicrohttpd counts the timeout in whole seconds (0: none): round up,
     * so that a timeout is never shorter than asked; past what it keeps,
     * none (a wrapped one would be far shorter). */
    int64_t idle_secs = s->opt.idle_timeout / CCTX_SEC(1) + (s->opt.idle_timeout % CCTX_SEC(1) > 0);
    s->idle_secs =
        s->opt.idle_timeout < 0 || idle_secs > CCTX__MHD_TIMEOUT_SECS_MAX ? 0 : (unsigned)idle_secs;
    int err = 0;
    if (!s->opt.bind_address || !s->opt.deadline_header || (o.debug_path && !s->opt.debug_path)) {
        err = ENOMEM;
        goto fail_early;
    }
    if (s->opt.debug_path &&
        (err = cctx_mhd_route(s, "GET", s->opt.debug_path, cctx__mhd_debug_handler, s, 0)) != 0)
        goto fail_early;
    bool v6;
    if ((err = make_listener(s->opt.bind_address, o.port, &s->listen_fd, &v6, &s->port)) != 0)
        goto fail_early;
    s->ctx = cctx_with_cancel(parent, &s->cancel);
    if (!s->ctx) {
        err = errno;
        goto fail_early;
    }
    char name[32];
    snprintf(name, sizeof name, "cctx-mhd :%u", (unsigned)s->port);
    cctx_set_name(s->ctx, name);
    /* An idle keep-alive connection may wait what libmicrohttpd gives it
     * before its next request's header deadline runs at the latest
     * (header_timeout.c). */
    int64_t idle = s->idle_secs ? (int64_t)s->idle_secs * CCTX_SEC(1) : -1;
    if ((err = cctx__mhd_watch_start(&s->watch, s->opt.header_timeout, idle)) != 0 ||
        (err = cctx__mhd_linger_start(&s->linger)) != 0 || (err = cctx__mhd_workers_start(s)) != 0)
        goto fail_threads;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* From here the listening socket is libmicrohttpd's: on several of its
     * failure paths (no polling thread, no epoll set) MHD_start_daemon
     * closes it itself, so closing it again here could close a descriptor
     * another thread has just been given under the same number. On the
     * paths where it does not (option parsing, which these fixed options
     * pass) it leaks, which is the lesser harm. errno is cleared so that a
     * failure which sets none is not reported with a stale value. */
    int lfd = s->listen_fd;
    s->listen_fd = -1;
    errno = 0;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, lfd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_CONNECTION_TIMEOUT, s->idle_secs,
        MHD_OPTION_CONNECTION_LIMIT, s->opt.max_connections, MHD_OPTION_END);
    if (!s->daemon) {
        err = errno ? errno : EAGAIN;
        goto fail_threads;
    }
    return s;

fail_threads:
    cctx__mhd_workers_stop(s);
    cctx__mhd_watch_stop(&s->watch);
    cctx__mhd_linger_stop(&s->linger);
    cctx_release(s->ctx);
fail_early:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    server_free(s);
    errno = err;
    return NULL;
}

cctx_mhd_t *cctx_mhd_start(cctx_t *parent, const cctx_mhd_options_t *options,
                           cctx_mhd_handler_fn *handler, void *arg)
{
    int cancellation = cancellation_off();
    cctx_mhd_t *s = start(parent, options, handler, arg);
    int err = errno;
    cancellation_back(cancellation);
    errno = err;
    return s;
}

uint16_t cctx_mhd_port(const cctx_mhd_t *server)
{
    return server ? server->port : 0;
}

cctx_t *cctx_mhd_context(const cctx_mhd_t *server)
{
    if (!server) {
        errno = EINVAL;
        return NULL;
    }
    return server->ctx;
}

int cctx_mhd_route(cctx_mhd_t *server, const char *method, const char *path,
                   cctx_mhd_handler_fn *handler, void *arg, int64_t max_timeout)
{
    if (!server || !path || !handler || max_timeout < 0)
        return EINVAL;
    struct mhd_route *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->path = strdup(path);
    r->method = method ? strdup(method) : NULL;
    if (!r->path || (method && !r->method)) {
        free(r->path);
        free(r->method);
        free(r);
        return ENOMEM;
    }
    r->path_len = strlen(path);
    if (r->path_len && path[r->path_len - 1] == '*') {
        r->prefix = true;
        r->path_len--;
    }
    r->handler = handler;
    r->arg = arg;
    r->max_timeout = max_timeout;
    atomic_init(&r->next, NULL);
    pthread_mutex_lock(&server->lock);
    bool stopping = cctx__atomic_load_seq_cst(&server->stopping);
    if (!stopping) {
        cctx__atomic_store_release(server->routes_tail, r);
        server->routes_tail = &r->next;
    }
    pthread_mutex_unlock(&server->lock);
    if (stopping) {
        free(r->path);
        free(r->method);
        free(r);
        return ECANCELED;
    }
    return 0;
}

static void deadline_to_timespec(int64_t deadline, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline / CCTX_SEC(1));
    ts->tv_nsec = (long)(deadline % CCTX_SEC(1));
}

/* The drain's clock: the real monotonic one (the clock of s->idle),
 * whatever clock cctx uses. */
static int64_t monotonic_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * CCTX_SEC(1) + now.tv_nsec;
}

/* With s->lock held: sleeps until a count shutdown waits on goes down, or
 * until `until` (the counts are looked at again after it, as the thread
 * that counts down wakes shutdown only once stopping is set). */
static void wait_idle_until(cctx_mhd_t *s, int64_t until)
{
    struct timespec ts;
    deadline_to_timespec(until, &ts);
    pthread_cond_timedwait(&s->idle, &s->lock, &ts);
}

/* The servers whose shutdowns this thread runs, innermost first (an
 * after-function of one may shut another down): their cancels run the
 * after-functions of the servers' and the requests' contexts here. */
struct shutdown_frame {
    const cctx_mhd_t *server;
    const struct shutdown_frame *outer;
};
static _Thread_local const struct shutdown_frame *shutting_down;

static bool shutting_down_here(const cctx_mhd_t *server)
{
    for (const struct shutdown_frame *f = shutting_down; f; f = f->outer)
        if (f->server == server)
            return true;
    return false;
}

static void shut_down(cctx_mhd_t *s, int64_t drain);

int cctx_mhd_shutdown(cctx_mhd_t *server, int64_t drain)
{
    if (!server)
        return EINVAL;
    /* A handler, or an after-function of a request context run by the
     * watcher or a canceller (a hang-up cancelled it): this call would join
     * the thread it runs on. Or an after-function that this very shutdown
     * runs: it would wait for itself. */
    if (cctx__mhd_on_worker(server) || cctx__mhd_on_watch(&server->watch) ||
        shutting_down_here(server))
        return EDEADLK;
    int cancellation = cancellation_off();
    shut_down(server, drain);
    cancellation_back(cancellation);
    return 0;
}

/* cctx_mhd_shutdown once the calling thread may run it. */
static void shut_down(cctx_mhd_t *s, int64_t drain)
{
    pthread_mutex_lock(&s->shut_lock);
    if (s->shut) {
        pthread_mutex_unlock(&s->shut_lock);
        return;
    }
    struct shutdown_frame frame = {s, shutting_down};
    shutting_down = &frame;
    pthread_mutex_lock(&s->lock);
    cctx__atomic_store_seq_cst(&s->stopping, true);
    pthread_mutex_unlock(&s->lock);
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    /* Quiesced, libmicrohttpd accepts no more, but the socket still
     * listens: the kernel would take new connections into its backlog, and
     * their clients would wait out the drain for a reset. Shut down, it
     * listens no more (new clients are refused, those in the backlog
     * reset), while the descriptor stays open until libmicrohttpd has
     * stopped, as it asks: one of its threads may still hold it. */
    if (lfd != MHD_INVALID_SOCKET)
        (void)shutdown(lfd, SHUT_RDWR);
    /* Keep-alives end, as in Go's Server.Shutdown: every answer queued from
     * now on closes its connection (queue_answer), and a connection idle
     * between requests is closed now, or as soon as it is (watch.c). */
    cctx__mhd_watch_close_idle(&s->watch);

    /* Drain: in-flight requests may finish on their own, and those whose
     * body is still arriving may come in and finish. The wait is on the
     * real monotonic clock (a condition variable), whatever clock cctx uses.
     * Once it is over, a request still receiving is refused when it comes
     * in (its context is about to end anyway). */
    int64_t end = 0; /* no drain: nor does anything wait for answers in transit */
    if (drain > 0) {
        end = monotonic_now();
        end = end > INT64_MAX - drain ? INT64_MAX : end + drain;
    }
    pthread_mutex_lock(&s->lock);
    if (drain > 0) {
        struct timespec ts;
        deadline_to_timespec(end, &ts);
        while (s->inflight > 0 || cctx__atomic_load_seq_cst(&s->receiving) > 0)
            if (pthread_cond_timedwait(&s->idle, &s->lock, &ts) == ETIMEDOUT)
                break;
    }
    s->drained = true;
    pthread_mutex_unlock(&s->lock);
    cctx_cancel_cause(s->cancel, 503, "server shutting down");
    pthread_mutex_lock(&s->lock);
    while (s->inflight > 0 || cctx__atomic_load_seq_cst(&s->suspended) > 0)
        wait_idle_until(s, monotonic_now() + CCTX_MSEC(10));
    /* Answers still being written: libmicrohttpd's stop would close their
     * connections mid-answer (a body shorter than its Content-Length), so
     * they get what is left of the drain to go out whole. */
    for (int64_t now; cctx__atomic_load_seq_cst(&s->sending) > 0 && (now = monotonic_now()) < end;)
        wait_idle_until(s, end - now > CCTX_MSEC(10) ? now + CCTX_MSEC(10) : end);
    pthread_mutex_unlock(&s->lock);

    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd); /* quiesced: libmicrohttpd handed the listening socket back */
    cctx__mhd_workers_stop(s);
    cctx__mhd_watch_stop(&s->watch);
    cctx__mhd_linger_stop(&s->linger); /* after the daemon: its last closes linger too */
    s->shut = true;
    shutting_down = frame.outer;
    pthread_mutex_unlock(&s->shut_lock);
}

void cctx_mhd_free(cctx_mhd_t *server)
{
    if (!server)
        return;
    if (cctx__mhd_on_worker(server) || cctx__mhd_on_watch(&server->watch) ||
        shutting_down_here(server)) {
        /* No unwinding out of the write (a cancellation point) instead of
         * the abort. */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        fprintf(stderr, "cctx-mhd: cctx_mhd_free called from a %s of the same server\n",
                cctx__mhd_on_worker(server)  ? "handler"
                : shutting_down_here(server) ? "after-function its shutdown runs"
                                             : "disconnect canceller");
        abort();
    }
    cctx_mhd_shutdown(server, server->opt.drain);
    cctx_release(server->ctx);
    server_free(server);
}
