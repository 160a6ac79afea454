/* SPDX-License-Identifier: MIT */
/*
 * The benchmark driver: flags, the -bench filter, Go's N-growth loop
 * (testing/benchmark.go, Go 1.19) and Go's output format. Each program's
 * main (main.c, cpp/stop_token.cpp) calls bench_init, then its groups.
 */
#define _GNU_SOURCE
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { MAX_LEVELS = 8 };

static struct {
    int64_t benchtime_ns; /* run until the timed part lasts this long ... */
    int64_t benchtime_n;  /* ... or exactly this many iterations (-benchtime 100x) */
    int count;
    regex_t levels[MAX_LEVELS];
    int nlevels;
    int procs;
    int max_len;        /* name column width, grown as Go grows it */
    int64_t timeout_ns; /* -timeout: how long one run may take; 0: forever */
    const char *timeout_arg;
} opt = {.benchtime_ns = 1000000000, .count = 1, .timeout_ns = 600000000000, .timeout_arg = "10m"};

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bench_procs(void)
{
    return opt.procs;
}

void bench_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- Timer ---------------------------------------------------------------- */

void bench_start_timer(bench_b *b)
{
    if (b->timer_on)
        return;
    bench_alloc_totals(&b->start_allocs, &b->start_bytes);
    b->start_ns = bench_now_ns();
    b->timer_on = true;
}

void bench_stop_timer(bench_b *b)
{
    if (!b->timer_on)
        return;
    b->duration_ns += bench_now_ns() - b->start_ns;
    uint64_t a, by;
    bench_alloc_totals(&a, &by);
    b->net_allocs += a - b->start_allocs;
    b->net_bytes += by - b->start_bytes;
    b->timer_on = false;
}

void bench_reset_timer(bench_b *b)
{
    if (b->timer_on) {
        bench_alloc_totals(&b->start_allocs, &b->start_bytes);
        b->start_ns = bench_now_ns();
    }
    b->duration_ns = 0;
    b->net_allocs = 0;
    b->net_bytes = 0;
}

void bench_report_ns_per_op(bench_b *b, double ns)
{
    b->has_ns_per_op = true;
    b->ns_per_op = ns;
}

void bench_note(bench_b *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->note, sizeof b->note, fmt, ap);
    va_end(ap);
}

/* ---- RunParallel ---------------------------------------------------------- */

struct par {
    bench_pb pb;
    void (*body)(bench_pb *pb, void *arg);
    void *arg;
};

static void *par_main(void *p)
{
    struct par *w = p;
    /* The body writes pb->cache every iteration: on this thread's own stack,
     * not in the array the threads were launched from, or the threads would
     * share its cache line and the benchmark would measure that. */
    bench_pb pb = w->pb;
    w->body(&pb, w->arg);
    return NULL;
}

void bench_run_parallel(bench_b *b, void (*body)(bench_pb *pb, void *arg), void *arg)
{
    if (b->n == 0)
        return;
    /* Go's grain: the iterations that took ~100us last time, within [1, 1e4]. */
    uint64_t grain = 0;
    if (b->prev_n > 0 && b->prev_duration_ns > 0)
        grain = (uint64_t)(100000.0 * (double)b->prev_n / (double)b->prev_duration_ns);
    if (grain < 1)
        grain = 1;
    if (grain > 10000)
        grain = 10000;

    _Atomic uint64_t global = 0;
    int np = opt.procs;
    struct par w[np];
    pthread_t t[np];
    for (int i = 0; i < np; i++) {
        w[i] = (struct par){{&global, grain, 0, (uint64_t)b->n}, body, arg};
        if (pthread_create(&t[i], NULL, par_main, &w[i]) != 0)
            bench_fatal("pthread_create failed");
    }
    for (int i = 0; i < np; i++)
        pthread_join(t[i], NULL);
}

/* ---- Filter --------------------------------------------------------------- */

