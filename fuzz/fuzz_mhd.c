/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mhd: cctx-mhd's server fed raw bytes from the network. One server is
 * started once, on 127.0.0.1, with routes, validators and a debug route;
 * each input goes to it over a new TCP connection and the whole answer is
 * read back. The input is one control byte, then the bytes to send:
 *   bits 0-5  where to split the bytes in two writes (0: one write; k: at
 *             k/64 of them), so that a request line, a header or a chunk
 *             is cut where the server reads;
 *   bit 6     a pause of 200 us between the two writes, so that the server
 *             most likely reads the halves apart;
 *   bit 7     wait (up to 10 ms) for the answer to begin before shutting
 *             down the writing side; without it the server reads the end at
 *             once and takes the client for one that left (499).
 * Checked:
 *  - every answer, and every answer after it on the connection (pipelined
 *    requests), is "HTTP/1.1 " and a status of 100 to 599, headers that
 *    end, and a body of its Content-Length (none after a HEAD, a 1xx, 204
 *    or 304); the connection ends within 5 s of the client's end (a hang
 *    is a finding: libFuzzer's -timeout would find it later). The client's
 *    end is sent once the server has read every byte (see
 *    wait_server_read): libmicrohttpd 0.9.75 itself leaves a connection
 *    waiting when the end comes with the last bytes;
 *  - in the handler, what reached it was sound: a method and a path, a
 *    request id and a route, a body of at most the limit and NUL-terminated,
 *    a Content-Length of digits equal to the body's length, no
 *    Transfer-Encoding but "chunked" and never with Content-Length, a
 *    grpc-timeout that parses and bounds the remaining time, the server's
 *    maximum bounding it too, a trace whose parent is the traceparent the
 *    client sent (when it has one) and whose state is within bounds;
 *  - every 32 inputs, a well-formed request on a new connection is answered
 *    200 with the handler's body: the server still serves;
 *  - every 1024 inputs, the process has no more descriptors than at the
 *    start and a margin: connections are closed.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/mhd.h>
#include <cctx/propagate.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

#define MAX_BODY 4096                /* the server's: a larger body is 413 */
#define CHECK_BODY 1024              /* the max_body validator's           */
#define MAX_TIMEOUT CCTX_SEC(5)      /* the server's cap on every deadline */
#define ROUTE_TIMEOUT CCTX_MSEC(500) /* the POST /upload route's cap       */
#define ANSWER_MS 5000               /* from the client's end to the server's */

static cctx_mhd_t *server;
static uint16_t port;
static int fds_at_start;
static bool verbose; /* FUZZ_VERBOSE=1: print each answer */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll(2) of one descriptor for up to ms, taken up again for the time left
 * when a signal cuts it short: libFuzzer's timer (SIGALRM every -timeout/2
 * + 1 s, 6 s under run.sh) mostly lands on this thread, the main one, and
 * an interrupted wait says nothing of the server (taken for a silent one,
 * it once passed for a stall of libmicrohttpd's). */
static int poll_one(int fd, short events, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, ms);
        if (n >= 0 || errno != EINTR)
            return n;
        int64_t left = end - now_ms();
        ms = left > 0 ? (int)left : 0;
    }
}

/* A header value without the whitespace after it, which is not part of it
 * (the server strips it the same way). */
