/* SPDX-License-Identifier: MIT */
/*
 * cctx_dump and names where they meet other threads: a dump that runs out of
 * memory while another thread lets go of the child it is taking never drops
 * a reference under the lock that freeing the child needs, and one whose
 * reference is a context's last runs none of that context's after-functions
 * itself; a fork while
 * another thread holds the table of names leaves the child able to name;
 * and the text form escapes the control characters that UTF-8 can carry.
 */
#define _GNU_SOURCE
#include <cctx.h>

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