/* Go splits -bench at slashes and matches level k of a name with part k. */
static void set_filter(const char *pattern)
{
    char *copy = strdup(pattern), *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (opt.nlevels == MAX_LEVELS)
            bench_fatal("-bench: too many levels");
        int rc = regcomp(&opt.levels[opt.nlevels], part, REG_EXTENDED | REG_NOSUB);
        if (rc != 0)
            bench_fatal("-bench: bad regular expression '%s'", part);
        opt.nlevels++;
    }
    free(copy);
}

bool bench_wanted(const char *name)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", name);
    char *save = NULL;
    int level = 0;
    for (char *part = strtok_r(buf, "/", &save); part && level < opt.nlevels;
         part = strtok_r(NULL, "/", &save), level++)
        if (regexec(&opt.levels[level], part, 0, NULL, 0) != 0)
            return false;
    return true;
}

/* ---- Running and printing ------------------------------------------------- */

static void run_n(bench_b *b, bench_fn fn, void *arg, int64_t n)
{
    b->n = n;
    b->note[0] = '\0';
    b->has_ns_per_op = false;
    bench_reset_timer(b);
    bench_start_timer(b);
    fn(b, arg);
    bench_stop_timer(b);
    b->prev_n = n;
    b->prev_duration_ns = b->duration_ns;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- Watchdog ------------------------------------------------------------- */

/* A benchmark that hangs would otherwise hold a comparison run, or CI, until
 * someone kills it, with nothing said about which one it was. Like go test's
 * -timeout (default 10m), but the limit applies to each run of a benchmark
 * (the timed part of one -count round, then its counting run, each with a
 * limit of its own), not to the whole program, so a long -count or a full
 * run at 1s per benchmark is never cut short; no single run comes near it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const char *running; /* the run's full name, NULL between runs */
    int64_t until;       /* CLOCK_MONOTONIC ns when it is overdue */
} watch = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *watchdog_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watch.lock);
    for (;;) {
        if (!watch.running) {
            pthread_cond_wait(&watch.cond, &watch.lock);
            continue;
        }
        if (bench_now_ns() < watch.until) {
            struct timespec ts = {watch.until / 1000000000, watch.until % 1000000000};
            pthread_cond_timedwait(&watch.cond, &watch.lock, &ts);
            continue;
        }
        /* The benchmark's thread may hold stdio's lock if it hangs inside a
         * print: say it with write(2) and leave with _exit, as a crash would. */
        char msg[400];
        int n = snprintf(msg, sizeof msg, "%s: %s still running after -timeout %s: stopped\n",
                         program_invocation_short_name, watch.running, opt.timeout_arg);
        if (n > 0) {
            ssize_t w = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
            (void)w; /* nothing more could be done about a failed write */
        }
        _exit(2); /* go test's status for a timeout */
    }
    return NULL;
}

static void watchdog_start(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&watch.cond, &a);
    pthread_condattr_destroy(&a);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_main, NULL) != 0)
        bench_fatal("cannot start the -timeout watchdog thread");
    pthread_detach(t);
}

/* name: the run now starting, or NULL when it has ended. */
static void watch_run(const char *name)
{
    if (opt.timeout_ns <= 0)
        return;
    pthread_mutex_lock(&watch.lock);
    watch.running = name;
    watch.until = bench_now_ns() + opt.timeout_ns;
    pthread_cond_signal(&watch.cond);
    pthread_mutex_unlock(&watch.lock);
}

/* Go's prettyPrint: ten places before the point, four significant figures. */
static void pretty(char *out, size_t size, double x, const char *unit)
{
    double y = x < 0 ? -x : x;
    int width, prec;
    if (y == 0 || y >= 999.95)
        width = 10, prec = 0;
    else if (y >= 99.995)
        width = 12, prec = 1;
    else if (y >= 9.9995)
        width = 13, prec = 2;
    else if (y >= 0.99995)
        width = 14, prec = 3;
    else if (y >= 0.099995)
        width = 15, prec = 4;
    else if (y >= 0.0099995)
        width = 16, prec = 5;
    else if (y >= 0.00099995)
        width = 17, prec = 6;
    else
        width = 18, prec = 7;
    snprintf(out, size, "%*.*f %s", width, prec, x, unit);
}

