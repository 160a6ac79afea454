/* SPDX-License-Identifier: MIT */
/* Helpers shared by the test files: see support.h. */
#define _GNU_SOURCE
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallinfo2 */
#endif

#include "cctx_config.h" /* CCTX_HAVE_GETTID */
#include "harness.h"

/* ---- after-functions ------------------------------------------------------------ */

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "(null)");
}

void rec_fn(void *arg)
{
    struct rec *r = arg;
    r->thread = pthread_self();
    if (r->ctx) {
        r->now = cctx_now();
        r->err = cctx_err(r->ctx);
        cctx_cause_t c;
        r->cause.err = cctx_cause(r->ctx, &c);
        r->cause.code = c.code;
        r->cause.line = c.line;
        r->cause.when = c.when;
        copy_str(r->cause.msg, sizeof r->cause.msg, c.msg);
        copy_str(r->cause.file, sizeof r->cause.file, c.file);
        copy_str(r->cause.func, sizeof r->cause.func, c.func);
    }
    if (r->log)
        r->log[(*r->log_n)++] = r->id;
    atomic_fetch_add(&r->runs, 1);
}

void rec_on(struct rec *r, cctx_t *ctx)
{
    memset(r, 0, sizeof *r);
    CHECK_EQ(cctx_after_func(ctx, &r->reg, rec_fn, r), 0);
}

void rec_watch(struct rec *r, cctx_t *ctx)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    CHECK_EQ(cctx_after_func(ctx, &r->reg, rec_fn, r), 0);
}

/* ---- causes ------------------------------------------------------------------------ */

void check_causes_equal(const cctx_cause_t *a, const cctx_cause_t *b)
{
    CHECK_EQ(a->err, b->err);
    CHECK_EQ(a->code, b->code);
    CHECK_STR(a->msg, b->msg);
    CHECK_STR(a->file, b->file);
    CHECK_EQ(a->line, b->line);
    CHECK_STR(a->func, b->func);
    CHECK_EQ(a->when, b->when);
}

void check_same_cause(const cctx_t *a, const cctx_t *b)
{
    cctx_cause_t ca, cb;
    int ea = cctx_cause(a, &ca), eb = cctx_cause(b, &cb);
    CHECK_EQ(ea, eb);
    check_causes_equal(&ca, &cb);
}

void check_cause_in(const char *file, const cctx_t *c, int err, int code, const char *msg,
                    int line, const char *func)
{
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), err);
    CHECK_EQ(cause.err, err);
    CHECK_EQ(cctx_err(c), err);
    CHECK_EQ(cause.code, code);
    CHECK_STR(cause.msg, msg);
    CHECK_STR(cause.file, file);
    CHECK_EQ(cause.line, line);
    CHECK_STR(cause.func, func);
}

void check_active(const cctx_t *c)
{
    CHECK_EQ(cctx_err(c), 0);
    cctx_cause_t cause;
    memset(&cause, 0x5a, sizeof cause); /* cctx_cause must overwrite all of it */
    CHECK_EQ(cctx_cause(c, &cause), 0);
    CHECK_EQ(cause.err, 0);
    CHECK_EQ(cause.code, 0);
    CHECK(cause.msg == NULL && cause.file == NULL && cause.func == NULL);
    CHECK_EQ(cause.line, 0);
    CHECK_EQ(cause.when, 0);
}

/* ---- values ---------------------------------------------------------------------- */

atomic_int destroyed;
void *last_destroyed;

void count_destroy(void *value)
{
    last_destroyed = value;
    atomic_fetch_add(&destroyed, 1);
}

/* ---- threads --------------------------------------------------------------------- */

void gang_init(struct gang *g, int n, bool caller)
{
    CHECK(n >= 1 && n <= GANG_MAX);
    g->n = n;
    g->spawned = 0;
    CHECK_EQ(pthread_barrier_init(&g->start, NULL, (unsigned)(n + (caller ? 1 : 0))), 0);
}

static void *gang_main(void *arg)
{
    struct gang_member *m = arg;
    pthread_barrier_wait(&m->gang->start);
    m->fn(m->arg);
    return NULL;
}

void gang_spawn(struct gang *g, void (*fn)(void *), void *arg)
{
    CHECK(g->spawned < g->n);
    struct gang_member *m = &g->members[g->spawned];
    *m = (struct gang_member){g, fn, arg};
    CHECK_EQ(pthread_create(&g->threads[g->spawned], NULL, gang_main, m), 0);
    g->spawned++;
}

void gang_go(struct gang *g)
{
    pthread_barrier_wait(&g->start);
}

void gang_join(struct gang *g)
{
    for (int i = 0; i < g->spawned; i++)
        CHECK_EQ(pthread_join(g->threads[i], NULL), 0);
    pthread_barrier_destroy(&g->start);
}

static void *run_body(void *arg)
{
    ((void (*)(void))arg)();
    return NULL;
}

void run_with_watchdog(void (*body)(void), int seconds)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, run_body, (void *)body), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    int r = pthread_timedjoin_np(t, NULL, &until);
    if (r == ETIMEDOUT) {
        fprintf(stderr, "test hung: no return within %d s\n", seconds);
        abort();
    }
    CHECK_EQ(r, 0);
}

