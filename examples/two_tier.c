/* SPDX-License-Identifier: MIT */
/*
 * two_tier.c — a context carried across processes over HTTP: a frontend
 * (libmicrohttpd, <cctx/mhd.h>) that calls a backend through libcurl
 * (<cctx/curl.h>), each tier a process of its own on loopback.
 *
 *   cctx-http-demo           runs both tiers and a client that walks through
 *                            four scenes, checks what each tier reports, and
 *                            exits 0 when every scene went as described;
 *   cctx-http-demo --serve   runs both tiers until SIGINT or SIGTERM (for a
 *                            load test: the frontend's URL is printed first).
 *
 * The scenes:
 *   1. A call with an 800 ms budget and a trace: the budget shrinks from hop
 *      to hop (client -> frontend -> backend, each hop's grpc-timeout is what
 *      is left), and both tiers log the same trace id.
 *   2. A client that hangs up after 200 ms without telling its deadline, as
 *      `curl --max-time 0.2` does: the frontend's request context ends with
 *      "client disconnected", which aborts its call to the backend, whose
 *      request context ends the same way within milliseconds; each tier
 *      prints the cause.
 *   3. The live tree at the frontend's debug route while a call is in flight.
 *   4. Shutdown: SIGTERM to each tier, which drains and exits.
 *
 * Every line is stamped with the milliseconds since the demo started, on one
 * clock (CLOCK_MONOTONIC, shared by the three processes), so the order and
 * the gaps between processes read directly.
 */
#define _GNU_SOURCE /* pipe2 */
#include <cctx.h>
#include <cctx/curl.h>
#include <cctx/mhd.h>
#include <cctx/propagate.h>

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int64_t epoch; /* CLOCK_MONOTONIC at the demo's start, shared by the tiers */
static const char *tier = "client";

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms(int64_t ns)
{
    return (double)ns / 1e6;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One write per line, so the three processes' lines never interleave. */
    printf("%8.1f ms  %-8s  %s\n", ms(mono_now() - epoch), tier, line);
    fflush(stdout);
}

static void budget_text(const cctx_t *ctx, char *out, size_t size)
{
    int64_t left = cctx_remaining(ctx);
    if (left == CCTX_NO_DEADLINE)
        snprintf(out, size, "no deadline");
    else
        snprintf(out, size, "%.1f ms left", ms(left));
}

/* ---- The backend ------------------------------------------------------------ */

/* What ended the backend's last request, for the client to check (scene 2). */
static struct {
    pthread_mutex_t mu;
    char text[256];
} last_end = {PTHREAD_MUTEX_INITIALIZER, ""};

/* GET /lookup?q=...: 20 ms of work, or 5 s for q=slow, which only a hang-up
 * or a deadline cuts short. */
static void lookup(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)arg;
    const char *q = cctx_mhd_query(req, "q");
    const char *sent = cctx_mhd_header(req, CCTX_HEADER_GRPC_TIMEOUT);
    char trace[CCTX_TRACE_ID_HEX_SIZE], budget[64];
    cctx_trace_id_hex(cctx_trace_of(ctx), trace);
    budget_text(ctx, budget, sizeof budget);
    say("%s %s?q=%s  trace %s  %s (grpc-timeout %s)", cctx_mhd_method(req), cctx_mhd_path(req),
        q ? q : "", trace, budget, sent ? sent : "none");

    int64_t start = cctx_now();
    int err = cctx_sleep(ctx, q && strcmp(q, "slow") == 0 ? CCTX_SEC(5) : CCTX_MSEC(20));
    if (err != 0) {
        cctx_cause_t cause;
        cctx_cause(ctx, &cause);
        say("stopped its work after %.1f ms: %s (%d)", ms(cctx_now() - start), cause.msg,
            cause.code);
        /* cctx-vet:ignore=blocking: held for a snprintf, never across a wait */
        pthread_mutex_lock(&last_end.mu);
        snprintf(last_end.text, sizeof last_end.text, "%" PRId64 " %d %s", cause.when - epoch,
                 cause.code, cause.msg);
        pthread_mutex_unlock(&last_end.mu);
        cctx_mhd_status(resp, cause.code >= 400 && cause.code <= 599 ? cause.code : 503);
        return;
    }
    cctx_mhd_set_header(resp, "content-type", "text/plain");
    cctx_mhd_printf(resp, "backend trace %s, %s when it was called\n", trace, budget);
}

