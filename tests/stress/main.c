/* SPDX-License-Identifier: MIT */
/*
 * cctx-stress: each scenario races the calls that end contexts (cancel,
 * deadlines, the last release) against the others, round after round, with
 * a seeded PRNG, for a bounded time, and checks its invariant after every
 * round.
 *
 *   cctx-stress [--seconds N] [--seed S] [--only NAME,...] [--list]
 *
 * N seconds (default 20) are shared between the scenarios. Each runs in a
 * process of its own (this program, executed again with --run), so that one
 * that hangs, as a deadlock does, is killed after its time plus a grace
 * period and reported as hung, and the others still run. The exit status is
 * 0 when every scenario passed or was skipped (skips are listed as such),
 * STRESS_SKIP when all were skipped, 1 otherwise.
 */
#define _GNU_SOURCE
#include "stress.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testhooks.h"

/* ---- helpers for the scenarios ------------------------------------------------ */

static const char *current = "?";
static struct run *current_run;

void stress_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: %s: invariant violated in round %ld (seed 0x%" PRIx64 "): %s\n",
            file, line, current, current_run ? current_run->rounds : -1L,
            current_run ? current_run->seed : 0, what);
    fflush(stderr);
    abort();
}

int64_t real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool more_rounds(struct run *r)
{
    if (r->rounds > 0 && real_now() >= r->until)
        return false;
    r->rounds++;
    return true;
}

uint64_t rnd(struct run *r)
{
    /* splitmix64 */
    uint64_t z = (r->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

unsigned rnd_below(struct run *r, unsigned n)
{
    return (unsigned)(rnd(r) % n);
}

void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

static void *team_main(void *arg)
{
    __typeof__(((struct team *)0)->m[0]) *m = arg;
    pthread_barrier_wait(&m->team->start);
    m->fn(m->arg);
    return NULL;
}

void team_init(struct team *t, int n)
{
    STRESS_CHECK(n >= 1 && n <= TEAM_MAX);
    t->n = 0;
    STRESS_CHECK(pthread_barrier_init(&t->start, NULL, (unsigned)n) == 0);
}

void team_add(struct team *t, void (*fn)(void *), void *arg)
{
    t->m[t->n].team = t;
    t->m[t->n].fn = fn;
    t->m[t->n].arg = arg;
    STRESS_CHECK(pthread_create(&t->t[t->n], NULL, team_main, &t->m[t->n]) == 0);
    t->n++;
}

void team_join(struct team *t)
{
    for (int i = 0; i < t->n; i++)
        STRESS_CHECK(pthread_join(t->t[i], NULL) == 0);
    pthread_barrier_destroy(&t->start);
}

static long blocks0;

void blocks_begin(void)
{
    cctx__test_count_allocs(true);
    blocks0 = cctx__test_live_allocs();
}

void blocks_end(void)
{
    int64_t until = real_now() + CCTX_SEC(5);
    while ((cctx__test_live_allocs() != blocks0 || cctx__test_armed_timers() != 0) &&
           real_now() < until)
        sched_yield();
    if (cctx__test_live_allocs() != blocks0)
        fprintf(stderr, "library blocks: %ld live, %ld at the start\n", cctx__test_live_allocs(),
                blocks0);
    STRESS_CHECK(cctx__test_live_allocs() == blocks0);
    STRESS_CHECK(cctx__test_armed_timers() == 0);
}

/* ---- the scenarios ------------------------------------------------------------ */

/* Every table of scenarios, in the order they run. */
static const struct {
    const struct scenario *list;
    const int *n;
} tables[] = {
    {scenarios_cancel, &n_scenarios_cancel},
    {scenarios_wait, &n_scenarios_wait},
    {scenarios_group, &n_scenarios_group},
};

static const struct scenario *nth(int i)
{
    for (size_t t = 0; t < sizeof tables / sizeof *tables; i -= *tables[t].n, t++)
        if (i < *tables[t].n)
            return &tables[t].list[i];
    return NULL;
}

static const struct scenario *find(const char *name)
{
    for (int k = 0; nth(k); k++)
        if (strcmp(nth(k)->name, name) == 0)
            return nth(k);
    return NULL;
}

/* --run: one scenario, in this process. */
static int run_one(const char *name, int64_t ms, uint64_t seed)
{
    const struct scenario *s = find(name);
    if (!s) {
        fprintf(stderr, "no scenario named %s\n", name);
        return 2;
    }
    struct run r = {.seed = seed, .rng = seed, .until = real_now() + CCTX_MSEC(ms)};
    current = s->name;
    current_run = &r;
    int rc = s->fn(&r);
    if (rc == STRESS_SKIP)
        return rc;
    printf("%ld rounds\n", r.rounds);
    return rc;
}

static bool selected(const char *only, const char *name)
{
    if (!only)
        return true;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return true;
    return false;
}

/* Runs one scenario in a child process; kills it if it outlives `limit_ms`. */
static const char *supervise(const char *name, int64_t ms, uint64_t seed, int64_t limit_ms)
{
    char ms_arg[32], seed_arg[32];
    snprintf(ms_arg, sizeof ms_arg, "%" PRId64, ms);
    snprintf(seed_arg, sizeof seed_arg, "0x%" PRIx64, seed);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return "FAILED (fork)";
    }
    if (pid == 0) {
        execl("/proc/self/exe", "cctx-stress", "--run", name, "--ms", ms_arg, "--seed", seed_arg,
              (char *)NULL);
        _exit(127);
    }
    int64_t until = real_now() + CCTX_MSEC(limit_ms);
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            perror("waitpid");
            return "FAILED (waitpid)";
        }
        if (real_now() >= until) {
            fprintf(stderr, "%s: no end after %" PRId64 " ms: killed (a deadlock or a lost "
                            "wake-up)\n", name, limit_ms);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return "HUNG";
        }
        struct timespec ts = {0, 10 * 1000000L}; /* polling the child, not a timing guess */
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return "ok";
    if (WIFEXITED(status) && WEXITSTATUS(status) == STRESS_SKIP)
        return "SKIPPED";
    return "FAILED";
}

