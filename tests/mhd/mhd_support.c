/* SPDX-License-Identifier: MIT */
/* Helpers of the cctx-mhd tests (mhd_support.h). */
#define _GNU_SOURCE
#include "mhd_support.h"

#include "harness.h"
#include "support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>

void conn_open(struct conn *c, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void conn_send(struct conn *c, const char *text)
{
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, text + off, n - off, MSG_NOSIGNAL);
        CHECK(w > 0);
        off += (size_t)w;
    }
}

/* Reads more bytes into c->buf; false on EOF, error or 10 s of silence. */
static bool fill(struct conn *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1)
        return false;
    if (c->len == sizeof c->buf)
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

void conn_read(struct conn *c, struct http_resp *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (!fill(c))
            return;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    size_t copy = hlen < sizeof r->headers - 1 ? hlen : sizeof r->headers - 1;
    memcpy(r->headers, c->buf, copy);
    r->headers[copy] = '\0';
    int status = 0;
    sscanf(r->headers, "HTTP/1.%*d %d", &status);
    char v[32];
    size_t clen = resp_header(r, "content-length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
    CHECK(clen < sizeof r->body);
    while (c->len < hlen + clen)
        if (!fill(c))
            return;
    memcpy(r->body, c->buf + hlen, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    r->status = status;
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
}

void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void exchange(uint16_t port, const char *request, int status, struct http_resp *r)
{
    static struct conn c;
    conn_open(&c, port);
    conn_send(&c, request);
    conn_read(&c, r);
    printf("%.40s... -> %d %s", request, r->status, r->body);
    CHECK_EQ(r->status, status);
    if (status >= 400)
        CHECK(conn_closed_within(&c, 5000));
    conn_close(&c);
}

bool conn_refused(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool no = connect(fd, (struct sockaddr *)&a, sizeof a) != 0;
    close(fd);
    return no;
}

void answer_big(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)req;
    char *body = malloc(BIG_ANSWER_BYTES);
    CHECK(body);
    memset(body, 'x', BIG_ANSWER_BYTES);
    CHECK_EQ(cctx_mhd_write(resp, body, BIG_ANSWER_BYTES), 0);
    free(body);
    atomic_store((atomic_bool *)arg, true);
}

bool conn_closed_within(struct conn *c, int ms)
{
    int64_t end = real_now() + CCTX_MSEC(ms);
    for (;;) {
        int64_t left = (end - real_now()) / CCTX_MSEC(1);
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) != 1)
            return false;
        char buf[512];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0)
            return true;
    }
}

void http_get(uint16_t port, const char *path, const char *extra, struct http_resp *r)
{
    static _Thread_local struct conn c;
    char req[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n", path,
             extra ? extra : "");
    conn_open(&c, port);
    conn_send(&c, req);
    conn_read(&c, r);
    conn_close(&c);
}

bool resp_header(const struct http_resp *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = strstr(r->headers, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            l += n + 1;
            while (*l == ' ')
                l++;
            const char *e = strstr(l, "\r\n");
            size_t len = e ? (size_t)(e - l) : strlen(l);
            if (len >= size)
                len = size - 1;
            memcpy(out, l, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

void probe_init(struct probe *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

void probe_destroy(struct probe *p)
{
    if (p->kept)
        cctx_release(p->kept);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

bool server_has_request(cctx_mhd_t *s, const char *name)
{
    char *text = dump_to_string(cctx_mhd_context(s), CCTX_DUMP_TEXT);
    bool has = strstr(text, name) != NULL;
    free(text);
    return has;
}

void wait_idle_workers(cctx_mhd_t *s, unsigned n)
{
    int64_t until = real_now() + 10 * (int64_t)1000000000;
    while (cctx__mhd_test_idle_workers(s) != n) {
        CHECK(real_now() < until);
        real_sleep_ms(1);
    }
}

void probe_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)req;
    struct probe *p = arg;
    pthread_mutex_lock(&p->mu);
    const char *name = cctx_name(ctx);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    const char *route = cctx_mhd_route_of(ctx);
    snprintf(p->route, sizeof p->route, "%s", route ? route : "(null)");
    p->id = cctx_mhd_request_id(ctx);
    p->remaining = cctx_remaining(ctx);
    const cctx_trace_t *tr = cctx_trace_of(ctx);
    if (tr) {
        cctx_trace_id_hex(tr, p->trace_id);
        cctx_span_id_hex(tr->span_id, p->span_id);
        cctx_span_id_hex(tr->parent_id, p->parent_id);
    }
    if (p->keep) {
        if (p->kept)
            cctx_release(p->kept);
        p->kept = cctx_ref(ctx);
    }
    p->t_started = real_now();
    p->started++;
    bool block = p->block;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);

    if (block)
        cctx_wait(ctx, CCTX_SEC(10));

    pthread_mutex_lock(&p->mu);
    p->t_ended = real_now();
    cctx_cause(ctx, &p->cause);
    snprintf(p->msg, sizeof p->msg, "%s", p->cause.msg ? p->cause.msg : "");
    p->cause.msg = p->msg;
    p->ended++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    const char *body = p->body ? p->body : "ok\n";
    cctx_mhd_write(resp, body, strlen(body));
}

static bool wait_count(struct probe *p, int *counter, int n, int timeout_ms)
{
    int64_t end = real_now() + CCTX_MSEC(timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (*counter < n) {
        int64_t left = end - real_now();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t t = (int64_t)ts.tv_sec * CCTX_SEC(1) + ts.tv_nsec + (left < CCTX_MSEC(50) ? left : CCTX_MSEC(50));
        ts.tv_sec = t / CCTX_SEC(1);
        ts.tv_nsec = t % CCTX_SEC(1);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool ok = *counter >= n;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

bool probe_wait_started(struct probe *p, int n, int timeout_ms)
{
    return wait_count(p, &p->started, n, timeout_ms);
}

bool probe_wait_ended(struct probe *p, int n, int timeout_ms)
{
    return wait_count(p, &p->ended, n, timeout_ms);
}

cctx_mhd_t *start_probe_server(struct probe *p, cctx_mhd_options_t *o)
{
    cctx_mhd_options_t def = CCTX_MHD_OPTIONS_INIT;
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), o ? o : &def, probe_handler, p);
    CHECK(s != NULL);
    CHECK(cctx_mhd_port(s) != 0);
    return s;
}

bool peer_exists(const char *path)
{
    return path && *path && access(path, X_OK) == 0;
}

int run_peer(char *const argv[])
{
    /* posix_spawn rather than fork: the test process has threads (and runs
     * under the sanitizers). */
    extern char **environ;
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
