/* SPDX-License-Identifier: MIT */
/*
 * cctx_dump and names where they meet other threads: a dump that runs out of
 * memory while another thread lets go of the child it is taking never drops
 * a reference under the lock that freeing the child needs, and one whose
 * reference is a context's last runs none of that context's after-functions
 * itself; a fork while
 * another thread holds the table of names leaves the child able to name;
 * and the text form escapes the control characters that UTF-8 can carry.
 * At exit, neither a dump nor a laggy pass makes the leak report count
 * its references as leaks; the report escapes names, and the JSON dump
 * gives an unnamed context on the way a null name; a dump onto a full disk
 * says so; and the table of names grows with the contexts named.
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- a dump out of memory -------------------------------------------------------- */

enum { KIDS = 65 }; /* the dump's stack starts with room for 64 */

static cctx_t *victim;
static atomic_int armed, released;
static _Atomic pid_t releaser_tid;

static void *release_victim(void *arg)
{
    (void)arg;
    atomic_store(&releaser_tid, thread_id());
    cctx_release(victim);
    atomic_store(&released, 1);
    return NULL;
}

/* The stack's growth, with the dump holding the root's lock: the victim's
 * owner lets go of it on another thread (at once, or blocked on that lock
 * if its reference is the last), and then the growth fails. */
static pthread_t releaser;
static void *grow_while_the_owner_lets_go(void *p, size_t size)
{
    if (!p || !atomic_exchange(&armed, 0))
        return realloc(p, size);
    CHECK_EQ(pthread_create(&releaser, NULL, release_victim, NULL), 0);
    for (int streak = 0, tries = 0; streak < 5 && !atomic_load(&released); tries++) {
        CHECK(tries < 10000);
        pid_t tid = atomic_load(&releaser_tid);
        streak = tid && thread_state(tid) == 'S' ? streak + 1 : 0;
        real_sleep_ms(1);
    }
    return NULL;
}

static void body_dump_out_of_memory(void)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *kids[KIDS];
    for (int i = 0; i < KIDS; i++)
        CHECK((kids[i] = cctx_with_cancel(root, NULL)) != NULL);
    /* The list is newest first: the push that grows the stack is the
     * oldest child's. Its owner's reference is about to be the only one. */
    victim = kids[0];
    FILE *out = fopen("/dev/null", "w");
    CHECK(out);
    atomic_store(&armed, 1);
    atomic_store_explicit(&cctx__dump_stack_realloc, grow_while_the_owner_lets_go,
                          memory_order_relaxed);
    CHECK_EQ(cctx_dump(root, out, CCTX_DUMP_TEXT), ENOMEM);
    atomic_store_explicit(&cctx__dump_stack_realloc, realloc, memory_order_relaxed);
    CHECK_EQ(pthread_join(releaser, NULL), 0);
    CHECK(atomic_load(&released));
    fclose(out);
    for (int i = 1; i < KIDS; i++)
        cctx_release(kids[i]);
    cctx_release(root);
}

TEST(dump_out_of_memory_while_a_child_is_let_go_returns_enomem)
{
    run_with_watchdog(body_dump_out_of_memory, 30);
}

/* ---- a dump holding the last reference ------------------------------------------ */

/* A dump's reference may turn out to be a context's last (its owner let go
 * meanwhile). Dropping it ends the context, which runs its after-functions:
 * one that blocks (here until the test lets it go, 10 s at most) must not
 * hold up the dump, nor so the thread that serves CCTX_DEBUG=inspect. */
static cctx_t *let_go;
static atomic_int let_go_armed, blocker_entered, blocker_go;
static _Atomic pid_t blocker_tid;

static void block_until_told(void *arg)
{
    (void)arg;
    atomic_store(&blocker_tid, thread_id());
    atomic_store(&blocker_entered, 1);
    for (int i = 0; i < 10000 && !atomic_load(&blocker_go); i++)
        real_sleep_ms(1);
}

/* The stack's growth, with the dump holding a reference on the newest
 * child already: its owner lets go of it, which is not the last release. */
static void *grow_while_the_owner_lets_go_last(void *p, size_t size)
{
    if (p && atomic_exchange(&let_go_armed, 0))
        cctx_release(let_go);
    return realloc(p, size);
}

TEST(dump_holding_the_last_reference_runs_no_after_function_itself)
{
    cctx_t *root = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *kids[KIDS];
    for (int i = 0; i < KIDS; i++)
        CHECK((kids[i] = cctx_with_cancel(root, NULL)) != NULL);
    let_go = kids[KIDS - 1]; /* the newest: the first the dump takes */
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(let_go, &reg, block_until_told, NULL), 0);
    FILE *out = fopen("/dev/null", "w");
    CHECK(out);
    atomic_store(&let_go_armed, 1);
    atomic_store_explicit(&cctx__dump_stack_realloc, grow_while_the_owner_lets_go_last,
                          memory_order_relaxed);
    int64_t t0 = real_now();
    int err = cctx_dump(root, out, CCTX_DUMP_TEXT);
    int64_t took = real_now() - t0;
    atomic_store_explicit(&cctx__dump_stack_realloc, realloc, memory_order_relaxed);
    for (int i = 0; i < 10000 && !atomic_load(&blocker_entered); i++)
        real_sleep_ms(1);
    atomic_store(&blocker_go, 1);
    CHECK_EQ(err, 0);
    CHECK(!atomic_load(&let_go_armed)); /* the owner did let go during the dump */
    CHECK(atomic_load(&blocker_entered));
    CHECK(atomic_load(&blocker_tid) != thread_id());
    CHECK(took < CCTX_SEC(5));
    fclose(out);
    for (int i = 0; i < KIDS - 1; i++)
        cctx_release(kids[i]);
    cctx_release(root);
}