/* GET /last-end: how the backend's last unfinished request ended,
 * "<ns since the demo started> <code> <message>". */
static void last_ended(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)req, (void)arg;
    /* cctx-vet:ignore=blocking: held for one copy, never across a wait */
    pthread_mutex_lock(&last_end.mu);
    cctx_mhd_printf(resp, "%s", last_end.text);
    pthread_mutex_unlock(&last_end.mu);
}

/* ---- The frontend ----------------------------------------------------------- */

static uint16_t backend_port;

struct body {
    char data[4096];
    size_t len;
};

static size_t keep_body(char *ptr, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t take = size * n;
    if (take > sizeof b->data - 1 - b->len)
        take = sizeof b->data - 1 - b->len;
    memcpy(b->data + b->len, ptr, take);
    b->len += take;
    b->data[b->len] = '\0';
    return size * n;
}

/* GET /search?q=...: 30 ms of its own work, then the backend's lookup. */
static void search(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)arg;
    const char *q = cctx_mhd_query(req, "q");
    const char *sent = cctx_mhd_header(req, CCTX_HEADER_GRPC_TIMEOUT);
    char trace[CCTX_TRACE_ID_HEX_SIZE], budget[64], url[256];
    cctx_trace_id_hex(cctx_trace_of(ctx), trace);
    budget_text(ctx, budget, sizeof budget);
    say("%s %s?q=%s  trace %s  %s (grpc-timeout %s)", cctx_mhd_method(req), cctx_mhd_path(req),
        q ? q : "", trace, budget, sent ? sent : "none");

    CURL *easy;
    if (cctx_sleep(ctx, CCTX_MSEC(30)) == 0 && (easy = curl_easy_init()) != NULL) {
        struct body b = {.len = 0};
        snprintf(url, sizeof url, "http://127.0.0.1:%u/lookup?q=%s", backend_port,
                 q && strcmp(q, "slow") == 0 ? "slow" : "fast");
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
        budget_text(ctx, budget, sizeof budget);
        say("calls the backend with %s", budget);
        cctx_curl_result_t res;
        int err = cctx_curl_perform(ctx, easy, NULL, &res);
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);
        if (err == 0 && status == 200) {
            cctx_mhd_printf(resp, "frontend trace %s\n%s", trace, b.data);
            return;
        }
        if (err != 0)
            say("backend call ended: %s (%s)", strerror(err), res.msg);
    }
    if (cctx_err(ctx) != 0) {
        cctx_cause_t cause;
        cctx_cause(ctx, &cause);
        say("request ended: %s (%d)", cause.msg, cause.code);
        cctx_mhd_status(resp, cause.code >= 400 && cause.code <= 599 ? cause.code : 503);
    } else {
        cctx_mhd_status(resp, 502);
    }
}

/* ---- Running a tier --------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Serves until SIGTERM/SIGINT, then drains (1 s) and checks that everything
 * the tier opened is closed again. port_fd gets the port as a line. */
static int run_tier(bool is_backend, int port_fd)
{
    int fds_before = count_fds() - 1; /* less port_fd, closed once the port is written */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    /* The server's threads inherit this mask: the signals reach only the
     * main thread, in sigsuspend below. */
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    if (!is_backend)
        curl_global_init(CURL_GLOBAL_DEFAULT);

    cctx_mhd_options_t opts = CCTX_MHD_OPTIONS_INIT;
    opts.workers = 32;
    opts.queue = 256;
    opts.max_timeout = CCTX_SEC(10);
    opts.drain = CCTX_SEC(1);
    opts.debug_path = is_backend ? NULL : "/debug/cctx";
    cctx_mhd_t *srv =
        cctx_mhd_start(cctx_background(), &opts, NULL, NULL);
    if (!srv) {
        say("cannot start: %s", strerror(errno));
        return 1;
    }
    if (is_backend) {
        cctx_mhd_route(srv, "GET", "/lookup", lookup, NULL, 0);
        cctx_mhd_route(srv, "GET", "/last-end", last_ended, NULL, 0);
    } else {
        cctx_mhd_use_min_budget(srv, CCTX_MSEC(50));
        cctx_mhd_route(srv, "GET", "/search", search, NULL, 0);
    }
    dprintf(port_fd, "%u\n", cctx_mhd_port(srv));
    close(port_fd);

    sigset_t wait_set;
    pthread_sigmask(SIG_BLOCK, NULL, &wait_set);
    sigdelset(&wait_set, SIGTERM);
    sigdelset(&wait_set, SIGINT);
    while (!stop_signal)
        sigsuspend(&wait_set);
    say("%s: draining", strsignal(stop_signal));
    cctx_mhd_shutdown(srv, CCTX_SEC(1));
    cctx_mhd_free(srv);
    if (!is_backend) {
        cctx_curl_thread_cleanup();
        curl_global_cleanup();
    }
    int fds_after = count_fds();
    say("stopped; descriptors open: %d at start, %d now", fds_before, fds_after);
    return fds_after == fds_before ? 0 : 1;
}