static void usage(void)
{
    fprintf(stderr, "usage: cctx-stress [--seconds N] [--seed S] [--only NAME,...] [--list]\n");
}

int main(int argc, char **argv)
{
    double seconds = 20;
    uint64_t seed = UINT64_C(0x5eedc7c7);
    const char *only = NULL, *run = NULL, *env = getenv("CCTX_STRESS_SEED");
    int64_t ms = -1;
    if (env)
        seed = strtoull(env, NULL, 0);
    /* Every option but --list (which returns) takes a value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--list") == 0) {
            for (int k = 0; nth(k); k++)
                printf("%-36s %s\n", nth(k)->name, nth(k)->checks);
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(a, "--seconds") == 0)
            seconds = strtod(v, NULL);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 0);
        else if (strcmp(a, "--only") == 0)
            only = v;
        else if (strcmp(a, "--run") == 0)
            run = v;
        else if (strcmp(a, "--ms") == 0)
            ms = strtoll(v, NULL, 10);
        else {
            usage();
            return 2;
        }
    }
    if (run)
        return run_one(run, ms < 0 ? 1000 : ms, seed);

    int n = 0;
    for (int k = 0; nth(k); k++)
        n += selected(only, nth(k)->name);
    if (n == 0) {
        fprintf(stderr, "no scenario selected\n");
        return 2;
    }
    int64_t each = (int64_t)(seconds * 1000 / n);
    if (each < 100)
        each = 100;
    /* The grace covers a slow machine and the sanitizers' start-up, not the
     * scenario itself, whose rounds stop when its time is up. */
    int64_t limit = each * 2 + 15000;
    printf("cctx-stress: seed 0x%" PRIx64 " (--seed or CCTX_STRESS_SEED to change), %d "
           "scenarios, %.1f s each, killed after %.1f s\n",
           seed, n, each / 1e3, limit / 1e3);
    int failed = 0, skipped = 0;
    const char *results[64];
    int64_t times[64];
    for (int k = 0, j = 0; nth(k); k++) {
        if (!selected(only, nth(k)->name))
            continue;
        printf("--- %s: %s\n", nth(k)->name, nth(k)->checks);
        int64_t t0 = real_now();
        results[j] = supervise(nth(k)->name, each, seed + (uint64_t)k, limit);
        times[j] = real_now() - t0;
        failed += results[j][0] == 'F' || results[j][0] == 'H';
        skipped += results[j][0] == 'S';
        printf("--- %s: %s\n", nth(k)->name, results[j]);
        j++;
    }
    printf("\ncctx-stress summary (seed 0x%" PRIx64 "):\n", seed);
    for (int k = 0, j = 0; nth(k); k++) {
        if (!selected(only, nth(k)->name))
            continue;
        printf("  %-36s %6.1fs  %s\n", nth(k)->name, times[j] / 1e9, results[j]);
        j++;
    }
    printf("%d passed, %d failed or hung, %d skipped\n", n - failed - skipped, failed, skipped);
    if (failed)
        return 1;
    return skipped == n ? STRESS_SKIP : 0;
}
