/* SPDX-License-Identifier: MIT */
/*
 * echo.c — a TCP echo server that shuts down cleanly on SIGINT or SIGTERM.
 *
 *   cctx-echo [--port N] [--drain-ms N]   serve on 127.0.0.1:N (default 7007)
 *   cctx-echo --self-test                 a scripted run in one process
 *
 * What it shows:
 *
 *   - cctx_with_signals: the server's context ends when SIGINT or SIGTERM
 *     arrives (Go's signal.NotifyContext), with the signal as its cause;
 *   - cctx_accept on that context: the accept loop stops the moment the
 *     signal arrives, with nothing polled by hand;
 *   - one context per connection, named after the peer, under a grace
 *     context of the server's (cctx_with_grace): the signal stops accepting
 *     without cutting connections in the middle of a request, and the grace
 *     context ends the drain period after the signal, which cuts every
 *     connection still open, each reporting "grace period of 2s after:
 *     signal: terminated" (Go's http.Server.Shutdown with a deadline);
 *   - cctx_read / cctx_write: a connection thread blocked in read wakes when
 *     its context ends, and learns why from cctx_cause;
 *   - cctx_cancel_and_wait on the connections' parent: the server knows when
 *     every connection thread has let go of its context, and when one does
 *     not (a handler stuck in a call that does not listen to its context),
 *     it says which, with where its context was made, its references and its
 *     cause, instead of hanging or exiting under its feet.
 *     A second Ctrl-C during the drain ends the process at once: the watch
 *     ended with the first, and SIGINT is back to its default.
 *
 * A line that starts with "legacy" stands for work done with a blocking
 * call that ignores the context (it sleeps 2.5 s whatever happens).
 *
 * The self-test starts the server on an ephemeral port, connects while no
 * thread can be started (the server must close that client, not keep it
 * open with nobody serving it), echoes with three clients, then with twice
 * as many short ones as the server holds open at once, runs the server out
 * of descriptors while a client connects (it must back off, not spin on
 * accept, and serve that client once descriptors are free), keeps three
 * connections open (one finishes its work during the drain, one never does,
 * one is in a legacy call), sends itself SIGTERM, and checks that accepting
 * stopped, that the first drained, that the second was cut at the end of
 * the grace period with that cause, and that the server's shutdown report
 * names the third. It exits 0 only if every check held.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/signal.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Connections open at once; a client beyond them is closed at once. */
enum { MAX_CONNS = 64 };
/* How long the server waits, after the drain, for connection threads to let
 * go of their contexts before it reports the ones that did not. */
static const int64_t LET_GO = CCTX_MSEC(300);

struct conn {
    struct server *srv;
    int fd;
    char name[48]; /* "conn 127.0.0.1:54321" */
    cctx_t *ctx;   /* this connection's context, a child of srv->conns;
                      its thread releases it when it ends */
    pthread_t thread;
    size_t echoed;
    char why[128];  /* the cause, when the server ended it */
    /* Under srv->mu: */
    bool done;      /* the connection has ended */
    bool in_flight; /* it was still open when the shutdown began */
    bool cut;       /* the server ended it, not the client */
};

struct server {
    cctx_t *ctx;             /* ends on SIGINT/SIGTERM */
    cctx_t *conns;           /* every connection's parent: a grace context of ctx */
    cctx_cancel_t *cut_all;  /* ends them all at once */
    int listener, port;
    int64_t drain;           /* how long in-flight connections get */
    pthread_mutex_t mu;      /* guards the fields below */
    pthread_cond_t changed;  /* a connection began or ended, accept failed, or
                                accepting stopped */
    /* The connections not yet reaped: the open ones and those that ended
     * since the last accept (start_conn joins and frees those). Only the
     * accepting thread adds or removes entries. */
    struct conn *list[MAX_CONNS];
    int n, open;
    int served;   /* every connection accepted, ever */
    int finished; /* connection threads done with their context */
    bool accepting;
    int in_flight, drained, cut;
    int accept_failures;     /* accept calls that failed, the signal's aside */
    int let_go;              /* cctx_cancel_and_wait's answer */
    char *report;            /* and its report of who did not let go */
};

/* ---- a transcript with times ----------------------------------------------------- */

static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t t0;

static void say(const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&print_mu);
    printf("[%7.1f ms] %-22s ", (double)(cctx_now() - t0) / 1e6, who);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&print_mu);
    va_end(ap);
}

