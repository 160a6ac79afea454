/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test files (tests/support.c): an after-function
 * recorder, checks of a context's cause, a value destructor that counts,
 * threads that start together, a watchdog for calls that must return,
 * traces that a failing call must leave as they were, the real clock, and a
 * seeded shuffle.
 */
#ifndef CCTX_TEST_SUPPORT_H
#define CCTX_TEST_SUPPORT_H

#include <cctx.h>
#include <cctx/proc.h>
#include <cctx/propagate.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* ---- after-functions ------------------------------------------------------------ */

/* What one after-function saw. rec_on and rec_watch register rec_fn with
 * `reg`; a test may instead register rec_fn itself, with a cctx_after_t of its
 * own, on a zeroed rec (setting ctx to have fn read it). */
struct rec {
    cctx_after_t reg;
    const cctx_t *ctx; /* if set, fn reads its error, cause and the time */
    atomic_int runs;
    pthread_t thread; /* written before runs is incremented */
    int err;          /* cctx_err(ctx) inside fn */
    int64_t now;      /* cctx_now() inside fn */
    struct {
        int err, code, line; /* err: what cctx_cause(ctx) returned */
        int64_t when;
        char msg[128], file[256], func[256]; /* copies; "(null)" for NULL */
    } cause;
    int *log, *log_n, id; /* if log is set, fn appends id at log[(*log_n)++] */
};

void rec_fn(void *arg);
/* Zeroes r and registers rec_fn on ctx: it counts the runs and notes the thread. */
void rec_on(struct rec *r, cctx_t *ctx);
/* The same, and fn also reads ctx's error and cause and the time. fn holds no
 * reference: the test keeps ctx alive until fn has run (cctx_after_func). */
void rec_watch(struct rec *r, cctx_t *ctx);

/* ---- causes ------------------------------------------------------------------------ */

/* Both causes equal, field by field (strings by content). */
void check_causes_equal(const cctx_cause_t *a, const cctx_cause_t *b);
/* a and b report the same error and the same cause. */
void check_same_cause(const cctx_t *a, const cctx_t *b);
/* c ended with err (as cctx_cause, its err field and cctx_err report it), code
 * and msg, started at `line` of `func` in the calling file. */
#define check_cause(c, err, code, msg, line, func)                                   \
    check_cause_in(__FILE__, (c), (err), (code), (msg), (line), (func))
void check_cause_in(const char *file, const cctx_t *c, int err, int code, const char *msg,
                    int line, const char *func);
/* c is active: cctx_err is 0 and its cause reads as all zeros. */
void check_active(const cctx_t *c);

/* ---- values ---------------------------------------------------------------------- */

/* A value destructor that counts its calls and keeps its last argument. */
extern atomic_int destroyed;
extern void *last_destroyed;
void count_destroy(void *value);

/* ---- threads --------------------------------------------------------------------- */

/* Threads that start at the same moment. gang_init readies a start line for
 * n threads, and for the caller too if `caller`; each gang_spawn starts a
 * thread that waits there and then runs fn(arg); the caller crosses it with
 * gang_go (only if it takes part); gang_join waits for every thread. */
enum { GANG_MAX = 8 };
struct gang {
    pthread_barrier_t start;
    int n, spawned;
    pthread_t threads[GANG_MAX];
    struct gang_member {
        struct gang *gang;
        void (*fn)(void *);
        void *arg;
    } members[GANG_MAX];
};
void gang_init(struct gang *g, int n, bool caller);
void gang_spawn(struct gang *g, void (*fn)(void *), void *arg);
void gang_go(struct gang *g);
void gang_join(struct gang *g);

/* Runs body on a thread and fails the test if it has not returned within
 * `seconds`, rather than at the ctest timeout: a call that must return at
 * once, or soon, and blocks instead fails fast (a signal-based watchdog does
 * not reach a thread stuck on a lock under ThreadSanitizer). */
void run_with_watchdog(void (*body)(void), int seconds);

/* ---- thread states ------------------------------------------------------------------ */

