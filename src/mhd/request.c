/* SPDX-License-Identifier: MIT */
/*
 * A request's context and the request accessors (responses: response.c).
 *
 * The context is built on libmicrohttpd's thread once the headers are in
 * (so the deadline also covers receiving the body):
 *
 *   server ctx -> trace (cctx_with_trace) -> request info (id, route)
 *              -> the request context: cancelable, with the deadline,
 *                 named "METHOD /path"
 *
 * The handler gets the last one, so the name, the values and the deadline
 * are all on its chain, and cctx_dump shows each request under the server
 * by name. Only the request context is held; the value contexts live as
 * long as it does.
 *
 * Lock order: none taken here (the routes are read without a lock).
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char info_key = 0; /* its address is the value key */

struct request_info {
    uint64_t id;
    char route[]; /* NUL-terminated */
};

uint64_t cctx_mhd_request_id(const cctx_t *ctx)
{
    const struct request_info *i = ctx ? cctx_value(ctx, &info_key) : NULL;
    return i ? i->id : 0;
}

const char *cctx_mhd_route_of(const cctx_t *ctx)
{
    const struct request_info *i = ctx ? cctx_value(ctx, &info_key) : NULL;
    return i ? i->route : NULL;
}

static void reject(struct cctx_mhd_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject(struct cctx_mhd_request *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->fail_msg, sizeof req->fail_msg, fmt, ap);
    va_end(ap);
    req->fail_status = status;
}

static bool route_matches(const struct mhd_route *r, const char *method, const char *path)
{
    if (r->method && strcmp(r->method, method) != 0)
        return false;
    if (r->prefix)
        return strncmp(path, r->path, r->path_len) == 0;
    return strcmp(path, r->path) == 0;
}

void cctx__mhd_format_duration(int64_t t, char *out, size_t size)
{
    static const struct {
        int64_t ns;
        char unit;
    } units[] = {{CCTX_SEC(3600), 'H'}, {CCTX_SEC(60), 'M'}, {CCTX_SEC(1), 'S'},
                 {CCTX_MSEC(1), 'm'},   {CCTX_USEC(1), 'u'}, {1, 'n'}};
    if (t <= 0) {
        snprintf(out, size, "0n");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (t % units[i].ns == 0 || units[i].ns == 1) {
            snprintf(out, size, "%lld%c", (long long)(t / units[i].ns), units[i].unit);
            return;
        }
    }
}

/* Copies at most 64 bytes of an untrusted header value into a message,
 * printable ASCII only. */
static void quote(char *out, size_t size, const char *v, size_t len)
{
    size_t n = 0;
    for (; n < len && n + 1 < size && n < 64; v++)
        out[n++] = (*v >= 0x20 && *v < 0x7f) ? *v : '?';
    out[n] = '\0';
}

/* The length of the first n bytes of v without the spaces and tabs at
 * their end: HTTP's optional whitespace, not part of a value (RFC 9110,
 * 5.5), which libmicrohttpd 0.9.75 leaves in. */
static size_t without_trailing_ows(const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n;
}

/* Every header line named `name`, with the lengths libmicrohttpd gives
 * for the values, not strlen's (a version that keeps a NUL inside a value
 * then has the trailing garbage refused; 0.9.75 ends the value at the NUL
 * itself), less the whitespace after a value, which HTTP says is not part
 * of it (RFC 9110, 5.5) and libmicrohttpd 0.9.75 leaves in. */
struct header_scan {
    const char *name;
    size_t name_len;
    unsigned count;
    const char *first;
    size_t first_len;
    /* tracestate only: the values joined with "," (the W3C rule for a
     * header sent on several lines); too_long when over the maximum. */
    bool join, too_long;
    size_t joined_len;
    char joined[CCTX_TRACESTATE_MAX + 1];
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    struct header_scan *h = cls;
    if (!key || key_size != h->name_len || strncasecmp(key, h->name, key_size) != 0)
        return MHD_YES;
    if (!value)
        value = "", value_size = 0;
    value_size = without_trailing_ows(value, value_size);
    if (h->count++ == 0) {
        h->first = value;
        h->first_len = value_size;
    }
    if (h->join && !h->too_long) {
        size_t sep = h->count > 1 ? 1 : 0;
        if (h->joined_len + sep + value_size > CCTX_TRACESTATE_MAX) {
            h->too_long = true;
        } else {
            if (sep)
                h->joined[h->joined_len++] = ',';
            memcpy(h->joined + h->joined_len, value, value_size);
            h->joined_len += value_size;
        }
    }
    return MHD_YES;
}