/* ---- the server ------------------------------------------------------------------ */

/* One connection: echo until the client closes, or until its context ends. */
static void *serve(void *arg)
{
    struct conn *c = arg;
    char buf[4096];
    ssize_t n;
    while ((n = cctx_read(c->ctx, c->fd, buf, sizeof buf)) > 0) {
        if (n >= 6 && memcmp(buf, "legacy", 6) == 0) {
            /* A call that does not take a context: nothing can stop it. */
            say(c->name, "in a legacy call (2.5 s, deaf to its context)");
            struct timespec ts = {2, 500000000};
            nanosleep(&ts, NULL);
        }
        if (cctx_write(c->ctx, c->fd, buf, (size_t)n) != n)
            break;
        c->echoed += (size_t)n;
    }
    bool cut = cctx_err(c->ctx) != 0;
    if (cut) {
        /* Ended by the server: the cause says why, and where. */
        cctx_cause_t why;
        cctx_cause(c->ctx, &why);
        snprintf(c->why, sizeof c->why, "%s (%s:%d)", why.msg, why.file, why.line);
        say(c->name, "cut after %zu bytes: %s", c->echoed, c->why);
    } else {
        say(c->name, "closed by the client after %zu bytes", c->echoed);
    }
    close(c->fd);

    struct server *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    c->done = true;
    c->cut = cut;
    srv->open--;
    if (c->in_flight && cut)
        srv->cut++;
    else if (c->in_flight)
        srv->drained++;
    pthread_cond_broadcast(&srv->changed);
    pthread_mutex_unlock(&srv->mu);
    /* Last: the server's cctx_cancel_and_wait waits for this. */
    cctx_release(c->ctx);
    pthread_mutex_lock(&srv->mu);
    srv->finished++;
    pthread_cond_broadcast(&srv->changed);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* Joins and frees the connections that have ended, so that a long-running
 * server holds only its open ones and its list never fills with the dead. */
static void reap_conns(struct server *srv)
{
    struct conn *ended[MAX_CONNS];
    int n_ended = 0, kept = 0;
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < srv->n; i++) {
        if (srv->list[i]->done)
            ended[n_ended++] = srv->list[i];
        else
            srv->list[kept++] = srv->list[i];
    }
    srv->n = kept;
    pthread_mutex_unlock(&srv->mu);
    /* Each has only its cctx_release and its count in finished left to run;
     * joined without srv->mu, which that count takes. */
    for (int i = 0; i < n_ended; i++) {
        pthread_join(ended[i]->thread, NULL);
        free(ended[i]);
    }
}

static void start_conn(struct server *srv, int fd, const struct sockaddr_in *peer)
{
    reap_conns(srv);
    struct conn *c = calloc(1, sizeof *c);
    if (!c || srv->n == MAX_CONNS) {
        free(c);
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &peer->sin_addr, ip, sizeof ip);
    snprintf(c->name, sizeof c->name, "conn %s:%d", ip, ntohs(peer->sin_port));
    /* The connection may not outlive its parent's decision to end it; its
     * name shows in cctx_dump and in CCTX_TRACE output. */
    c->ctx = cctx_with_cancel(srv->conns, NULL);
    if (!c->ctx) {
        free(c);
        close(fd);
        return;
    }
    cctx_set_name(c->ctx, c->name);
    say(c->name, "accepted");
    /* The thread starts under srv->mu, so that the list only ever holds
     * connections with a thread to join, and one that could not start is
     * never counted open (the drain would wait for it in vain). serve takes
     * srv->mu only once it is done. */
    pthread_mutex_lock(&srv->mu);
    int err = pthread_create(&c->thread, NULL, serve, c);
    if (err == 0) {
        srv->list[srv->n++] = c;
        srv->open++;
        srv->served++;
        pthread_cond_broadcast(&srv->changed);
    }
    pthread_mutex_unlock(&srv->mu);
    if (err != 0) {
        /* Out of memory or threads: this client is closed, the server goes on. */
        say(c->name, "closed: no thread to serve it: %s", strerror(err));
        cctx_release(c->ctx);
        close(fd);
        free(c);
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) {
        perror("cctx-echo: listen");
        exit(1);
    }
    return fd;
}

