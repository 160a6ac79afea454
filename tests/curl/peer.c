/* SPDX-License-Identifier: MIT */
/* Peers as child processes: see peer.h. */
#define _GNU_SOURCE
#include "peer.h"

#include "harness.h"
#include "thread_syscall.h"

#include <cctx/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *peer_go(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", CCTX_CURL_PEER_DIR, name);
    return access(p, X_OK) == 0 ? p : NULL;
}

const char *peer_node(void)
{
    static const char *const where[] = {"/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

const char *peer_node_script(void)
{
    return CCTX_CURL_PEER_SRC "/httppeer.js";
}

bool peer_start(struct peer *p, const char *const argv[])
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    int out[2], in[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return false;
    if (pipe2(in, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(in[0]);
    p->out = out[0];
    p->in = in[1];
    if (rc != 0) {
        p->pid = -1;
        peer_stop(p);
        return false;
    }
    char line[128];
    if (!peer_line(p, "port ", 20000, line, sizeof line, NULL)) {
        peer_stop(p);
        return false;
    }
    p->port = atoi(line + 5);
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", p->port);
    return p->port > 0;
}

bool peer_line(struct peer *p, const char *prefix, int timeout_ms, char *line, size_t n,
               int64_t *arrival)
{
    int64_t end = mono_now() + (int64_t)timeout_ms * 1000000;
    size_t plen = strlen(prefix);
    for (;;) {
        char *nl;
        while ((nl = memchr(p->buf, '\n', p->len)) != NULL) {
            size_t l = (size_t)(nl - p->buf);
            bool match = l >= plen && memcmp(p->buf, prefix, plen) == 0;
            if (match && line && n > 0) {
                size_t c = l < n - 1 ? l : n - 1;
                memcpy(line, p->buf, c);
                line[c] = '\0';
            }
            memmove(p->buf, nl + 1, p->len - l - 1);
            p->len -= l + 1;
            if (match)
                return true;
        }
        int64_t left = end - mono_now();
        if (left <= 0)
            return false;
        struct pollfd pf = {.fd = p->out, .events = POLLIN};
        int r = poll(&pf, 1, (int)(left / 1000000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        if (p->len == sizeof p->buf)
            p->len = 0; /* a line longer than the buffer: drop it */
        ssize_t got = read(p->out, p->buf + p->len, sizeof p->buf - p->len);
        if (arrival)
            *arrival = mono_now();
        if (got <= 0)
            return false;
        p->len += (size_t)got;
    }
}

bool peer_quiet(struct peer *p, const char *prefix, int timeout_ms)
{
    return !peer_line(p, prefix, timeout_ms, NULL, 0, NULL);
}

void peer_stop(struct peer *p)
{
    if (p->in > 0)
        close(p->in);
    if (p->pid > 0) {
        /* Closing stdin ends each peer; a kill makes sure. */
        int st;
        for (int i = 0; i < 200; i++) {
            if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                p->pid = -1;
                break;
            }
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
        }
    }
    if (p->out > 0)
        close(p->out);
    p->in = p->out = -1;
    p->pid = -1;
}

bool peer_field(const char *line, const char *key, char *out, size_t n)
{
    size_t k = strlen(key);
    for (const char *s = line; (s = strstr(s, key)) != NULL; s++) {
        if ((s == line || s[-1] == '\t' || s[-1] == ' ') && s[k] == '=') {
            const char *v = s + k + 1;
            size_t l = strcspn(v, "\t ");
            if (l >= n)
                l = n - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return true;
        }
    }
    return false;
}

/* Whether thread tid sleeps in poll (or ppoll) waiting to read fd. The
 * call and the address of its array are in /proc/self/task/TID/syscall;
 * the array is read through /proc/self/mem, so that no sanitizer takes the
 * read of another thread's memory for a race. */
static bool sleeps_polling(pid_t tid, int fd)
{
    long nr;
    unsigned long addr = 0, n = 0;
    bool got = thread_syscall(tid, &nr, &addr, &n);
#ifdef SYS_poll
    bool in_poll = nr == SYS_poll || nr == SYS_ppoll;
#else
    bool in_poll = nr == SYS_ppoll;
#endif
    struct pollfd fds[64];
    if (!got || !in_poll || n == 0 || n > sizeof fds / sizeof *fds)
        return false;
    int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    CHECK(mem >= 0);
    ssize_t len = pread(mem, fds, n * sizeof *fds, (off_t)addr);
    close(mem);
    if (len != (ssize_t)(n * sizeof *fds))
        return false; /* it has just returned, and the array is gone */
    for (unsigned long i = 0; i < n; i++)
        if (fds[i].fd == fd && (fds[i].events & POLLIN))
            return true;
    return false;
}

static void *canceller_main(void *arg)
{
    struct canceller *c = arg;
    c->ok = true;
    for (int i = 0; i < c->count; i++) {
        if (!peer_line(c->p, c->prefix, 20000, NULL, 0, NULL)) {
            c->ok = false;
            break;
        }
    }
    /* The call wakes at least once a second (its own limit on libcurl's
     * poll) and may be seen between two polls: look until it is seen. */
    for (int64_t end = mono_now() + CCTX_SEC(10); c->ok && c->done_fd >= 0 && mono_now() < end;) {
        c->polled = sleeps_polling(c->caller, c->done_fd);
        if (c->polled)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    c->at = mono_now();
    cctx_cancel_cause(c->cancel, ECANCELED, "test cancel");
    return NULL;
}

void canceller_start_polled(struct canceller *c, struct peer *p, cctx_cancel_t *cancel,
                            const char *prefix, int count, pid_t caller, int done_fd)
{
    c->p = p;
    c->cancel = cancel;
    c->prefix = prefix;
    c->count = count;
    c->caller = caller;
    c->done_fd = done_fd;
    c->at = 0;
    c->ok = false;
    c->polled = false;
    pthread_t *t = malloc(sizeof *t);
    if (!t || pthread_create(t, NULL, canceller_main, c) != 0)
        abort();
    c->thread = t;
}

void canceller_start(struct canceller *c, struct peer *p, cctx_cancel_t *cancel, const char *prefix,
                     int count)
{
    canceller_start_polled(c, p, cancel, prefix, count, 0, -1);
}

void canceller_join(struct canceller *c)
{
    pthread_t *t = c->thread;
    pthread_join(*t, NULL);
    free(t);
    c->thread = NULL;
}

size_t body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (b) {
        size_t room = sizeof b->data - 1 - b->len;
        size_t c = n < room ? n : room;
        memcpy(b->data + b->len, ptr, c);
        b->len += c;
        b->data[b->len] = '\0';
    }
    return n;
}

CURL *easy_for(struct body *b, const char *fmt, ...)
{
    char url[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof url, fmt, ap);
    va_end(ap);
    CURL *e = curl_easy_init();
    if (!e)
        abort();
    if (b)
        b->len = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    return e;
}

void curl_test_begin(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
}

void curl_test_end(void)
{
    cctx_curl_thread_cleanup();
    curl_global_cleanup();
}

void peer_start_go_named(struct peer *p, const char *name, const char *not_built)
{
    const char *bin = peer_go(name);
    if (!bin)
        SKIP("%s", not_built);
    const char *argv[] = {bin, NULL};
    CHECK(peer_start(p, argv));
}

void peer_start_go(struct peer *p)
{
    peer_start_go_named(p, "httppeer", "the Go peer was not built (no Go 1.19 toolchain)");
}