static void scan_headers(struct MHD_Connection *conn, struct header_scan *h, const char *name,
                         bool join)
{
    h->name = name;
    h->name_len = strlen(name);
    h->count = 0;
    h->first = NULL;
    h->first_len = 0;
    h->join = join;
    h->too_long = false;
    h->joined_len = 0;
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_header, h);
}

/* What libmicrohttpd 0.9.75 lets through and HTTP/1.1 has a server refuse
 * with 400 (RFC 9112): Host sent more than once (3.2: a proxy in front may
 * have routed or checked by one line, and a handler reads the other), a
 * header name that is no token (whitespace before its colon, which
 * libmicrohttpd keeps in the name, so that "grpc-timeout : 1S" would
 * otherwise be no deadline at all; or a folded line run into the name:
 * name_read_in_place), and a body framed two ways (Content-Length sent
 * twice, or with Transfer-Encoding; a list in one Content-Length line it
 * refuses itself). libmicrohttpd would take one framing and read what
 * follows as the next request, where a proxy in front may have taken the
 * other: a request smuggled past the proxy. So that answer also closes the
 * connection. The same goes for a Transfer-Encoding other than a lone
 * "chunked" (RFC 9112, 6.1: 400 when chunked is not the last coding, 501
 * for a coding the server does not know): libmicrohttpd 0.9.75 takes any
 * other value, or a second line, for a body that runs until the connection
 * closes, so the request was never answered, and the bytes a proxy sent
 * after the body it framed by chunked (the next client's request) were
 * swallowed as this one's body. */
struct request_lines {
    const char *bad_name;
    size_t bad_name_len;
    unsigned lengths; /* Content-Length lines */
    unsigned hosts;   /* Host lines */
    unsigned encoded; /* Transfer-Encoding lines */
    /* The codings of every Transfer-Encoding line, as one list. */
    unsigned codings;  /* non-empty elements */
    bool chunked_last; /* the last of them is "chunked" */
    const char *te;    /* the first line's value, for the message */
    size_t te_len;
};

/* Whether a header's name was read where it stood in the request. A line
 * that begins with whitespace continues the one before it (obs-fold, which
 * RFC 9112 has a server refuse or join to the value), and libmicrohttpd
 * 0.9.75 runs it into the previous header's *name*, in a copy of its own:
 * "grpc-timeout: 1S" then " 5S" gives the name "grpc-timeout5S", which is a
 * token, so the deadline went unseen, and a folded Content-Length or
 * Transfer-Encoding let the body be read as the next request. A name read
 * in place is followed in the same buffer by its colon (or the NUL written
 * over it), optional whitespace and its value; anything else is a name the
 * library made. Both lie in the connection's one memory pool, and the look
 * never goes past the value. Later versions of libmicrohttpd parse headers
 * anew, so the look is made only where its layout is known: built against
 * such a version and running with one (the shared library may be newer
 * than the headers). */
#if MHD_VERSION <= 0x00097500
static bool layout_known(void)
{
    static _Atomic uint32_t known; /* 0: not looked yet; 1: yes; 2: no */
    uint32_t k = cctx__atomic_load_relaxed(&known);
    if (k == 0) {
        unsigned a, b, c;
        const char *v = MHD_get_version();
        bool old = v && sscanf(v, "%u.%u.%u", &a, &b, &c) == 3 &&
                   (a == 0 && (b < 9 || (b == 9 && c <= 75)));
        k = old ? 1 : 2;
        cctx__atomic_store_relaxed(&known, k); /* racing lookers agree */
    }
    return k == 1;
}
#endif