/* Runs the server until SIGINT/SIGTERM and the drain that follows. */
static void run_server(struct server *srv)
{
    /* Accept until the signal: cctx_accept returns -1 with ECANCELED then. */
    int64_t backoff = 0;
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = cctx_accept(srv->ctx, srv->listener, (struct sockaddr *)&peer, &len);
        if (fd >= 0) {
            backoff = 0;
            start_conn(srv, fd, &peer);
            continue;
        }
        int err = errno;
        if (cctx_err(srv->ctx) != 0)
            break;
        pthread_mutex_lock(&srv->mu);
        srv->accept_failures++;
        pthread_cond_broadcast(&srv->changed);
        pthread_mutex_unlock(&srv->mu);
        perror("cctx-echo: accept");
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
            /* Out of descriptors or memory: the client stays in the
             * backlog, so accepting again at once fails again at once, a
             * loop that burns a CPU and floods the log. Wait, twice as long
             * each time up to 1 s (as Go's http.Server does), or until the
             * signal. */
            backoff = backoff ? backoff * 2 : CCTX_MSEC(5);
            if (backoff > CCTX_SEC(1))
                backoff = CCTX_SEC(1);
            (void)cctx_sleep(srv->ctx, backoff);
        } /* else, e.g. ECONNABORTED: that client is gone; keep going */
    }

    /* Stop accepting: new clients are refused from here on. */
    close(srv->listener);
    cctx_cause_t why;
    cctx_cause(srv->ctx, &why);
    pthread_mutex_lock(&srv->mu);
    srv->accepting = false;
    for (int i = 0; i < srv->n; i++)
        srv->list[i]->in_flight = !srv->list[i]->done;
    srv->in_flight = srv->open;
    pthread_cond_broadcast(&srv->changed);
    pthread_mutex_unlock(&srv->mu);
    say("server", "%s (code %d, %s:%d): stopped accepting; %d in flight, drain %lld ms",
        why.msg, why.code, why.file, why.line, srv->in_flight,
        (long long)(srv->drain / 1000000));

    /* Drain: the connections' parent is a grace context of the server's,
     * which ends `drain` after the signal and cuts every connection then
     * (waking each one blocked in cctx_read). Until then, wait for them to
     * end on their own. */
    pthread_mutex_lock(&srv->mu);
    while (srv->open > 0 && cctx_cond_wait(srv->conns, &srv->changed, &srv->mu) == 0)
        ;
    int late = srv->open;
    pthread_mutex_unlock(&srv->mu);
    if (late > 0) {
        cctx_cause(srv->conns, &why);
        say("server", "%s: %d connection(s) cut", why.msg, late);
    }

    /* Every connection thread must now let go of its context. One that does
     * not within LET_GO is stuck in something deaf to its context: name it
     * rather than hang, or exit under its feet. */
    char *report = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&report, &len);
    srv->let_go = cctx_cancel_and_wait(srv->cut_all, LET_GO, out);
    fclose(out);
    if (srv->let_go == 0) {
        say("server", "every connection let go of its context");
    } else {
        say("server", "shutdown report: still held %lld ms after the cut:\n%s",
            (long long)(LET_GO / 1000000), report);
    }
    srv->report = report;

    for (int i = 0; i < srv->n; i++)
        pthread_join(srv->list[i]->thread, NULL);
    say("server",
        "done: %d connection(s) served, %d in flight at the signal: "
        "%d drained, %d cut",
        srv->served, srv->in_flight, srv->drained, srv->cut);
}

static void server_init(struct server *srv, int port, int64_t drain)
{
    static const int stop[] = {SIGINT, SIGTERM};
    memset(srv, 0, sizeof *srv);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->changed, NULL);
    srv->drain = drain;
    srv->accepting = true;
    srv->listener = listen_on(port);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(srv->listener, (struct sockaddr *)&a, &len);
    srv->port = ntohs(a.sin_port);
    srv->ctx = cctx_with_signals(cctx_background(), stop, 2, NULL);
    /* Not canceled with srv->ctx: the signal must not cut connections; the
     * grace period after it does. */
    srv->conns = srv->ctx ? cctx_with_grace(srv->ctx, drain, &srv->cut_all) : NULL;
    if (srv->conns)
        cctx_set_name(srv->conns, "connections");
    if (!srv->ctx || !srv->conns) {
        perror("cctx-echo");
        exit(1);
    }
    /* A client that vanishes must not kill the server on the next write. */
    signal(SIGPIPE, SIG_IGN);
}