/* ---- thread states ------------------------------------------------------------------ */

/* With open and read, not stdio: a test may look while another thread holds
 * stdio's locks (an exit() flushing every stream). */
char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return '?';
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    if (n < 0)
        return '?';
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return p && p[1] == ' ' ? p[2] : '?';
}

pid_t thread_id(void)
{
    /* The kernel's id, as /proc/self/task names it: gettid where the libc
     * has it (glibc 2.30, musl 1.2.2), else the system call. */
#if CCTX_HAVE_GETTID
    return gettid();
#else
    return (pid_t)syscall(SYS_gettid);
#endif
}

void wait_until_blocked(pid_t tid)
{
    int64_t until = real_now() + CCTX_SEC(10);
    for (int stable = 0; stable < 5;) {
        CHECK(real_now() < until);
        stable = thread_state(tid) == 'S' ? stable + 1 : 0;
        real_sleep_ms(1);
    }
}

void join_cancelled(pthread_t t)
{
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == PTHREAD_CANCELED);
}

void cancel_and_join(pthread_t t)
{
    CHECK_EQ(pthread_cancel(t), 0);
    join_cancelled(t);
}

static void *hold_until_the_starter_sleeps(void *arg)
{
    struct lock_holder *h = arg;
    h->hold(true);
    atomic_store(&h->held, 1);
    wait_until_blocked(h->starter);
    atomic_store(&h->let_go, 1);
    h->hold(false);
    return NULL;
}

void lock_holder_start(struct lock_holder *h, void (*hold)(bool))
{
    h->hold = hold;
    h->starter = thread_id();
    atomic_store(&h->held, 0);
    atomic_store(&h->let_go, 0);
    CHECK_EQ(pthread_create(&h->thread, NULL, hold_until_the_starter_sleeps, h), 0);
    while (!atomic_load(&h->held))
        real_sleep_ms(1);
}

void lock_holder_join(struct lock_holder *h)
{
    CHECK_EQ(pthread_join(h->thread, NULL), 0);
}

/* ---- descriptors and text ----------------------------------------------------------- */

void fds_use_up(struct fds_used_up *u)
{
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &u->old), 0);
    struct rlimit low = u->old;
    low.rlim_cur = 64;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    u->n = 0;
    while (u->n < 64 && (u->fds[u->n] = dup(0)) >= 0)
        u->n++;
    CHECK(u->n < 64); /* the limit was reached */
}

void fds_give_back(struct fds_used_up *u)
{
    while (u->n > 0)
        close(u->fds[--u->n]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &u->old), 0);
}

int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

long long heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33) && !TEST_UNDER_ASAN &&          \
    !TEST_UNDER_TSAN
    struct mallinfo2 m = mallinfo2();
    return (long long)(m.uordblks + m.hblkhd);
#else
    return -1;
#endif
}

int read_byte(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&pfd, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r != 1) {
        fprintf(stderr, "no byte within %d ms\n", ms);
        abort();
    }
    char c;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    CHECK(n >= 0);
    return n == 0 ? -1 : (unsigned char)c;
}

int count_substr(const char *text, const char *needle)
{
    size_t len = strlen(needle);
    int n = 0;
    for (const char *p = text; *p; p++)
        if (*p == needle[0] && strncmp(p, needle, len) == 0) {
            n++;
            p += len - 1;
        }
    return n;
}

/* ---- child processes ----------------------------------------------------------------- */

cctx_proc_t *spawn_term_catcher(cctx_t *ctx, int64_t kill_after, int *to, int *from)
{
    int in[2], out[2];
    CHECK_EQ(pipe2(in, O_CLOEXEC), 0);
    CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.stdin_fd = in[0];
    o.stdout_fd = out[1];
    o.kill_after = kill_after;
    char *argv[] = {"cctx-tests", "--child", "proc_term_catcher", NULL};
    cctx_proc_t *p = cctx_proc_spawn(ctx, "/proc/self/exe", argv, NULL, &o);
    CHECK(p != NULL);
    close(in[0]);
    close(out[1]);
    *to = in[1];
    *from = out[0];
    CHECK_EQ(read_byte(*from, 30000), 'R');
    return p;
}

static char *slurp(int fd)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    CHECK(buf);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf);
        }
    }
    buf[len] = 0;
    close(fd);
    return buf;
}

void copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(in >= 0 && out >= 0);
    char buf[65536];
    for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;)
        CHECK(write(out, buf, (size_t)n) == n);
    close(in);
    CHECK(close(out) == 0);
}

char *temp_path_for(const char *name)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    char *path;
    CHECK(asprintf(&path, "%.*s/%s", (int)n, dir, name) > 0);
    return path;
}