static bool name_read_in_place(const char *key, size_t key_size, const char *value)
{
#if MHD_VERSION <= 0x00097500
    if (!value || !layout_known())
        return true;
    if (value <= key + key_size)
        return false;
    for (const char *p = key + key_size; p < value; p++)
        if (*p != '\0' && *p != ':' && *p != ' ' && *p != '\t')
            return false;
#else
    (void)key, (void)key_size, (void)value;
#endif
    return true;
}

static enum MHD_Result scan_line(void *cls, enum MHD_ValueKind kind, const char *key,
                                 size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    struct request_lines *l = cls;
    if (!key)
        return MHD_YES;
    if (!l->bad_name &&
        (!cctx__mhd_is_token(key, key_size) || !name_read_in_place(key, key_size, value))) {
        l->bad_name = key;
        l->bad_name_len = key_size;
    }
    if (key_size == 14 && strncasecmp(key, "Content-Length", 14) == 0) {
        l->lengths++;
    } else if (key_size == 4 && strncasecmp(key, "Host", 4) == 0) {
        l->hosts++;
    } else if (key_size == 17 && strncasecmp(key, "Transfer-Encoding", 17) == 0) {
        if (!value)
            value = "", value_size = 0;
        if (l->encoded++ == 0) {
            l->te = value;
            l->te_len = value_size;
        }
        /* A list of codings, its elements separated by commas with optional
         * whitespace; empty elements do not count (RFC 9110, 5.6.1). */
        for (size_t i = 0; i < value_size;) {
            size_t end = i;
            while (end < value_size && value[end] != ',')
                end++;
            size_t a = i, b = end;
            while (a < b && (value[a] == ' ' || value[a] == '\t'))
                a++;
            b = a + without_trailing_ows(value + a, b - a);
            if (b > a) {
                l->codings++;
                l->chunked_last = b - a == 7 && strncasecmp(value + a, "chunked", 7) == 0;
            }
            i = end + 1;
        }
    }
    return MHD_YES;
}

/* False after reject(). */
static bool lines_are_sound(struct cctx_mhd_request *req, bool http10)
{
    struct request_lines l = {0};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, scan_line, &l);
    if (l.bad_name) {
        char q[72];
        quote(q, sizeof q, l.bad_name, l.bad_name_len);
        reject(req, 400, "malformed header name: \"%s\"", q);
        /* It may have been a folded Content-Length or Transfer-Encoding:
         * how the body is framed is unknown. */
        req->fail_close = true;
        return false;
    }
    if (l.lengths > 1 || (l.lengths && l.encoded)) {
        reject(req, 400, "%s",
               l.encoded ? "both Content-Length and Transfer-Encoding"
                         : "more than one Content-Length");
        req->fail_close = true;
        return false;
    }
    /* Exactly the value libmicrohttpd frames as chunked: it compares the
     * whole value, so "chunked " too would be read until the close. */
    if (l.encoded && (l.encoded > 1 || l.te_len != 7 || strncasecmp(l.te, "chunked", 7) != 0)) {
        char q[72];
        quote(q, sizeof q, l.te, l.te_len);
        if (l.encoded > 1)
            reject(req, 400, "%s", "more than one Transfer-Encoding");
        else if (l.chunked_last && l.codings > 1)
            reject(req, 501, "unsupported Transfer-Encoding: \"%s\"", q);
        else if (l.chunked_last)
            reject(req, 400, "malformed Transfer-Encoding: \"%s\"", q);
        else
            reject(req, 400, "Transfer-Encoding without chunked last: \"%s\"", q);
        req->fail_close = true;
        return false;
    }
    /* HTTP/1.0 has no Transfer-Encoding: a server must take the framing
     * of such a message for faulty and close after it (RFC 9112, 6.1), as
     * an HTTP/1.0 hop in front framed it otherwise. */
    if (l.encoded && http10) {
        reject(req, 400, "%s", "Transfer-Encoding in an HTTP/1.0 request");
        req->fail_close = true;
        return false;
    }
    if (l.hosts > 1) {
        reject(req, 400, "%s", "more than one Host");
        return false;
    }
    return true;
}