/* The scheduler state of one of this process's threads ('R', 'S', ...), as
 * /proc/self/task/TID/stat gives it; '?' if it is gone. 'S' means blocked
 * (in a futex, poll, read...), not merely descheduled. */
char thread_state(pid_t tid);
/* The calling thread's id, as thread_state takes it. */
pid_t thread_id(void);
/* Returns once thread tid sleeps, seen on five reads in a row 1 ms apart (a
 * brief wait on a contended mutex does not last that long); fails the test
 * after 10 s. */
void wait_until_blocked(pid_t tid);
/* Runs call(arg) on a thread of its own with a pthread_cancel pending (made
 * while cancellation is off, turned back on just before the call, so no
 * cancellation point lies between); true if the call returned, false if the
 * thread was cancelled in it. */
bool returns_with_cancel_pending(void (*call)(void *), void *arg);
/* Joins thread t, which must have ended by a pthread_cancel; and the same
 * after cancelling it. */
void join_cancelled(pthread_t t);
void cancel_and_join(pthread_t t);
/* A thread that holds one of the library's locks, through a test hook that
 * takes it (true) or lets it go (false), from before lock_holder_start
 * returns until the starting thread sleeps: in a fork() that waits for the
 * lock or, had the fork not waited, in waitpid. let_go is set just before
 * the lock is let go. */
struct lock_holder {
    pthread_t thread;
    void (*hold)(bool);
    pid_t starter;
    atomic_int held, let_go;
};
void lock_holder_start(struct lock_holder *h, void (*hold)(bool));
void lock_holder_join(struct lock_holder *h);

/* ---- latches -------------------------------------------------------------------------- */

/* A counter that threads can wait on, and a gate that opens once. Waits fail
 * the test after 10 s rather than hang until the ctest timeout. */
struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    bool open;
};
#define LATCH_INIT                                                                                 \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false                              \
    }
void latch_add(struct latch *l);
int latch_count(struct latch *l);
void latch_wait_n(struct latch *l, int n);
void latch_open(struct latch *l);
void latch_wait_open(struct latch *l);

/* ---- descriptors and text ----------------------------------------------------------- */

/* Lowers RLIMIT_NOFILE to 64 and opens descriptors until none is left, so
 * the next descriptor any call asks for fails with EMFILE; fds_give_back
 * closes them and restores the limit. */
struct fds_used_up {
    struct rlimit old;
    int fds[64], n;
};
void fds_use_up(struct fds_used_up *u);
void fds_give_back(struct fds_used_up *u);

/* One byte from fd within ms of real time: the byte, -1 at end of file, or
 * the test fails. */
int read_byte(int fd, int ms);

/* How many descriptors the process has open (/proc/self/fd). */
int count_open_fds(void);

/* Bytes of the heap in use (glibc's mallinfo2, every arena), or -1 where it
 * cannot be told: another C library, or a sanitizer's allocator. */
long long heap_in_use(void);

/* cctx_dump of root in format, as a malloc'd string. */
char *dump_to_string(cctx_t *root, int format);
/* Whether python3 with its json module can be run (tests that parse JSON). */
bool have_python(void);

/* How many times needle occurs in text, without overlaps. Linear: strstr in
 * a loop is quadratic under ASan's interceptor. */
int count_substr(const char *text, const char *needle);

/* ---- child processes --------------------------------------------------------------- */

/* The test binary's child proc_term_catcher (tests/test_proc.c) under ctx,
 * with kill_after (0: the default): it says 'R' once it catches SIGTERM,
 * then 'T' for each one, echoes what it reads and exits at the end of its
 * input. *to writes to it, *from reads what it says; returns once it said
 * 'R'. */
cctx_proc_t *spawn_term_catcher(cctx_t *ctx, int64_t kill_after, int *to, int *from);

/* Runs `cctx-tests --child NAME` (a CHILD of harness.h) with the extra
 * environment `env` ("NAME=value" strings, NULL-terminated; the sanitizers'
 * leak checking is off in it), waits for it, and returns its wait status and
 * everything it wrote (NUL-terminated, freed by child_done). exec, rather
 * than a bare fork, so that the child starts with the variables read at
 * start-up and ThreadSanitizer lets it start threads. */