/* ---- names across fork() ------------------------------------------------------------ */

TEST(names_fork_while_another_thread_holds_the_table_leaves_the_child_naming)
{
    if (TEST_UNDER_TSAN) { /* the child's exit reports the holder as a leaked thread */
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports the forking parent's threads as leaked");
    }
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_set_name(c, "before"), 0);
    struct lock_holder holder; /* the table of names, until the fork sleeps */
    lock_holder_start(&holder, cctx__test_hold_names_lock);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a hang dies of SIGALRM, which fails the test */
        if (cctx_set_name(c, "in the child") != 0 || strcmp(cctx_name(c), "in the child") != 0)
            _exit(10);
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    lock_holder_join(&holder);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_STR(cctx_name(c), "before");
    cctx_release(c);
}

/* ---- control characters in UTF-8 ------------------------------------------------------ */

TEST(dump_text_escapes_c1_controls_and_line_separators)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    /* NEL (U+0085), CSI (U+009B), LINE and PARAGRAPH SEPARATOR, and an
     * e-acute that stays as it is. */
    CHECK_EQ(cctx_set_name(c, "a\xc2\x85"
                              "b\xc2\x9b"
                              "c\xe2\x80\xa8"
                              "d\xe2\x80\xa9"
                              "e\xc3\xa9"),
             0);
    char *text = NULL, *dot = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK(out);
    CHECK_EQ(cctx_dump(c, out, CCTX_DUMP_TEXT), 0);
    fclose(out);
    CHECK(strstr(text, "a\\u0085b\\u009bc\\u2028d\\u2029e\xc3\xa9") != NULL);
    CHECK(strstr(text, "\xc2\x85") == NULL && strstr(text, "\xe2\x80\xa8") == NULL);
    out = open_memstream(&dot, &len);
    CHECK(out);
    CHECK_EQ(cctx_dump(c, out, CCTX_DUMP_DOT), 0);
    fclose(out);
    CHECK(strstr(dot, "a b c d e\xc3\xa9") != NULL);
    free(text);
    free(dot);
    cctx_release(c);
}

/* ---- dumps and laggy passes as the process exits ----------------------------------- */

/* The leak report at exit waits for the dumps under way and counts what is
 * still held as leaked. A dump counted itself only after its snapshot had
 * taken a reference on every context, and a laggy pass never did: a
 * program that released everything and exited during one had thousands of
 * contexts reported (and, with strict, exit status 1). Now each counts
 * itself before it takes a reference, and none starts once the report has
 * begun: it writes nothing and returns ENOTSUP. */
struct dump_try {
    int rc;
    size_t len;
};

static void *try_dump(void *arg)
{
    struct dump_try *d = arg;
    char *text = NULL;
    FILE *m = open_memstream(&text, &d->len);
    CHECK(m != NULL);
    d->rc = cctx_dump(NULL, m, CCTX_DUMP_TEXT);
    CHECK_EQ(fclose(m), 0);
    free(text);
    return NULL;
}

/* Called by the leak report with each context it lists (under the lock
 * of the registry's shard: a dump that went on to take references would
 * wait for it for ever, hence the alarm). */
static void dump_from_another_thread(struct cctx *c)
{
    (void)c;
    static atomic_int once;
    if (atomic_exchange(&once, 1))
        return;
    struct dump_try d = {-1, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, try_dump, &d), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    fprintf(stderr, "dump during the report: %d, %zu bytes\n", d.rc, d.len);
}

CHILD(dumps_during_its_leak_report)
{
    alarm(20);
    atomic_store(&cctx__leak_walk_hook, dump_from_another_thread);
    cctx_t *kept = cctx_with_cancel(cctx_background(), NULL);
    CHECK(kept != NULL); /* left for the report to find */
}

TEST(dump_begun_during_the_leak_report_at_exit_takes_nothing)
{
    const char *env[] = {"CCTX_DEBUG=leaks", NULL};
    struct child c;
    run_child("dumps_during_its_leak_report", env, &c);
    char want[64];
    snprintf(want, sizeof want, "dump during the report: %d, 0 bytes", ENOTSUP);
    if (!strstr(c.err, want))
        fprintf(stderr, "%.600s\n", c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, want) != NULL);
    CHECK(strstr(c.err, "1 context never released") != NULL);
    child_done(&c);
}

/* A laggy pass takes a reference on each canceled context it looks at.
 * Each child cancels contexts, releases them all and exits; the exits fall
 * at different moments of the passes (every 50 ms). */