/* Starts this program as a tier and returns its pid; *port gets its port. */
static pid_t start_tier(const char *self, const char *role, uint16_t *port)
{
    int p[2];
    char epoch_arg[32], backend_arg[16];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    /* The write end becomes the tier's descriptor 3; it must not be 3 here,
     * or dup2 would leave its close-on-exec flag set. */
    if (p[1] == 3) {
        int moved = fcntl(p[1], F_DUPFD_CLOEXEC, 4);
        close(p[1]);
        p[1] = moved;
    }
    snprintf(epoch_arg, sizeof epoch_arg, "%" PRId64, epoch);
    snprintf(backend_arg, sizeof backend_arg, "%u", backend_port);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 3);
    char *argv[] = {(char *)self, (char *)role, epoch_arg, backend_arg, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        errno = rc;
        return -1;
    }
    char line[16] = "";
    FILE *f = fdopen(p[0], "r");
    if (!f || !fgets(line, sizeof line, f) || atoi(line) <= 0) {
        if (f)
            fclose(f);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        errno = EIO;
        return -1;
    }
    fclose(f);
    *port = (uint16_t)atoi(line);
    return pid;
}

static int stop_tier(pid_t pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    if (waitpid(pid, &status, 0) != pid)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- The client's scenes ---------------------------------------------------- */

static uint16_t frontend_port;
static int failures;

static void expect(bool ok, const char *what)
{
    say("%s %s", ok ? "ok:  " : "FAIL:", what);
    if (!ok)
        failures++;
}

/* A GET from the client; body and status out. */
static int get(cctx_t *ctx, uint16_t port, const char *path, unsigned flags, struct body *b,
               long *status)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    b->len = 0;
    b->data[0] = '\0';
    *status = 0;
    CURL *easy = curl_easy_init();
    if (!easy)
        return ENOMEM;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, b);
    cctx_curl_opts_t opts = {.headers = NULL, .flags = flags};
    cctx_curl_result_t res;
    int err = cctx_curl_perform(ctx, easy, &opts, &res);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(easy);
    return err;
}

static void scene_budget_and_trace(void)
{
    printf("\n== 1. An 800 ms budget and one trace, carried over two hops\n");
    cctx_trace_t tr;
    int made = cctx_trace_new(&tr);
    CCTX_AUTO cctx_t *timed = cctx_with_timeout(cctx_background(), CCTX_MSEC(800), NULL);
    CCTX_AUTO cctx_t *ctx = made == 0 && timed ? cctx_with_trace(timed, &tr) : NULL;
    if (!ctx) {
        expect(false, "a trace and a context for the call");
        return;
    }
    char trace[CCTX_TRACE_ID_HEX_SIZE];
    cctx_trace_id_hex(&tr, trace);
    say("GET /search?q=cctx  trace %s  800 ms budget", trace);
    struct body b;
    long status;
    int err = get(ctx, frontend_port, "/search?q=cctx", 0, &b, &status);
    printf("%s", b.data);
    expect(err == 0 && status == 200, "the call answered 200");
    expect(strstr(b.data, "frontend trace") && strstr(b.data, "backend trace") &&
               strstr(strstr(b.data, "backend trace"), trace),
           "both tiers saw the client's trace id");
}