static size_t trimmed_len(const char *v)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void check_trace(const cctx_t *ctx, cctx_mhd_request_t *req)
{
    const cctx_trace_t *tr = cctx_trace_of(ctx);
    FUZZ_CHECK(tr != NULL);
    FUZZ_CHECK(!all_zero(tr->trace_id, sizeof tr->trace_id));
    FUZZ_CHECK(!all_zero(tr->span_id, sizeof tr->span_id));
    FUZZ_CHECK(tr->state_len <= CCTX_TRACESTATE_MAX);
    FUZZ_CHECK(tr->state[tr->state_len] == '\0' && strlen(tr->state) == tr->state_len);
    if (all_zero(tr->parent_id, sizeof tr->parent_id)) {
        /* A new trace: a state comes only beside a valid parent. */
        FUZZ_CHECK(tr->state_len == 0);
        return;
    }
    /* A child span: of the traceparent the client sent. */
    const char *tp = cctx_mhd_header(req, "traceparent");
    FUZZ_CHECK(tp != NULL);
    cctx_trace_t sent;
    FUZZ_CHECK(cctx_traceparent_parse(tp, trimmed_len(tp), &sent) == 0);
    FUZZ_CHECK(memcmp(sent.trace_id, tr->trace_id, sizeof sent.trace_id) == 0);
    FUZZ_CHECK(memcmp(sent.parent_id, tr->parent_id, sizeof sent.parent_id) == 0);
    FUZZ_CHECK(sent.flags == tr->flags);
    for (size_t i = 0; i < tr->state_len; i++) {
        unsigned char c = (unsigned char)tr->state[i];
        FUZZ_CHECK((c >= 0x20 && c < 0x7f) || c == '\t');
    }
}

static void check_framing(cctx_mhd_request_t *req, size_t body_len)
{
    const char *te = cctx_mhd_header(req, "transfer-encoding");
    const char *cl = cctx_mhd_header(req, "content-length");
    FUZZ_CHECK(!te || strcasecmp(te, "chunked") == 0);
    FUZZ_CHECK(!(te && cl));
    if (cl) {
        /* libmicrohttpd refuses a length that is not all digits. */
        FUZZ_CHECK(*cl && strspn(cl, "0123456789") == strlen(cl));
        FUZZ_CHECK(strtoull(cl, NULL, 10) == body_len);
    }
}

static void check_deadline(const cctx_t *ctx, cctx_mhd_request_t *req)
{
    int64_t left = cctx_remaining(ctx);
    FUZZ_CHECK(left <= MAX_TIMEOUT);
    if (strcmp(cctx_mhd_route_of(ctx), "/upload") == 0)
        FUZZ_CHECK(left <= ROUTE_TIMEOUT);
    const char *gt = cctx_mhd_header(req, "grpc-timeout");
    if (gt) {
        /* A malformed one is answered 400 before any handler runs. */
        int64_t t;
        FUZZ_CHECK(cctx_grpc_timeout_parse(gt, trimmed_len(gt), &t) == 0);
        FUZZ_CHECK(left <= t);
    }
}