static int temp_file(void)
{
    char *path = temp_path_for("cctx-child-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    free(path);
    return fd;
}

void run_child(const char *name, const char *const env[], struct child *c)
{
    run_child_of("/proc/self/exe", name, env, c);
}

void run_child_of(const char *exe, const char *name, const char *const env[], struct child *c)
{
    int out = temp_file(), err = temp_file();
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(out, 1);
        dup2(err, 2);
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        unsetenv("CCTX_DEBUG"); /* only what the test asks for */
        unsetenv("CCTX_TRACE");
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execl(exe, "cctx-tests", "--child", name, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    c->status = status;
    c->out = slurp(out);
    c->err = slurp(err);
}

int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

pid_t fork_with_alarm(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        alarm(20);
    return pid;
}

int child_exit_status(pid_t pid)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

void check_no_children(void)
{
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
}

char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    if (n < 0)
        return 0;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

cctx_proc_t *spawn_sh(cctx_t *ctx, const char *script, const cctx_proc_opts_t *o)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    cctx_proc_t *p = cctx_proc_spawn(ctx, "/bin/sh", argv, NULL, o);
    CHECK(p != NULL);
    return p;
}

void child_done(struct child *c)
{
    free(c->out);
    free(c->err);
}

/* ---- the real clock ------------------------------------------------------------------ */

int64_t real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void real_sleep_ms(int ms)
{
    /* tv_nsec must stay below a second (nanosleep refuses more with EINVAL,
     * which would loop here for ever); only an interruption is retried. */
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

cctx_t *armed_timeout(cctx_t *parent, int64_t timeout)
{
    for (int tries = 1;; tries++) {
        cctx_t *c = cctx_with_timeout(parent, timeout, NULL);
        if (!c || cctx_err(c) == 0 || tries == 100)
            return c;
        cctx_release(c);
    }
}

/* ---- randomness ------------------------------------------------------------------- */

uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

void shuffle(int *a, int n, uint64_t *state)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(xorshift64(state) % (uint64_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- dumps ----------------------------------------------------------------------- */

char *dump_to_string(cctx_t *root, int format)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    CHECK(f != NULL);
    CHECK_EQ(cctx_dump(root, f, format), 0);
    CHECK_EQ(fclose(f), 0);
    return data;
}

bool have_python(void)
{
    return system("python3 -c 'import json' >/dev/null 2>&1") == 0;
}

/* Runs a child with CCTX_TRACE set to a new temporary file, which must exit
 * 0, and returns the file's path (freed by the caller). */
char *run_traced(const char *child)
{
    char *name, *path;
    CHECK(asprintf(&name, "cctx-trace-%s-XXXXXX", child) > 0);
    path = temp_path_for(name);
    free(name);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char *env_trace;
    CHECK(asprintf(&env_trace, "CCTX_TRACE=%s", path) > 0);
    const char *env[] = {env_trace, NULL};
    struct child c;
    run_child(child, env, &c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
        fprintf(stderr, "child %s failed (%#x):\n%s\n", child, c.status, c.err);
        abort();
    }
    child_done(&c);
    free(env_trace);
    return path;
}

char *heap_copy_exact(const char *text, size_t len)
{
    char *p = malloc(len ? len : 1);
    CHECK(p);
    memcpy(p, text, len);
    return p;
}

/* ---- traces ------------------------------------------------------------------------ */

void poison_trace(cctx_trace_t *t)
{
    memset(t, 0xab, sizeof *t);
}

bool trace_poisoned(const cctx_trace_t *t)
{
    const unsigned char *p = (const unsigned char *)t;
    for (size_t i = 0; i < sizeof *t; i++)
        if (p[i] != 0xab)
            return false;
    return true;
}

int traceparent_parse_exact(const char *text, size_t len, cctx_trace_t *out)
{
    char *p = heap_copy_exact(text, len);
    int r = cctx_traceparent_parse(p, len, out);
    free(p);
    return r;
}

/* ---- latches ---------------------------------------------------------------------------- */

static void latch_timed_wait(struct latch *l)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int r = pthread_cond_timedwait(&l->cv, &l->mu, &until);
    if (r == ETIMEDOUT) {
        fprintf(stderr, "latch: nothing happened within 10 s\n");
        abort();
    }
}

void latch_add(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->n++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int latch_count(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

void latch_wait_n(struct latch *l, int n)
{
    pthread_mutex_lock(&l->mu);
    while (l->n < n)
        latch_timed_wait(l);
    pthread_mutex_unlock(&l->mu);
}

void latch_open(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->open = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void latch_wait_open(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->open)
        latch_timed_wait(l);
    pthread_mutex_unlock(&l->mu);
}

struct pending_call {
    void (*call)(void *arg);
    void *arg;
    atomic_int returned;
};

static void *call_with_cancel_pending(void *arg)
{
    struct pending_call *p = arg;
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL), 0);
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL), 0);
    p->call(p->arg);
    /* Off again at once: a call that kept the cancel out lets the thread
     * end normally. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    atomic_store(&p->returned, 1);
    return NULL;
}

bool returns_with_cancel_pending(void (*call)(void *), void *arg)
{
    struct pending_call p = {.call = call, .arg = arg};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, call_with_cancel_pending, &p), 0);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    return atomic_load(&p.returned) && ret == NULL;
}