enum { EXIT_KIDS = 20000, EXIT_RUNS = 20 };

CHILD(exits_while_laggy_looks)
{
    /* The report waits a second for the passes under way; a slow build
     * (ThreadSanitizer's) can take longer over 20,000 contexts. */
    atomic_store(&cctx__leak_report_dump_wait, CCTX_SEC(30));
    static cctx_t *kids[EXIT_KIDS];
    static cctx_cancel_t *cancels[EXIT_KIDS];
    for (int i = 0; i < EXIT_KIDS; i++)
        kids[i] = cctx_with_cancel(cctx_background(), &cancels[i]);
    for (int i = 0; i < EXIT_KIDS; i++)
        cctx_cancel(cancels[i]);
    const char *delay = getenv("EXIT_DELAY_US");
    real_sleep_ms(delay ? atoi(delay) / 1000 : 0);
    for (int i = 0; i < EXIT_KIDS; i++)
        cctx_release(kids[i]); /* everything let go: nothing leaks */
}

TEST(laggy_pass_running_as_the_process_exits_is_no_leak)
{
    for (int i = 0; i < EXIT_RUNS; i++) {
        char delay[64];
        snprintf(delay, sizeof delay, "EXIT_DELAY_US=%d", (i * 7919) % 50000);
        const char *env[] = {"CCTX_DEBUG=leaks,strict,laggy=100ms", delay, NULL};
        struct child c;
        run_child("exits_while_laggy_looks", env, &c);
        if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
            fprintf(stderr, "run %d:\n%.600s\n", i, c.err);
        CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
        CHECK(strstr(c.err, "never released") == NULL);
        child_done(&c);
    }
}

/* ---- names in the leak report and the JSON dump ------------------------------------ */

/* The leak report wrote names raw: a name could forge its lines, or send a
 * terminal its escapes. It escapes them as the text dump does. */
CHILD(leaks_a_context_named_badly)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_set_name(c, "x\"\ncctx: 0 contexts never released\x1b[2J\xff"), 0);
}

TEST(leak_report_escapes_names)
{
    const char *env[] = {"CCTX_DEBUG=leaks", NULL};
    struct child c;
    run_child("leaks_a_context_named_badly", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "1 context never released") != NULL);
    CHECK(strstr(c.err, "\ncctx: 0 contexts never released") == NULL);
    CHECK(strchr(c.err, '\x1b') == NULL);
    CHECK(strstr(c.err, "\"x\\\"\\ncctx: 0 contexts never released\\x1b[2J\\xff\"") != NULL);
    child_done(&c);
}

/* An unnamed context on the way ("via") has a null name, as a context's
 * own missing name is, not "", which a context named "" has. */
TEST(dump_json_via_without_a_name_is_null)
{
    cctx_cancel_t *cancel;
    cctx_t *p = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *v = cctx_with_value(p, &cancel, NULL, NULL); /* unnamed */
    cctx_t *c = cctx_with_cancel(v, NULL);
    char *s = dump_to_string(p, CCTX_DUMP_JSON);
    CHECK(strstr(s, "\"via\":[{") != NULL);
    CHECK(strstr(s, "\"kind\":\"value\",\"name\":null") != NULL);
    free(s);
    cctx_release(c);
    cctx_release(v);
    cctx_cancel(cancel);
    cctx_release(p);
}

/* A dump that fits in the stream's buffer reaches the file only when the
 * buffer is flushed: a dump onto a full disk returned 0 and lost every line
 * of it at the caller's fclose. The dump flushes at its end, so that its
 * result says whether it was written. */
TEST(dump_onto_a_full_disk_is_eio)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    for (int f = CCTX_DUMP_TEXT; f <= CCTX_DUMP_HTML; f++) {
        FILE *full = fopen("/dev/full", "w");
        CHECK(full != NULL);
        CHECK_EQ(cctx_dump(c, full, f), EIO);
        fclose(full);
    }
    cctx_release(c);
}

/* 100,000 named contexts: a lookup of a name (every name, free and dump
 * line) walks a short chain. With a fixed table of 256 buckets it walked
 * some 400 entries, under the one lock, and the dump of 200,000 named
 * contexts took seconds. */
TEST(names_table_grows_with_the_contexts_named)
{
    enum { N = 100000 };
    cctx_t *p = cctx_with_cancel(cctx_background(), NULL);
    cctx_t **c = malloc(N * sizeof *c);
    CHECK(c != NULL);
    for (int i = 0; i < N; i++) {
        c[i] = cctx_with_cancel(p, NULL);
        CHECK(c[i] != NULL);
        CHECK_EQ(cctx_set_name(c[i], i % 2 ? "odd" : "even"), 0);
    }
    size_t longest = cctx__test_names_longest_chain();
    if (longest > 32)
        fprintf(stderr, "longest chain of names: %zu\n", longest);
    CHECK(longest <= 32);
    for (int i = 0; i < N; i += 1000)
        CHECK_STR(cctx_name(c[i]), "even");
    for (int i = 0; i < N; i++)
        cctx_release(c[i]);
    free(c);
    cctx_release(p);
}