static void handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)arg;
    const char *method = cctx_mhd_method(req), *path = cctx_mhd_path(req);
    FUZZ_CHECK(method && path);
    FUZZ_CHECK(cctx_mhd_request_id(ctx) > 0);
    const char *route = cctx_mhd_route_of(ctx);
    FUZZ_CHECK(route != NULL);
    size_t len = (size_t)-1;
    const char *body = cctx_mhd_body(req, &len);
    FUZZ_CHECK(body != NULL && len <= CHECK_BODY && body[len] == '\0');
    const char *name = cctx_name(ctx);
    if (name) { /* "METHOD /path", cut to the name's limit */
        size_t n = strlen(name) < strlen(method) ? strlen(name) : strlen(method);
        FUZZ_CHECK(strncmp(name, method, n) == 0);
    }
    check_framing(req, len);
    check_deadline(ctx, req);
    check_trace(ctx, req);

    if (strcmp(path, "/ping") == 0) {
        FUZZ_CHECK(cctx_mhd_write(resp, "pong\n", 5) == 0);
        return;
    }
    const char *status = cctx_mhd_query(req, "status");
    if (status) {
        int st = atoi(status);
        int err = cctx_mhd_status(resp, st);
        FUZZ_CHECK(err == ((st >= 200 && st <= 599) ? 0 : EINVAL));
    }
    /* A value with bytes a header cannot carry is refused here, or by
     * libmicrohttpd when the response is built (a 500). */
    const char *echo = cctx_mhd_header(req, "x-echo");
    if (echo) {
        int err = cctx_mhd_set_header(resp, "x-echo", echo);
        FUZZ_CHECK(err == 0 || err == EINVAL);
    }
    char id[CCTX_TRACE_ID_HEX_SIZE];
    cctx_trace_id_hex(cctx_trace_of(ctx), id);
    FUZZ_CHECK(cctx_mhd_printf(resp, "%s %zu %s %lld\n", route, len, id,
                               (long long)cctx_remaining(ctx)) == 0);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 2;
    o.queue = 16;
    o.max_timeout = MAX_TIMEOUT;
    o.max_body = MAX_BODY;
    o.debug_path = "/debug/cctx";
    server = cctx_mhd_start(cctx_background(), &o, handler, NULL);
    FUZZ_CHECK(server != NULL);
    port = cctx_mhd_port(server);
    FUZZ_CHECK(cctx_mhd_route(server, "POST", "/upload", handler, NULL, ROUTE_TIMEOUT) == 0);
    FUZZ_CHECK(cctx_mhd_route(server, NULL, "/r/*", handler, NULL, 0) == 0);
    FUZZ_CHECK(cctx_mhd_use_max_body(server, CHECK_BODY) == 0);
    FUZZ_CHECK(cctx_mhd_use_min_budget(server, CCTX_USEC(10)) == 0);
    fds_at_start = count_fds();
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

/* Each connection comes from the next address of 127.1.0.0 to
 * 127.254.255.255, from a start that differs from run to run: the client
 * sends its FIN first, so its end waits in TIME_WAIT for a minute, and a
 * thousand connections a second from one address would use up its ports. */
static int connect_server(void)
{
    static uint32_t next;
    if (next == 0)
        next = (uint32_t)getpid() * 2654435761u | 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f010000u + next++ % (254u << 16));
    FUZZ_CHECK(bind(fd, (struct sockaddr *)&from, sizeof from) == 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int err = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    if (err == EINTR) {
        /* A signal (libFuzzer's timer) cut the wait short; the connection
         * is still being made. */
        int n = poll_one(fd, POLLOUT, ANSWER_MS);
        socklen_t len = sizeof err;
        if (n != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = n == 0 ? ETIMEDOUT : errno;
    }
    if (err != 0) {
        fprintf(stderr, "fuzz_mhd: connect: %s\n", strerror(err));
        FUZZ_CHECK(!"the server accepts connections");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends what the server takes: it may close the connection early (an
 * answer that ends it), which is no finding. False once it has. */
static bool send_part(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (poll_one(fd, POLLOUT, ANSWER_MS) != 1) {
            fprintf(stderr, "fuzz_mhd: the server read nothing for %d ms\n", ANSWER_MS);
            FUZZ_CHECK(!"the server reads the request");
        }
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w < 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool is_peer(int s, const struct sockaddr_in *of)
{
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    return getpeername(s, (struct sockaddr *)&peer, &len) == 0 && peer.sin_family == AF_INET &&
           peer.sin_port == of->sin_port && peer.sin_addr.s_addr == of->sin_addr.s_addr;
}

/* The server's end of the connection whose client end is fd, found among
 * this process's descriptors by its peer's address: first just above fd,
 * where it usually is, then among all; -1 when there is none (not accepted
 * yet, or closed). */
static int server_end(int fd)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &len) != 0)
        return -1;
    for (int s = fd + 1; s < fd + 16; s++)
        if (is_peer(s, &me))
            return s;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(d));) {
        int s = atoi(e->d_name);
        if (s > 2 && s != fd && s != dirfd(d) && is_peer(s, &me))
            found = s;
    }
    closedir(d);
    return found;
}