static void scene_hang_up(void)
{
    printf("\n== 2. A client that hangs up after 200 ms (as curl --max-time 0.2 does)\n");
    /* No grpc-timeout: the tiers do not know the client's limit, only that
     * it went away. */
    CCTX_AUTO cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(200), NULL);
    struct body b;
    long status;
    int err = get(ctx, frontend_port, "/search?q=slow", CCTX_CURL_NO_GRPC_TIMEOUT, &b, &status);
    int64_t hung_up = mono_now() - epoch;
    say("hung up (its 200 ms ran out: %s)", strerror(err));
    /* The backend records the end of its request; ask until it has one.
     * cctx-vet:ignore=background: ctx has already ended; this wait is new. */
    CCTX_AUTO cctx_t *patience = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    for (;;) {
        get(patience, backend_port, "/last-end", CCTX_CURL_NO_GRPC_TIMEOUT, &b, &status);
        if (b.len > 0 || cctx_sleep(patience, CCTX_MSEC(5)) != 0)
            break;
    }
    long long ended = 0;
    int code = 0;
    sscanf(b.data, "%lld %d", &ended, &code);
    say("the backend's request ended %.2f ms after the hang-up, code %d", ms(ended - hung_up),
        code);
    expect(err == ETIMEDOUT, "the client gave up after 200 ms");
    expect(code == 499 && strstr(b.data, "client disconnected"),
           "the backend's request context ended with \"client disconnected\" (499)");
    expect(b.len > 0 && ended - hung_up < CCTX_SEC(1), "... well within a second of the hang-up");
}

struct slow_call {
    pthread_t thread;
    cctx_t *ctx;
};

static void *slow_call_run(void *arg)
{
    struct slow_call *c = arg;
    struct body b;
    long status;
    get(c->ctx, frontend_port, "/search?q=slow", 0, &b, &status);
    return NULL;
}

static void scene_live_tree(void)
{
    printf("\n== 3. The frontend's live tree at its debug route, a call in flight\n");
    cctx_cancel_t *cancel;
    struct slow_call c = {.ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(3), &cancel)};
    if (!c.ctx || pthread_create(&c.thread, NULL, slow_call_run, &c) != 0) {
        expect(false, "a call in flight");
        cctx_release(c.ctx);
        return;
    }
    /* Wait until the backend has the call (the frontend's tree then holds
     * the request), by asking the frontend's tree. */
    CCTX_AUTO cctx_t *patience = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    struct body b;
    long status = 0;
    do
        get(patience, frontend_port, "/debug/cctx?format=text", CCTX_CURL_NO_GRPC_TIMEOUT, &b,
            &status);
    while (!strstr(b.data, "GET /search") && cctx_sleep(patience, CCTX_MSEC(5)) == 0);
    printf("GET /debug/cctx?format=text (also as HTML: http://127.0.0.1:%u/debug/cctx):\n%s\n",
           frontend_port, b.data);
    expect(status == 200 && strstr(b.data, "GET /search"),
           "the tree shows the request context by name");
    cctx_cancel(cancel);
    pthread_join(c.thread, NULL);
    cctx_release(c.ctx);
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && (strcmp(argv[1], "--backend") == 0 || strcmp(argv[1], "--frontend") == 0)) {
        epoch = strtoll(argv[2], NULL, 10);
        backend_port = (uint16_t)atoi(argv[3]);
        tier = argv[1] + 2;
        return run_tier(strcmp(tier, "backend") == 0, 3);
    }
    bool serve = argc == 2 && strcmp(argv[1], "--serve") == 0;
    if (argc > 1 && !serve) {
        fprintf(stderr, "usage: %s [--serve]\n", argv[0]);
        return 2;
    }
    epoch = mono_now();
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self[n] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pid_t backend = start_tier(self, "--backend", &backend_port);
    pid_t frontend = backend > 0 ? start_tier(self, "--frontend", &frontend_port) : -1;
    if (backend <= 0 || frontend <= 0) {
        perror("starting the tiers");
        return 1;
    }
    say("backend on 127.0.0.1:%u, frontend on 127.0.0.1:%u", backend_port, frontend_port);

    if (serve) {
        printf("http://127.0.0.1:%u/search?q=x\n", frontend_port);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, NULL);
        int sig;
        sigwait(&set, &sig);
    } else {
        scene_budget_and_trace();
        scene_hang_up();
        scene_live_tree();
        printf("\n== 4. Shutdown: SIGTERM to each tier\n");
    }
    int fe = stop_tier(frontend), be = stop_tier(backend);
    expect(fe == 0 && be == 0, "both tiers drained, closed every descriptor and exited 0");
    cctx_curl_thread_cleanup();
    curl_global_cleanup();
    if (!serve)
        printf("\n%s\n", failures ? "Some scenes did not go as described." : "Every scene went as described.");
    return failures ? 1 : 0;
}
