/* SPDX-License-Identifier: MIT */
/*
 * fanout.c — a fan-out search, the classic use of Go's context, in C with cctx.
 *
 * One request, with a 300 ms deadline, asks four backends at once and takes
 * the first answer. It shows:
 *
 *   - a context tree: request (deadline) -> request id (value) -> one context
 *     per backend, each with a tighter budget and its own cause;
 *   - handing a context to a thread: cctx_ref here, cctx_release there;
 *   - workers blocked in cctx_sleep, woken the moment their context ends;
 *   - cctx_dump of the live tree;
 *   - cctx_after_func + cctx_cause reporting each context's end: its error,
 *     code, message, and the call site where the end started;
 *   - a backend over its own budget ending with ETIMEDOUT (fired by the
 *     library's timer thread, while the others still work);
 *   - one cctx_cancel_cause on the request ending every loser: each reports
 *     the request's cause ("lost the race to web") as its own.
 *
 * Latencies come from a fixed table, so every run has the same shape; only
 * the timings move by a fraction of a millisecond. It takes about 60 ms.
 */
#include <cctx.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cause codes: ours to choose, carried by the cancellation. */
enum { BUDGET_EXCEEDED = 1, LOST_RACE = 2, ANSWERED = 3 };

/* A value key is any unique address, compared by address (Go's unexported key type). */
static const char request_id_key;

struct backend {
    const char *name;
    int latency_ms;         /* how long the backend takes to answer       */
    int budget_ms;          /* how long this request will wait for it     */
    cctx_t *ctx;            /* the backend's context (search() owns one
                               reference, the worker thread another)      */
    cctx_cancel_t *cancel;  /* only search(), its creator, can cancel it  */
    cctx_after_t ended;     /* storage for its after-function             */
    pthread_t thread;
    char answer[80];
};

static struct backend backends[] = {
    {.name = "web", .latency_ms = 60, .budget_ms = 150},     /* answers first      */
    {.name = "images", .latency_ms = 120, .budget_ms = 20},  /* over its budget    */
    {.name = "news", .latency_ms = 90, .budget_ms = 150},    /* loses the race     */
    {.name = "maps", .latency_ms = 200, .budget_ms = 250},   /* loses the race     */
};
enum { NBACKENDS = sizeof backends / sizeof backends[0] };

/* The race: the first worker with an answer sets winner; every worker counts
 * itself in finished, so search() also stops waiting if nobody answers. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int winner; /* index into backends, -1 until someone answers */
    int finished;
} race = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0};

/* After-functions run on whichever thread ended the context (here the main
 * thread or the library's timer thread), so printing takes a lock. */
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t t0;

static void say(int64_t when, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&print_mu);
    printf("[%6.1f ms] ", (double)(when - t0) / 1e6);
    vprintf(fmt, ap);
    pthread_mutex_unlock(&print_mu);
    va_end(ap);
}