/* Waits (at most 1 s) until the server has read every byte sent, or has
 * closed the connection. libmicrohttpd 0.9.75 (epoll, edge-triggered) takes a read that
 * returned less than it asked for as the socket drained: a FIN that came
 * with the last bytes raises no new event, and the end of a request it
 * still waits for is seen only at the idle timeout. A FIN sent once all is
 * read is seen at once, so the client's end is sent then. */
static void wait_server_read(int fd)
{
    int64_t end = now_ms() + 1000;
    while (now_ms() < end) {
        /* Acknowledged, so in the server's socket, and read from there. */
        int s = server_end(fd), unread = 0, unacked = 0;
        if (s >= 0 && ioctl(fd, SIOCOUTQ, &unacked) == 0 && unacked == 0 &&
            ioctl(s, FIONREAD, &unread) == 0 && unread == 0)
            return;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (s < 0 && poll(&pfd, 1, 0) == 1)
            return; /* not accepted yet, unless it has answered and closed */
        nanosleep(&(struct timespec){0, 50000}, NULL);
    }
}

/* The whole answer, until the server ends the connection (EOF or reset),
 * at most ANSWER_MS from now; what does not fit in buf is read over. */
static size_t read_answer(int fd, char *buf, size_t cap, bool *overflow)
{
    size_t len = 0;
    *overflow = false;
    int64_t end = now_ms() + ANSWER_MS;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0 || poll_one(fd, POLLIN, (int)left) != 1) {
            fprintf(stderr,
                    "fuzz_mhd: the connection did not end within %d ms; %zu bytes "
                    "of answer: \"%.*s\"\n",
                    ANSWER_MS, len, (int)(len < 300 ? len : 300), buf);
            int s = server_end(fd), unread = -1;
            if (s >= 0)
                ioctl(s, FIONREAD, &unread);
            struct tcp_info ti = {0};
            socklen_t tl = sizeof ti;
            if (s >= 0)
                getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl);
            fprintf(stderr,
                    "fuzz_mhd: the server's end: descriptor %d, %d bytes unread, "
                    "TCP state %u\n",
                    s, unread, (unsigned)ti.tcpi_state);
            fprintf(stderr,
                    "fuzz_mhd: client descriptor %d, %d descriptors open (%d at the "
                    "start)\n",
                    fd, count_fds(), fds_at_start);
            fprintf(stderr, "fuzz_mhd: the requests the server still holds:\n");
            cctx_dump(cctx_mhd_context(server), stderr, CCTX_DUMP_TEXT);
            FUZZ_CHECK(!"the server ends the connection after the client's end");
        }
        char spill[4096];
        char *to = len < cap ? buf + len : spill;
        size_t room = len < cap ? cap - len : sizeof spill;
        ssize_t n = recv(fd, to, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return len; /* EOF, or a reset after the answer */
        if (to == spill)
            *overflow = true;
        else
            len += (size_t)n;
    }
}

static const char *find(const char *p, const char *end, const char *s)
{
    return memmem(p, (size_t)(end - p), s, strlen(s));
}

/* The value of a header in [p, end) (the header block), or NULL. */
static const char *header_in(const char *p, const char *end, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *l = find(p, end, "\r\n"); l && l + 2 < end; l = find(l + 2, end, "\r\n")) {
        const char *h = l + 2;
        if ((size_t)(end - h) > n && strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (h < end && *h == ' ')
                h++;
            const char *e = find(h, end, "\r\n");
            *len = (size_t)((e ? e : end) - h);
            return h;
        }
    }
    return NULL;
}

static bool is_status_line(const char *p, const char *end)
{
    return end - p >= 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 && p[9] >= '1' && p[9] <= '5' &&
           p[10] >= '0' && p[10] <= '9' && p[11] >= '0' && p[11] <= '9' &&
           (p[12] == ' ' || p[12] == '\r');
}

/* Every answer on the connection is a whole HTTP/1.1 response (the last
 * one may be cut where buf overflowed). */