static void run_once(const char *name, bench_fn fn, void *arg)
{
    char full[300];
    if (opt.procs != 1)
        snprintf(full, sizeof full, "%s-%d", name, opt.procs);
    else
        snprintf(full, sizeof full, "%s", name);
    int ext = (int)(strlen(full) - strlen(name));
    if ((int)strlen(name) + ext + 1 > opt.max_len)
        opt.max_len = (int)strlen(name) + ext + 1 + 8;

    bench_b b = {0};
    watch_run(full);
    bench_alloc_pause(true); /* the time without the count's own cost (alloc.c) */
    run_n(&b, fn, arg, 1);
    if (opt.benchtime_n > 0) {
        if (opt.benchtime_n > 1)
            run_n(&b, fn, arg, opt.benchtime_n);
    } else {
        /* testing.(*B).launch: predict from the last run, 1.2x margin, grow at
         * most 100x, at least by one, at most 1e9. */
        for (int64_t n = 1; b.duration_ns < opt.benchtime_ns && n < 1000000000;) {
            int64_t last = n, prev_iters = b.n, prev_ns = max64(b.duration_ns, 1);
            n = (int64_t)((double)opt.benchtime_ns * (double)prev_iters / (double)prev_ns);
            n += n / 5;
            n = min64(n, 100 * last);
            n = max64(n, last + 1);
            n = min64(n, 1000000000);
            run_n(&b, fn, arg, n);
        }
    }
    bench_alloc_pause(false);
    /* RunParallel's grain from the last timed run, as that run's was. */
    bench_b counted = {.prev_n = b.prev_n, .prev_duration_ns = b.prev_duration_ns};
    watch_run(full); /* a run of its own, with its own limit */
    run_n(&counted, fn, arg, b.n);
    watch_run(NULL);

    char ns[64];
    double per = b.has_ns_per_op ? b.ns_per_op : (double)b.duration_ns / (double)b.n;
    pretty(ns, sizeof ns, per, "ns/op");
    printf("%-*s\t%8lld\t%s\t%8lld B/op\t%8lld allocs/op\n", opt.max_len, full, (long long)b.n, ns,
           (long long)(counted.net_bytes / (uint64_t)b.n),
           (long long)(counted.net_allocs / (uint64_t)b.n));
    if (b.note[0])
        printf("# %s: %s\n", full, b.note);
    fflush(stdout);
}

void bench_run(const char *name, bench_fn fn, void *arg)
{
    if (!bench_wanted(name))
        return;
    for (int i = 0; i < opt.count; i++)
        run_once(name, fn, arg);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t bench_percentile(int64_t *s, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(s, n, sizeof *s, cmp_i64);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return s[i < n ? i : n - 1];
}

int64_t *bench_alloc_samples(bench_b *b)
{
    int64_t *s = malloc(sizeof *s * (size_t)(b->n > 0 ? b->n : 1));
    if (!s)
        bench_fatal("out of memory");
    return s;
}

struct bench_lateness bench_report_lateness(bench_b *b, int64_t *late)
{
    size_t n = (size_t)b->n;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)late[i];
    bench_report_ns_per_op(b, n ? sum / (double)n : 0);
    struct bench_lateness l = {bench_percentile(late, n, 50), bench_percentile(late, n, 99), 0};
    l.max = n ? late[n - 1] : 0;
    return l;
}

/* ---- main ----------------------------------------------------------------- */

/* A duration as Go writes it (1s, 200ms, 10m); with `times` (-benchtime),
 * also a count of iterations (100x), which goes to *times and returns 0. */