/* The deadline and the message its cause will carry; false after reject(). */
static bool deadline_of(struct cctx_mhd_request *req, int64_t *budget, char *msg, size_t size)
{
    cctx_mhd_t *s = req->server;
    const char *hname = s->opt.deadline_header;
    *budget = CCTX_NO_DEADLINE;
    struct header_scan scan;
    scan_headers(req->conn, &scan, hname, false);
    if (scan.count > 1) {
        /* Two deadlines: which one the caller meant is unknown, and taking
         * either could let a proxy's stricter one be overridden. */
        reject(req, 400, "repeated %s header", hname);
        return false;
    }
    if (scan.count == 1) {
        const char *h = scan.first;
        int64_t t;
        if (cctx_grpc_timeout_parse(h, scan.first_len, &t) != 0) {
            char q[72];
            quote(q, sizeof q, h, scan.first_len);
            reject(req, 400, "malformed %s header: \"%s\"", hname, q);
            return false;
        }
        req->has_deadline = true;
        *budget = t;
        snprintf(msg, size, "deadline from %s: %.*s", hname, (int)scan.first_len, h);
    }
    char f[32];
    if (s->opt.max_timeout > 0 && s->opt.max_timeout < *budget) {
        *budget = s->opt.max_timeout;
        cctx__mhd_format_duration(*budget, f, sizeof f);
        snprintf(msg, size, "deadline from server maximum: %s", f);
    }
    if (req->route && req->route->max_timeout > 0 && req->route->max_timeout < *budget) {
        *budget = req->route->max_timeout;
        cctx__mhd_format_duration(*budget, f, sizeof f);
        snprintf(msg, size, "deadline from route maximum: %s", f);
    }
    return true;
}

/* The trace of this hop: a child span of a valid incoming traceparent (same
 * trace id, flags and tracestate; parent = the caller's span), or a new
 * trace. The ids come from the kernel's CSPRNG through a per-thread pool
 * (propagate.c), one system call per ten requests or so. NULL with errno
 * when the random source or memory fails. */
static cctx_t *trace_of_request(struct cctx_mhd_request *req, cctx_t *parent)
{
    cctx_trace_t tr;
    int err;
    /* Large (CCTX_TRACESTATE_MAX bytes) for libmicrohttpd's stack, but once
     * per request. A traceparent sent on two lines names no one caller:
     * joined as HTTP joins a header's lines, it is no valid traceparent, so
     * the request starts a new trace (W3C trace context's test suite asks
     * the same). */
    struct header_scan scan;
    scan_headers(req->conn, &scan, CCTX_HEADER_TRACEPARENT, false);
    if (scan.count == 1 && cctx_traceparent_parse(scan.first, scan.first_len, &tr) == 0) {
        scan_headers(req->conn, &scan, CCTX_HEADER_TRACESTATE, true);
        if (scan.count && !scan.too_long) /* a bad or too long one is dropped */
            cctx_tracestate_parse(scan.joined, scan.joined_len, &tr);
        err = cctx_trace_child(&tr, &tr);
    } else {
        err = cctx_trace_new(&tr);
    }
    if (err) {
        errno = err;
        return NULL;
    }
    return cctx_with_trace(parent, &tr);
}

/* Builds the request context; false with reject() set (500 when out of
 * memory). */