static void check_answers(const char *buf, size_t len, bool overflow)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        if (overflow && end - p < 13)
            return;
        if (!is_status_line(p, end)) {
            fprintf(stderr, "fuzz_mhd: not an answer at byte %zu of %zu: \"%.*s\"\n",
                    (size_t)(p - buf), len, (int)(end - p < 200 ? end - p : 200), p);
            FUZZ_CHECK(!"every answer starts with \"HTTP/1.1 \" and a status");
        }
        const char *head_end = find(p, end, "\r\n\r\n");
        if (!head_end && overflow)
            return;
        if (!head_end) {
            fprintf(stderr, "fuzz_mhd: headers cut at byte %zu: \"%.*s\"\n", len,
                    (int)(end - p < 300 ? end - p : 300), p);
            FUZZ_CHECK(!"an answer's headers end");
        }
        const char *body = head_end + 4;
        size_t vlen;
        const char *cl = header_in(p, head_end + 2, "content-length", &vlen);
        unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
        /* After a HEAD (or a 1xx, 204, 304) the length is there but not the
         * body: the next answer, or the end, comes right after the headers. */
        if (n > (unsigned long long)(end - body) ||
            (body + n < end && !is_status_line(body + n, end))) {
            if (body == end || is_status_line(body, end)) {
                p = body;
                continue;
            }
            if (overflow)
                return;
            fprintf(stderr, "fuzz_mhd: a body of %llu bytes, %zu there: \"%.*s\"\n", n,
                    (size_t)(end - body), (int)(end - p < 300 ? end - p : 300), p);
            FUZZ_CHECK(!"an answer's body is as long as its Content-Length");
        }
        p = body + n;
    }
}

static char answer[1 << 18];

/* A well-formed request on a new connection is answered 200 by the handler. */
static void check_serving(void)
{
    int fd = connect_server();
    static const char ping[] = "GET /ping HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
    FUZZ_CHECK(send_part(fd, (const uint8_t *)ping, sizeof ping - 1));
    bool overflow;
    size_t len = read_answer(fd, answer, sizeof answer, &overflow);
    close(fd);
    static const char ok[] = "HTTP/1.1 200 ";
    if (len < sizeof ok - 1 || memcmp(answer, ok, sizeof ok - 1) != 0 || len < 5 ||
        memcmp(answer + len - 5, "pong\n", 5) != 0) {
        fprintf(stderr, "fuzz_mhd: GET /ping answered \"%.*s\"\n", (int)(len < 300 ? len : 300),
                answer);
        FUZZ_CHECK(!"the server still serves");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long runs;
    if (size == 0)
        return 0;
    uint8_t control = data[0];
    const uint8_t *req = data + 1;
    size_t n = size - 1;
    size_t split = (size_t)(control & 63) * n / 64;

    int fd = connect_server();
    bool open = send_part(fd, req, split);
    if (open && split > 0 && (control & 64))
        nanosleep(&(struct timespec){0, 200000}, NULL);
    if (open)
        open = send_part(fd, req + split, n - split);
    if (open && (control & 128))
        poll_one(fd, POLLIN, 10);
    if (open)
        wait_server_read(fd);
    shutdown(fd, SHUT_WR);
    bool overflow;
    size_t len = read_answer(fd, answer, sizeof answer, &overflow);
    close(fd);
    if (verbose) {
        fprintf(stderr, "fuzz_mhd: %zu bytes sent, %zu of answer:\n", n, len);
        fwrite(answer, 1, len, stderr);
        fputc('\n', stderr);
    }
    check_answers(answer, len, overflow);

    runs++;
    if (runs % 32 == 0)
        check_serving();
    if (runs % 1024 == 0) {
        int fds = count_fds();
        if (fds > fds_at_start + 64) {
            fprintf(stderr, "fuzz_mhd: %d descriptors open, %d at the start\n", fds, fds_at_start);
            FUZZ_CHECK(!"connections are closed");
        }
    }
    return 0;
}