static int64_t parse_duration(const char *flag, const char *s, int64_t *times)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || v > 9e18)
        bench_fatal("%s: bad value '%s'", flag, s);
    if (times && strcmp(end, "x") == 0) {
        *times = (int64_t)v;
        return 0;
    }
    static const struct { const char *unit; double ns; } units[] = {
        {"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0 && v * units[i].ns < 9e18)
            return (int64_t)(v * units[i].ns);
    if (v == 0 && !*end && !times)
        return 0; /* -timeout 0, as Go takes it: no limit */
    bench_fatal("%s: bad unit in '%s' (want e.g. 1s, 200ms%s)", flag, s, times ? " or 100x" : "");
}

/* Go's cpu: line is the CPUID brand string, not /proc/cpuinfo's model name. */
static void cpu_name(char *out, size_t size)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned r[12] = {0};
    unsigned max = __get_cpuid_max(0x80000000, NULL);
    if (max < 0x80000004) {
        out[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    char buf[49] = {0};
    memcpy(buf, r, 48);
    const char *p = buf;
    while (*p == ' ')
        p++;
    snprintf(out, size, "%s", p);
#else
    snprintf(out, size, "unknown");
#endif
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [-bench REGEX] [-benchtime 1s|200ms|100x] [-count N] [-benchmem]\n"
            "          [-timeout 10m]   (the limit on each run, timed or counting; 0: none)\n",
            program_invocation_short_name);
    exit(2);
}

void bench_init(int argc, char **argv, const char *banner)
{
    for (int i = 1; i < argc; i++) {
        /* Go accepts -flag=value, -flag value and --flag alike; so do we. */
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-')
            a++;
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
#define FLAG(k) (klen == strlen(k) && strncmp(a, k, klen) == 0)
#define VALUE() (eq ? eq + 1 : (i + 1 < argc ? argv[++i] : (usage(), "")))
        if (FLAG("-bench") || FLAG("-test.bench"))
            set_filter(VALUE());
        else if (FLAG("-benchtime") || FLAG("-test.benchtime"))
            opt.benchtime_ns = parse_duration("-benchtime", VALUE(), &opt.benchtime_n);
        else if (FLAG("-timeout") || FLAG("-test.timeout"))
            opt.timeout_ns = parse_duration("-timeout", opt.timeout_arg = VALUE(), NULL);
        else if (FLAG("-count") || FLAG("-test.count"))
            opt.count = atoi(VALUE());
        else if (FLAG("-benchmem") || FLAG("-test.benchmem"))
            ; /* memory is always reported */
        else
            usage();
#undef FLAG
#undef VALUE
    }

    /* GOMAXPROCS is the number of CPUs this process may run on. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        opt.procs = CPU_COUNT(&set);
    if (opt.procs <= 0)
        opt.procs = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (opt.procs <= 0)
        opt.procs = 1;

    if (opt.timeout_ns > 0)
        watchdog_start();

    char cpu[64];
    cpu_name(cpu, sizeof cpu);
    /* The same header as go test, so benchstat puts both runs in one table. */
#if defined(__x86_64__)
    const char *arch = "amd64";
#elif defined(__aarch64__)
    const char *arch = "arm64";
#else
    const char *arch = "unknown";
#endif
    printf("goos: linux\ngoarch: %s\npkg: context\ncpu: %s\n", arch, cpu);
    printf("# %s, %d threads\n", banner, opt.procs);
    /* Go starts the name column at the longest top-level name plus the -N
     * suffix twice plus one, and widens it as sub-benchmarks need. */
    int ext = snprintf(NULL, 0, "-%d", opt.procs);
    opt.max_len = (int)strlen("BenchmarkDeepValueSameGoRoutine") + 2 * ext + 1;
    fflush(stdout); /* the header stays with the output if the watchdog stops us */
}

bool bench_thread_sleeping(int tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_fatal("cannot open %s", path);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the name may hold spaces */
    return rp && rp[1] == ' ' && rp[2] == 'S';
}