static void server_free(struct server *srv)
{
    for (int i = 0; i < srv->n; i++)
        free(srv->list[i]);
    free(srv->report);
    cctx_release(srv->conns);
    cctx_release(srv->ctx);
}

/* ---- the self-test ------------------------------------------------------------------ */

static int failures;

static void check(bool ok, const char *what)
{
    say("check", "%s %s", ok ? "ok  " : "FAIL", what);
    failures += !ok;
}

static int dial(cctx_t *ctx, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (cctx_connect(ctx, fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    int err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* Sends msg and reads the echo back; true if it came back whole. */
static bool echo(cctx_t *ctx, int fd, const char *msg)
{
    size_t len = strlen(msg), got = 0;
    char back[128];
    if (cctx_write(ctx, fd, msg, len) != (ssize_t)len)
        return false;
    while (got < len) {
        ssize_t n = cctx_read(ctx, fd, back + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return memcmp(back, msg, len) == 0;
}

/* The server's connection whose client end is fd, found by the name the
 * server gave it (the client's address), once the server has accepted it;
 * NULL if ctx ends first. */
static struct conn *conn_of(cctx_t *ctx, struct server *srv, int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    char name[48];
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return NULL;
    snprintf(name, sizeof name, "conn 127.0.0.1:%d", ntohs(a.sin_port));
    struct conn *found = NULL;
    if (cctx_mutex_lock(ctx, &srv->mu) != 0)
        return NULL;
    for (;;) {
        for (int i = 0; i < srv->n && !found; i++)
            if (strcmp(srv->list[i]->name, name) == 0)
                found = srv->list[i];
        if (found || cctx_cond_wait(ctx, &srv->changed, &srv->mu) != 0)
            break;
    }
    pthread_mutex_unlock(&srv->mu);
    return found;
}

static int accept_failures(struct server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int n = srv->accept_failures;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

/* Runs the server out of descriptors while a client connects: accept fails
 * with EMFILE for as long as none is free. True if the server failed at
 * most a few times in that while (it waits, rather than spinning on accept)
 * and served the client once descriptors were free again. */
static bool out_of_descriptors(cctx_t *ctx, struct server *srv)
{
    enum { ROOM = 64 };
    struct rlimit old, low;
    /* Every connection so far must be over, its socket and its context's
     * descriptors closed: one closed during the shortage would let the
     * server accept, and then fail to serve, the client below. */
    if (cctx_mutex_lock(ctx, &srv->mu) != 0)
        return false;
    while (srv->finished < srv->served && cctx_cond_wait(ctx, &srv->changed, &srv->mu) == 0)
        ;
    bool quiet = srv->finished == srv->served;
    pthread_mutex_unlock(&srv->mu);
    if (!quiet)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || getrlimit(RLIMIT_NOFILE, &old) != 0) {
        close(fd);
        return false;
    }
    /* fd is the lowest free descriptor: below fd + ROOM (or the limit, if
     * lower), fill every free one. */
    low = old;
    if ((rlim_t)fd + ROOM < old.rlim_cur)
        low.rlim_cur = (rlim_t)fd + ROOM;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
        close(fd);
        return false;
    }
    int fill[ROOM], n = 0;
    while (n < ROOM && (fill[n] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
        n++;
    int before = accept_failures(srv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)srv->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool connected = cctx_connect(ctx, fd, (struct sockaddr *)&a, sizeof a) == 0;
    /* The 300 ms are counted from the first failure, however late a loaded
     * machine lets the server try. */
    bool failed = false;
    if (connected && cctx_mutex_lock(ctx, &srv->mu) == 0) {
        while (srv->accept_failures == before && cctx_cond_wait(ctx, &srv->changed, &srv->mu) == 0)
            ;
        failed = srv->accept_failures > before;
        pthread_mutex_unlock(&srv->mu);
    }
    if (failed)
        (void)cctx_sleep(ctx, CCTX_MSEC(300));
    int failures_while_full = accept_failures(srv) - before;
    while (n > 0)
        close(fill[--n]);
    setrlimit(RLIMIT_NOFILE, &old);
    bool served = connected && echo(ctx, fd, "after the shortage");
    close(fd);
    say("clients", "out of descriptors for 300 ms: %d failed accept(s); then %s",
        failures_while_full, served ? "served" : "NOT served");
    return failures_while_full >= 1 && failures_while_full <= 50 && served;
}

/* Built with a sanitizer, whose runtime aborts when it cannot map memory
 * (for a new thread's signal stack, or its own allocator): the part of the
 * self-test that caps the address space is left out. */
#if defined(__has_feature)
#define ECHO_HAS_FEATURE_(f) __has_feature(f)
#else
#define ECHO_HAS_FEATURE_(f) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||                               \
    ECHO_HAS_FEATURE_(address_sanitizer) || ECHO_HAS_FEATURE_(thread_sanitizer)
#define ECHO_SANITIZED 1
#else
#define ECHO_SANITIZED 0
#endif

/* Connects while the process cannot map a new thread's stack (its address
 * space capped a little above what it uses), so the server cannot start the
 * connection's thread. True if the server then closed that client at once
 * and counted nothing open; *ran is false if the cap could not be set. Runs
 * before any thread has ended: the C library keeps the stacks of ended
 * threads for reuse, and one of those would need no new mapping. */
static bool no_thread(cctx_t *ctx, struct server *srv, bool *ran)
{
    *ran = false;
    if (ECHO_SANITIZED)
        return true;
    unsigned long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
        if (fscanf(statm, "%lu", &pages) != 1)
            pages = 0;
        fclose(statm);
    }
    struct rlimit old, low;
    if (pages == 0 || getrlimit(RLIMIT_AS, &old) != 0)
        return true;
    /* Room for the socket and small allocations, not for a stack (128 KiB
     * with musl, megabytes with glibc). */
    /* The server ends the connection or not at all: 3 s, not the test's 10.
     * Made, like the socket, before the cap. */
    cctx_t *wait = cctx_with_timeout(ctx, CCTX_SEC(3), NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    low = old;
    low.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 64 * 1024;
    if (!wait || fd < 0 || low.rlim_cur >= old.rlim_cur || setrlimit(RLIMIT_AS, &low) != 0) {
        cctx_release(wait);
        close(fd);
        return true;
    }
    *ran = true;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)srv->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char b;
    bool closed = cctx_connect(wait, fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                  cctx_read(wait, fd, &b, 1) == 0;
    setrlimit(RLIMIT_AS, &old);
    close(fd);
    cctx_release(wait);
    bool none_open = false;
    if (cctx_mutex_lock(ctx, &srv->mu) == 0) {
        none_open = srv->open == 0 && srv->n == 0 && srv->served == 0;
        pthread_mutex_unlock(&srv->mu);
    }
    say("clients", "no thread for a connection: %s, %s", closed ? "closed at once" : "NOT closed",
        none_open ? "none open" : "one OPEN");
    return closed && none_open;
}

static void *server_thread(void *arg)
{
    run_server(arg);
    return NULL;
}

static int self_test(char **argv)
{
    /* With the registry on, the shutdown report names every context still
     * held, even under a context that ended before the report was asked for
     * (the grace period's end here). */
    if (!getenv("CCTX_DEBUG")) {
        setenv("CCTX_DEBUG", "trees", 1);
        execv("/proc/self/exe", argv);
        /* No /proc: go on without it; the report then names less. */
    }
    static struct server srv;
    const int64_t drain = CCTX_SEC(1);
    server_init(&srv, 0, drain);
    say("server", "listening on 127.0.0.1:%d", srv.port);
    pthread_t st;
    pthread_create(&st, NULL, server_thread, &srv);

    /* Every client step has 10 s at most: a hang fails instead of hanging. */
    cctx_t *test = cctx_with_timeout(cctx_background(), CCTX_SEC(10), NULL);
    bool ran;
    bool no_thread_ok = no_thread(test, &srv, &ran);
    if (ran)
        check(no_thread_ok, "a connection with no thread to serve it is closed, not kept");
    else
        say("self-test", "not run here: a connection with no thread to serve it");
    const char *names[] = {"client A", "client B", "client C"};
    for (int i = 0; i < 3; i++) {
        int fd = dial(test, srv.port);
        char msg[64];
        snprintf(msg, sizeof msg, "hello from %s", names[i]);
        bool ok = fd >= 0 && echo(test, fd, msg);
        say(names[i], "\"%s\" %s", msg, ok ? "echoed" : "NOT echoed");
        check(ok, "an echo comes back whole");
        close(fd);
    }
    /* More clients, one after another, than the server keeps open at once:
     * each must be served, as the ones before. */
    enum { MANY = 2 * MAX_CONNS };
    int many_ok = 0;
    for (int i = 0; i < MANY; i++) {
        int fd = dial(test, srv.port);
        many_ok += fd >= 0 && echo(test, fd, "one of many");
        if (fd >= 0)
            close(fd);
    }
    say("clients", "%d of %d short connections echoed", many_ok, (int)MANY);
    check(many_ok == MANY, "every one of many short connections is echoed");
    check(out_of_descriptors(test, &srv),
          "out of descriptors, the server waits instead of spinning, then serves");
    int slow = dial(test, srv.port), stuck = dial(test, srv.port);
    check(echo(test, slow, "slow: part 1"), "slow client: first part echoed");
    check(echo(test, stuck, "stuck: hello"), "stuck client: echoed, then goes quiet");
    int deaf = dial(test, srv.port);
    struct conn *c = conn_of(test, &srv, stuck), *d = conn_of(test, &srv, deaf);
    check(c && d, "the server knows the stuck and the deaf connections");
    if (!c || !d) {
        cctx_release(test);
        return 1;
    }

    /* Let the server see A, B and C go, so that exactly three are in flight. */
    pthread_mutex_lock(&srv.mu);
    while (srv.open > 3 && cctx_cond_wait(test, &srv.changed, &srv.mu) == 0)
        ;
    pthread_mutex_unlock(&srv.mu);
    /* The third goes into its legacy call just before the signal. */
    check(cctx_write(test, deaf, "legacy: report", 14) == 14, "deaf client: legacy call started");
    cctx_sleep(test, CCTX_MSEC(50));

    say("self-test", "kill(getpid(), SIGTERM)");
    int64_t term_at = cctx_now();
    kill(getpid(), SIGTERM);

    pthread_mutex_lock(&srv.mu);
    while (srv.accepting && cctx_cond_wait(test, &srv.changed, &srv.mu) == 0)
        ;
    pthread_mutex_unlock(&srv.mu);
    int late = dial(test, srv.port);
    check(late < 0 && errno == ECONNREFUSED, "after the signal, a new client is refused");
    if (late >= 0)
        close(late);

    /* The slow client finishes its work well within the drain deadline. */
    cctx_sleep(test, CCTX_MSEC(200));
    check(echo(test, slow, "slow: part 2"), "slow client: second part echoed during the drain");
    close(slow);

    /* The stuck one waits; the server ends it at the deadline (EOF here). */
    char b;
    ssize_t r = cctx_read(test, stuck, &b, 1);
    int64_t cut_after = cctx_now() - term_at;
    say("stuck client", "connection closed by the server after %.0f ms", (double)cut_after / 1e6);
    check(r == 0 && cut_after >= drain && cut_after < drain + CCTX_MSEC(500),
          "stuck client: cut at the end of the grace period");
    close(stuck);

    pthread_join(st, NULL);
    close(deaf);
    check(srv.served == 7 + MANY && srv.in_flight == 3,
          "every connection served, three in flight at the signal");
    check(srv.drained == 1 && srv.cut == 2, "one drained, two cut");
    check(c->cut && strncmp(c->why, "grace period of 1s after: signal: terminated", 44) == 0,
          "the cut connection's cause names the grace period and the signal");
    check(srv.let_go == ETIMEDOUT && srv.report && strstr(srv.report, d->name) &&
              !strstr(srv.report, c->name),
          "the shutdown report names the connection that did not let go, and only it");
    cctx_cause_t why;
    cctx_cause(srv.ctx, &why);
    check(why.err == ECANCELED && why.code == SIGTERM && strcmp(why.msg, "signal: terminated") == 0,
          "the server's cause is the signal");
    cctx_release(test);
    server_free(&srv);
    say("self-test", failures ? "%d check(s) FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    t0 = cctx_now();
    int port = 7007;
    int64_t drain = CCTX_SEC(2);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--self-test") == 0)
            return self_test(argv);
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--drain-ms") == 0 && i + 1 < argc)
            drain = CCTX_MSEC(atoi(argv[++i]));
        else {
            fprintf(stderr, "usage: %s [--port N] [--drain-ms N] | --self-test\n", argv[0]);
            return 2;
        }
    }
    struct server srv;
    server_init(&srv, port, drain);
    say("server", "listening on 127.0.0.1:%d (try: nc 127.0.0.1 %d; Ctrl-C to stop)",
        srv.port, srv.port);
    run_server(&srv);
    server_free(&srv);
    return 0;
}