static bool derive(struct cctx_mhd_request *req)
{
    cctx_mhd_t *s = req->server;
    int64_t budget;
    char msg[128] = "";
    if (!deadline_of(req, &budget, msg, sizeof msg))
        return false;
    const char *rpath = req->route ? req->route->path : "";
    size_t rlen = strlen(rpath);
    struct request_info *info = malloc(sizeof *info + rlen + 1);
    cctx_t *traced = info ? trace_of_request(req, s->ctx) : NULL;
    if (!traced) {
        int err = info ? errno : ENOMEM;
        free(info);
        reject(req, 500, "%s", err == ENOMEM ? "out of memory" : "no random source for a trace id");
        return false;
    }
    info->id = cctx__atomic_fetch_add_relaxed(&s->next_id, 1) + 1;
    memcpy(info->route, rpath, rlen + 1);
    cctx_t *valued = cctx_with_value(traced, &info_key, info, free);
    cctx_release(traced); /* valued holds it */
    if (!valued) {
        reject(req, 500, "out of memory");
        return false;
    }
    if (budget == CCTX_NO_DEADLINE)
        req->ctx = cctx_with_cancel(valued, &req->cancel);
    else
        req->ctx = cctx_with_timeout_cause(valued, budget, 504, msg, &req->cancel);
    cctx_release(valued);
    if (!req->ctx) {
        reject(req, 500, "out of memory");
        return false;
    }
    req->run_ctx = req->ctx;
    char name[256];
    snprintf(name, sizeof name, "%s %s", req->method, req->path);
    cctx_set_name(req->ctx, name); /* a context without a name is still served */
    if (cctx_err(req->ctx) != 0) {
        /* Ended already (the parent, a budget of 0): answered now, before
         * any body is read for nothing. */
        const char *m;
        int st = cctx__mhd_status_of_ended(req->ctx, &m);
        reject(req, st, "%s", m);
    }
    return true;
}

/* A request whose context ends while its body arrives has its connection
 * closed at the next chunk (server.c); a client that stops sending would
 * hold it until the idle timeout, long after the deadline (the header's,
 * the server's or the route's maximum, the parent's). So while the body is
 * read, the connection's timeout (libmicrohttpd's: whole seconds without
 * traffic) is the time left, rounded up, when that is shorter; server.c
 * gives the idle timeout back once the body is in. */
static void time_body_by_deadline(struct cctx_mhd_request *req)
{
    int64_t left = cctx_remaining(req->ctx);
    if (left == CCTX_NO_DEADLINE)
        return;
    /* 0 would mean no timeout at all: a deadline due but not yet fired
     * gets the shortest one. */
    int64_t secs = left <= 0 ? 1 : left / CCTX_SEC(1) + (left % CCTX_SEC(1) != 0);
    unsigned idle = req->server->idle_secs; /* 0: none */
    if ((idle != 0 && secs >= idle) || secs > CCTX__MHD_TIMEOUT_SECS_MAX)
        return; /* longer than libmicrohttpd keeps: the connection's stands */
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)secs);
    req->body_timed = true;
}

struct cctx_mhd_request *cctx__mhd_request_begin(cctx_mhd_t *s, struct MHD_Connection *conn,
                                                 const char *url, const char *method,
                                                 const char *version, bool nul_in_path)
{
    struct cctx_mhd_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->server = s;
    req->conn = conn;
    req->method = method;
    req->path = url;
    req->fd = -1;
    atomic_init(&req->state, REQ_READING);
    req->handler = s->handler;
    req->arg = s->arg;

    bool stopping = cctx__atomic_load_seq_cst(&s->stopping);
    for (const struct mhd_route *r = cctx__atomic_load_acquire(&s->routes); r;
         r = cctx__atomic_load_acquire(&r->next)) {
        if (route_matches(r, method, url)) {
            req->route = r;
            req->handler = r->handler;
            req->arg = r->arg;
            break;
        }
    }
    if (stopping) {
        reject(req, 503, "server shutting down");
        return req;
    }
    if (nul_in_path) {
        reject(req, 400, "malformed path: %%00 (a NUL byte)");
        return req;
    }
    /* A 2xx answer to CONNECT turns the connection into a tunnel (RFC 9110,
     * 9.3.6). libmicrohttpd 0.9.75 makes none, yet sends such an answer as a
     * handler sets it: without Content-Length, as a tunnel's has, but with
     * the body after it, and then reads the next request. A client, or a
     * proxy in front, takes that body and every later answer on the
     * connection for bytes from the tunnel's far end. So CONNECT, which no
     * handler here can serve, is answered 501 and the connection closed. */
    if (strcmp(method, MHD_HTTP_METHOD_CONNECT) == 0) {
        reject(req, 501, "%s", "CONNECT is not supported");
        req->fail_close = true;
        return req;
    }
    if (!lines_are_sound(req, version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0))
        return req;
    /* Chunked (the only Transfer-Encoding let through), or a length > 0. */
    bool body = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                            MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && n > s->opt.max_body) {
            reject(req, 413, "request body too large");
            return req;
        }
        body = body || n > 0;
    }
    if (derive(req) && !req->fail_status && body)
        time_body_by_deadline(req);
    if (req->fail_status)
        return req;
    /* Counted for the drain from here until it is admitted or ends; counted
     * first, then `stopping` looked at again (both seq_cst, as shutdown
     * writes one and reads the other): shutdown sees the count, or this
     * request sees shutdown and is refused. */
    req->receiving = true;
    cctx__atomic_fetch_add_seq_cst(&s->receiving, 1);
    if (cctx__atomic_load_seq_cst(&s->stopping)) {
        cctx__mhd_stop_receiving(s, req);
        reject(req, 503, "server shutting down");
    }
    return req;
}