struct child {
    int status;
    char *out, *err;
};
void run_child(const char *name, const char *const env[], struct child *c);
/* The same, with exe a copy of this test program (a set-user-ID one, say). */
void run_child_of(const char *exe, const char *name, const char *const env[], struct child *c);
void child_done(struct child *c);
/* Runs `cctx-tests --child NAME` with CCTX_TRACE set to a new temporary
 * file; the child must exit 0. Returns the file's path (freed by the caller). */
char *run_traced(const char *child);

/* Tests that fork() without exec and have the child start threads: skipped
 * under ThreadSanitizer, which kills such a child, and AddressSanitizer,
 * whose allocator is not fork-safe (a child's first thread can wait forever
 * for an allocator lock that a parent thread held at the fork). */
#define SKIP_FORK_UNDER_SANITIZERS()                                                               \
    do {                                                                                           \
        if (TEST_UNDER_TSAN || TEST_UNDER_ASAN)                                                    \
            SKIP_IN_THIS_BUILD("%s (threads in a child of fork)",                                  \
                               TEST_UNDER_TSAN ? "ThreadSanitizer" : "AddressSanitizer");          \
    } while (0)
/* How many threads the process has (/proc/self/task). */
int thread_count(void);
/* fork(), with stdio flushed first (so that the child does not write the
 * parent's buffered output again) and checked; in the child, an alarm of
 * 20 s, so that a hang (a lock held at the fork) dies of SIGALRM, which
 * child_exit_status fails. */
pid_t fork_with_alarm(void);
/* Waits for the child pid, which must have exited (not been killed, by its
 * alarm say), and returns its exit status. */
int child_exit_status(pid_t pid);
/* This process has no child left, zombie or not (CHECKed). */
void check_no_children(void);
/* pid's state letter in /proc (Z for a zombie), or 0 if there is none. */
char proc_state(pid_t pid);
/* "/bin/sh -c script" started under ctx by cctx_proc_spawn (CHECKed). */
cctx_proc_t *spawn_sh(cctx_t *ctx, const char *script, const cctx_proc_opts_t *o);

/* Copies the file from into a new (or emptied) file to, made with mode
 * (CHECKed). */
void copy_file(const char *from, const char *to, mode_t mode);
/* "$TMPDIR/name" (TMPDIR unset or empty: /tmp), freshly allocated: where
 * tests put their files, e.g. a template for mkstemp. Freed by the caller. */
char *temp_path_for(const char *name);

/* A copy of text[0..len) in a heap block of exactly len bytes (at least 1),
 * so that under AddressSanitizer a parser reading past len is caught. */
char *heap_copy_exact(const char *text, size_t len);

/* ---- traces (<cctx/propagate.h>) ----------------------------------------------------- */

/* Sets every byte of t to 0xab; trace_poisoned tells whether t is still so.
 * A parse or a draw that fails must leave its output as it was. */
void poison_trace(cctx_trace_t *t);
bool trace_poisoned(const cctx_trace_t *t);
/* cctx_traceparent_parse of text[0..len), from a heap_copy_exact copy. */
int traceparent_parse_exact(const char *text, size_t len, cctx_trace_t *out);

/* ---- the real clock, whatever clock cctx uses ---------------------------------------- */

int64_t real_now(void); /* CLOCK_MONOTONIC, in nanoseconds */
void real_sleep_ms(int ms);

/* cctx_with_timeout(parent, timeout) whose deadline the timer holds: a
 * thread that runs late past a short deadline before arming it gets a
 * context born done, which no timer fires, and a test that holds or waits
 * for that firing would wait in vain: made again then (up to 100 times,
 * for a parent that is itself done). On the real clock. */
cctx_t *armed_timeout(cctx_t *parent, int64_t timeout);

/* ---- randomness ------------------------------------------------------------------- */

/* xorshift64: deterministic for a given seed in *state. */
uint64_t xorshift64(uint64_t *state);
/* Fisher-Yates shuffle of a[0..n) drawing from xorshift64(state). */
void shuffle(int *a, int n, uint64_t *state);

#endif