static const char *basename_of(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path ? path : "?";
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Registered on every context we watch; arg is the context itself, which the
 * registering code keeps a reference to until after the context has ended. */
static void report_end(void *arg)
{
    cctx_t *ctx = arg;
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    bool timed_out = c.err == ETIMEDOUT;
    say(c.when, "%s: ended %s code=%d \"%s\" (%s at %s:%d in %s())\n", cctx_name(ctx),
        timed_out ? "ETIMEDOUT" : "ECANCELED", c.code, c.msg,
        timed_out ? "deadline set" : "canceled", basename_of(c.file), c.line, c.func);
}

/* One backend call. The worker owns the reference search() gave it. */
static void *worker(void *arg)
{
    struct backend *b = arg;
    /* The "network call": returns 0 after the full latency, or the context's
     * error as soon as it ends. */
    int err = cctx_sleep(b->ctx, CCTX_MSEC(b->latency_ms));
    if (err == 0)
        snprintf(b->answer, sizeof b->answer, "%s results for %s", b->name,
                 (const char *)cctx_value(b->ctx, &request_id_key));

    pthread_mutex_lock(&race.mu);
    if (err == 0 && race.winner < 0)
        race.winner = (int)(b - backends);
    race.finished++;
    pthread_cond_signal(&race.cv);
    pthread_mutex_unlock(&race.mu);

    cctx_release(b->ctx); /* the thread's reference, exactly once */
    return NULL;
}

/* Returns the winner's index, or -1 if no backend answered. */
static int search(void)
{
    /* The request: 300 ms for the whole search. CCTX_AUTO releases it when
     * search() returns; the after-function storage outlives it. */
    cctx_after_t request_ended = {0};
    cctx_cancel_t *cancel_request;
    CCTX_AUTO cctx_t *request = cctx_with_timeout(cctx_background(), CCTX_MSEC(300),
                                                  &cancel_request);
    if (!request)
        die("cctx_with_timeout");
    cctx_set_name(request, "request");
    cctx_after_func(request, &request_ended, report_end, request);

    /* Request-scoped data flows down the tree with the cancellation. */
    CCTX_AUTO cctx_t *tagged = cctx_with_value(request, &request_id_key, "req-7f3a", NULL);
    if (!tagged)
        die("cctx_with_value");
    cctx_set_name(tagged, "request-id");

    for (int i = 0; i < NBACKENDS; i++) {
        struct backend *b = &backends[i];
        char why[80];
        snprintf(why, sizeof why, "backend %s: per-backend budget exceeded", b->name);
        /* The message is copied; the budget is tighter than the request's. */
        b->ctx = cctx_with_timeout_cause(tagged, CCTX_MSEC(b->budget_ms), BUDGET_EXCEEDED, why,
                                         &b->cancel);
        if (!b->ctx)
            die("cctx_with_timeout_cause");
        cctx_set_name(b->ctx, b->name);
        cctx_after_func(b->ctx, &b->ended, report_end, b->ctx);

        cctx_ref(b->ctx); /* the worker's reference: the worker releases it */
        if (pthread_create(&b->thread, NULL, worker, b) != 0)
            die("pthread_create");
    }

    pthread_mutex_lock(&print_mu);
    printf("live context tree after the fan-out:\n");
    cctx_dump(request, stdout, CCTX_DUMP_TEXT);
    printf("\n");
    pthread_mutex_unlock(&print_mu);

    /* Wait for the first answer (or for every worker to give up). */
    pthread_mutex_lock(&race.mu);
    while (race.winner < 0 && race.finished < NBACKENDS)
        pthread_cond_wait(&race.cv, &race.mu);
    int w = race.winner;
    pthread_mutex_unlock(&race.mu);

    if (w >= 0) {
        struct backend *win = &backends[w];
        say(cctx_now(), "%s answered first: \"%s\"\n", win->name, win->answer);
        /* The winner's work is done: end its context with its own cause... */
        cctx_cancel_cause(win->cancel, ANSWERED, "answered first");
        /* ...then end the request: one call reaches every loser still working,
         * and each of them reports this cause, code and call site. */
        char why[64];
        snprintf(why, sizeof why, "lost the race to %s", win->name);
        cctx_cancel_cause(cancel_request, LOST_RACE, why);
    } else { /* only on a badly stalled machine: every backend timed out */
        say(cctx_now(), "no backend answered\n");
        cctx_cancel_cause(cancel_request, 0, "no backend answered");
    }

    for (int i = 0; i < NBACKENDS; i++)
        pthread_join(backends[i].thread, NULL);

    cctx_cause_t c;
    cctx_cause(request, &c);
    say(cctx_now(), "all workers joined; request: err=%s code=%d \"%s\" (from %s:%d in %s())\n",
        c.err == ECANCELED ? "ECANCELED" : c.err == ETIMEDOUT ? "ETIMEDOUT" : "0", c.code, c.msg,
        basename_of(c.file), c.line, c.func);

    /* Every cctx_with_* result is released once: the backends here, tagged and
     * request by CCTX_AUTO on return (children first, as they were declared last). */
    for (int i = 0; i < NBACKENDS; i++)
        cctx_release(backends[i].ctx);
    return w;
}

int main(void)
{
    t0 = cctx_now();
    search();
    return 0;
}