void cctx__mhd_request_free(struct cctx_mhd_request *req)
{
    if (req->run_ctx && req->run_ctx != req->ctx)
        cctx_release(req->run_ctx);
    cctx_release(req->ctx);
    if (req->response)
        MHD_destroy_response(req->response);
    free(req->body);
    for (struct mhd_trimmed *t = cctx__atomic_load_acquire(&req->trimmed), *next; t; t = next) {
        next = t->next;
        free(t);
    }
    free(req);
}

/* ---- request accessors ------------------------------------------------------ */

const char *cctx_mhd_method(const cctx_mhd_request_t *req)
{
    return req ? req->method : NULL;
}

const char *cctx_mhd_path(const cctx_mhd_request_t *req)
{
    return req ? req->path : NULL;
}

/* libmicrohttpd 0.9.75 leaves the spaces and tabs after a header's value
 * in it, which HTTP says are not part of it (RFC 9110, 5.5): a value that
 * has some is given as a copy without them, made once per value and kept
 * on the request. Pushed without a lock: a handler may share its request
 * with threads of its own. */
const char *cctx_mhd_header(const cctx_mhd_request_t *req, const char *name)
{
    if (!req || !name)
        return NULL;
    const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
    if (!v)
        return NULL;
    size_t len = without_trailing_ows(v, strlen(v));
    if (v[len] == '\0')
        return v;
    struct cctx_mhd_request *r = (struct cctx_mhd_request *)req;
    struct mhd_trimmed *head = cctx__atomic_load_acquire(&r->trimmed);
    for (struct mhd_trimmed *t = head; t; t = t->next)
        if (t->of == v)
            return t->value;
    struct mhd_trimmed *t = malloc(sizeof *t + len + 1);
    if (!t)
        return v; /* out of memory: as libmicrohttpd has it */
    t->of = v;
    memcpy(t->value, v, len);
    t->value[len] = '\0';
    t->next = head;
    while (!cctx__atomic_cas_weak_acq_rel(&r->trimmed, &t->next, t))
        ;
    return t->value;
}

const char *cctx_mhd_query(const cctx_mhd_request_t *req, const char *name)
{
    if (!req || !name)
        return NULL;
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v && MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
                                            strlen(name), NULL, NULL) == MHD_YES)
        return "";
    return v;
}

const char *cctx_mhd_body(const cctx_mhd_request_t *req, size_t *len)
{
    if (len)
        *len = req && req->body ? req->body_len : 0;
    return req && req->body ? req->body : "";
}

int cctx_mhd_limit(cctx_mhd_request_t *req, int64_t timeout, const char *msg)
{
    /* From the handler, a narrower context would not reach it (it has its
     * ctx already) and would only change the answer to an empty response. */
    if (!req || !req->run_ctx || !req->validating)
        return EINVAL;
    if (cctx_remaining(req->run_ctx) <= timeout)
        return 0;
    cctx_t *c = cctx_with_timeout_cause(req->run_ctx, timeout, 504,
                                        msg ? msg : "deadline from middleware", NULL);
    if (!c)
        return errno;
    char name[256];
    snprintf(name, sizeof name, "%s %s", req->method, req->path);
    cctx_set_name(c, name);
    if (req->run_ctx != req->ctx)
        cctx_release(req->run_ctx); /* c holds it */
    req->run_ctx = c;
    return 0;
}
