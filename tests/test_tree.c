/* SPDX-License-Identifier: MIT */
/*
 * Section 1 of cctx.h: the roots, references, releasing, CCTX_AUTO and the
 * lifetimes they give (a child keeps its parent alive; the last release
 * cancels with ECANCELED and runs the after-functions; any release order).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "support.h"
#include "internal.h" /* a context's lock and list, for what a release takes */
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    return xorshift64(&rng_state);
}

static void check_root(cctx_t *root)
{
    static const char key;
    CHECK(root != NULL);
    int64_t d = 12345;
    CHECK(!cctx_deadline(root, &d));
    CHECK_EQ(cctx_remaining(root), CCTX_NO_DEADLINE);
    CHECK(cctx_value(root, &key) == NULL);
    check_active(root); /* no error, and a cause of all zeros */
}

/* ---- roots ---------------------------------------------------------------------- */

TEST(tree_background_is_never_canceled_and_has_no_deadline_or_values)
{
    cctx_t *bg = cctx_background();
    check_root(bg);
    CHECK(cctx_background() == bg);
    CHECK_STR(cctx_name(bg), "background");
    /* A child of background can be canceled without touching background. */
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(bg, &cancel);
    CHECK(c != NULL && c != bg && cancel != NULL);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(c), ECANCELED);
    check_root(bg);
    cctx_release(c);
    check_root(bg);
}

TEST(tree_todo_is_a_distinct_root_with_the_same_behaviour)
{
    cctx_t *todo = cctx_todo();
    check_root(todo);
    CHECK(cctx_todo() == todo);
    CHECK(todo != cctx_background());
    CHECK_STR(cctx_name(todo), "todo");
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(todo, &cancel);
    CHECK(c != NULL);
    CHECK_EQ(cctx_err(c), 0);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(c), ECANCELED);
    check_root(todo);
    cctx_release(c);
}

TEST(tree_ref_and_release_on_roots_do_nothing)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_t *roots[2] = {cctx_background(), cctx_todo()};
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 1000; i++)
            CHECK(cctx_ref(roots[r]) == roots[r]);
        /* More releases than refs: a root has no count to underflow. */
        for (int i = 0; i < 5000; i++)
            cctx_release(roots[r]);
        check_root(roots[r]);
        cctx_t *c = cctx_with_cancel(roots[r], NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_err(c), 0);
        cctx_release(c);
    }
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

/* ---- references ------------------------------------------------------------------ */

TEST(tree_ref_returns_the_context_and_delays_the_final_release)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    struct rec r;
    rec_watch(&r, c);
    CHECK(cctx_ref(c) == c);
    CHECK(cctx_ref(c) == c);
    cctx_release(c);
    cctx_release(c);
    /* One reference left: still alive, still active, after-function not run. */
    CHECK_EQ(atomic_load(&r.runs), 0);
    CHECK_EQ(cctx_err(c), 0);
    CHECK(cctx__test_live_allocs() > start);
    cctx_release(c);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.cause.err, ECANCELED);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

TEST(tree_last_release_cancels_with_ecanceled_at_the_releasing_call)
{
    cctx_t *kinds[3];
    cctx_cancel_t *cancel;
    kinds[0] = cctx_with_cancel(cctx_background(), &cancel);
    kinds[1] = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &cancel);
    kinds[2] = cctx_with_deadline_cause(cctx_background(), cctx_now() + CCTX_SEC(3600), 77,
                                        "late", &cancel);
    for (int k = 0; k < 3; k++) {
        CHECK(kinds[k] != NULL);
        struct rec r;
        rec_watch(&r, kinds[k]);
        CHECK_EQ(atomic_load(&r.runs), 0);
        int64_t before = cctx_now();
        const int line = __LINE__; cctx_release(kinds[k]);
        int64_t after = cctx_now();
        CHECK_EQ(atomic_load(&r.runs), 1);
        CHECK(pthread_equal(r.thread, pthread_self()));
        CHECK_EQ(r.cause.err, ECANCELED);
        CHECK_EQ(r.cause.code, 0);
        CHECK_STR(r.cause.msg, "context canceled");
        CHECK_STR(r.cause.file, __FILE__);
        CHECK_EQ(r.cause.line, line);
        CHECK_STR(r.cause.func, __func__);
        CHECK(r.cause.when >= before && r.cause.when <= after);
    }
}

static void *release_in_thread(void *arg)
{
    cctx_t *c = arg;
    CHECK_EQ(cctx_err(c), 0);
    cctx_release(c);
    return NULL;
}

TEST(tree_reference_handed_to_a_thread_is_released_there)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    struct rec r;
    rec_watch(&r, c);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, release_in_thread, cctx_ref(c)), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* The thread's release was not the last one. */
    CHECK_EQ(atomic_load(&r.runs), 0);
    CHECK_EQ(cctx_err(c), 0);
    cctx_release(c);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.cause.err, ECANCELED);
}

struct churn {
    cctx_t *ctx;
    int iters;
};

static void *ref_release_churn(void *arg)
{
    struct churn *ch = arg;
    for (int i = 0; i < ch->iters; i++) {
        cctx_t *mine = cctx_ref(ch->ctx);
        CHECK(mine == ch->ctx);
        CHECK_EQ(cctx_err(mine), 0);
        cctx_release(mine);
    }
    return NULL;
}

TEST(tree_concurrent_ref_and_release_keep_an_exact_count)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    struct rec r;
    rec_watch(&r, c);
    enum { THREADS = 8 };
    struct churn ch = {c, TEST_UNDER_TSAN ? 2000 : 50000};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, ref_release_churn, &ch), 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(atomic_load(&r.runs), 0);
    CHECK_EQ(cctx_err(c), 0);
    cctx_release(c);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

TEST(tree_cancel_handle_stays_valid_while_any_reference_remains)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *child = cctx_with_cancel(c, NULL);
    cctx_ref(c);
    cctx_release(c); /* the creator's reference; the extra one remains */
    CHECK_EQ(cctx_err(c), 0);
    cctx_cancel_cause(cancel, 5, "still mine");
    CHECK_EQ(cctx_err(c), ECANCELED);
    CHECK_EQ(cctx_err(child), ECANCELED);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(child, &cause), ECANCELED);
    CHECK_EQ(cause.code, 5);
    CHECK_STR(cause.msg, "still mine");
    cctx_release(child);
    cctx_release(c);
}

/* ---- lifetimes ------------------------------------------------------------------- */

static const char value_key;

TEST(tree_child_keeps_its_released_parents_readable)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    int payload = 42;
    cctx_cancel_t *pc;
    int64_t deadline = cctx_now() + CCTX_SEC(3600);
    cctx_t *p = cctx_with_deadline(cctx_background(), deadline, &pc);
    cctx_t *v = cctx_with_value(p, &value_key, &payload, count_destroy);
    cctx_t *c = cctx_with_cancel(v, NULL);
    CHECK(p && v && c);

    /* The message lives in a heap block that is gone before anyone reads it. */
    char *msg = strdup("parent gone");
    CHECK(msg != NULL);
    const int line = __LINE__; cctx_cancel_cause(pc, 9, msg);
    free(msg);
    cctx_release(p);
    cctx_release(v);
    CHECK_EQ(atomic_load(&destroyed), 0); /* v is still held by c */

    /* Everything c inherited is still there. */
    CHECK(cctx_value(c, &value_key) == &payload);
    int64_t d = 0;
    CHECK(cctx_deadline(c, &d));
    CHECK_EQ(d, deadline);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.code, 9);
    CHECK_STR(cause.msg, "parent gone");
    CHECK_STR(cause.file, __FILE__);
    CHECK_EQ(cause.line, line);
    CHECK_STR(cause.func, __func__);

    cctx_release(c);
    CHECK_EQ(atomic_load(&destroyed), 1);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

/* The header's choice: a child's reference on its parent is a reference like
 * any other, so releasing the creator's reference while a child lives does not
 * end the parent; the last release (here, through the child's) does. */
TEST(tree_released_parent_ends_when_its_last_child_goes)
{
    cctx_t *p = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *c = cctx_with_cancel(p, NULL);
    struct rec rp, rc;
    rec_watch(&rp, p);
    rec_watch(&rc, c);
    cctx_release(p);
    CHECK_EQ(atomic_load(&rp.runs), 0);
    CHECK_EQ(cctx_err(c), 0);
    const int line = __LINE__; cctx_release(c);
    CHECK_EQ(atomic_load(&rc.runs), 1);
    CHECK_EQ(atomic_load(&rp.runs), 1);
    CHECK_EQ(rc.cause.err, ECANCELED);
    CHECK_EQ(rp.cause.err, ECANCELED);
    CHECK_EQ(rp.cause.line, line); /* the parent's end started at the same release */
    CHECK_STR(rp.cause.file, __FILE__);
}

/* All 6 orders of releasing a 3-level chain: every context ends exactly once,
 * with ECANCELED, and nothing is left. */
TEST(tree_chain_released_in_every_order_ends_and_frees_everything)
{
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    for (int p = 0; p < 6; p++) {
        atomic_store(&destroyed, 0);
        cctx_t *c[3];
        int x = 1;
        c[0] = cctx_with_cancel(cctx_background(), NULL);
        cctx_t *v = cctx_with_value(c[0], &value_key, &x, count_destroy);
        c[1] = cctx_with_timeout(v, CCTX_SEC(3600), NULL);
        cctx_release(v); /* held by c[1] */
        c[2] = cctx_with_cancel(c[1], NULL);
        struct rec r[3];
        for (int i = 0; i < 3; i++) {
            CHECK(c[i] != NULL);
            rec_watch(&r[i], c[i]);
        }
        for (int i = 0; i < 3; i++) {
            cctx_release(c[perms[p][i]]);
            /* The chain stays readable through whatever is still held. */
            for (int j = i + 1; j < 3; j++) {
                cctx_t *held = c[perms[p][j]];
                if (perms[p][j] >= 1)
                    CHECK(cctx_value(held, &value_key) == &x);
                CHECK(cctx_err(held) == 0 || cctx_err(held) == ECANCELED);
            }
        }
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(atomic_load(&r[i].runs), 1);
            CHECK_EQ(r[i].cause.err, ECANCELED);
        }
        CHECK_EQ(atomic_load(&destroyed), 1);
        CHECK_EQ(cctx__test_live_allocs(), start);
    }
    cctx__test_count_allocs(false);
}

TEST(tree_release_after_cancel_keeps_the_first_cause)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    struct rec r;
    rec_watch(&r, c);
    const int line = __LINE__; cctx_cancel_cause(cancel, 3, "explicit");
    CHECK_EQ(atomic_load(&r.runs), 1);
    cctx_release(c);
    CHECK_EQ(atomic_load(&r.runs), 1); /* not again at release */
    CHECK_EQ(r.cause.code, 3);
    CHECK_STR(r.cause.msg, "explicit");
    CHECK_EQ(r.cause.line, line);
}

TEST(tree_value_and_detached_contexts_free_their_chain_on_release)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    int a = 1, b = 2;
    cctx_t *v1 = cctx_with_value(cctx_background(), &value_key, &a, count_destroy);
    cctx_t *w = cctx_without_cancel(v1);
    cctx_t *v2 = cctx_with_value(w, &value_key, &b, count_destroy);
    cctx_release(v1);
    cctx_release(w);
    CHECK_EQ(atomic_load(&destroyed), 0);
    CHECK(cctx_value(v2, &value_key) == &b);
    cctx_release(v2);
    CHECK_EQ(atomic_load(&destroyed), 2);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

/* Only the leaf is held: its release frees the whole chain, which must be a
 * loop (a recursion 1,000,000 deep would overflow the 8 MiB stack). */
TEST(tree_million_deep_chain_released_from_its_leaf_without_recursion)
{
    /* Smaller under the sanitizers (see TEST_MILLION); the plain build runs
     * the full million, deep enough to overflow the stack if it recursed. */
    const int n = TEST_MILLION;
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    static int payload;
    int values = 0;
    int64_t far = cctx_now() + CCTX_SEC(3600);
    int64_t t0 = cctx_now();
    cctx_t *leaf = cctx_background();
    for (int i = 0; i < n; i++) {
        cctx_t *next;
        switch (i % 4) {
        case 0:
            next = cctx_with_cancel(leaf, NULL);
            break;
        case 1:
            next = cctx_with_value(leaf, &value_key, &payload, count_destroy);
            values++;
            break;
        case 2:
            next = cctx_with_deadline(leaf, far, NULL);
            break;
        default:
            next = cctx_without_cancel(leaf);
            break;
        }
        CHECK(next != NULL);
        cctx_release(leaf);
        leaf = next;
    }
    int64_t t1 = cctx_now();
    CHECK(cctx_value(leaf, &value_key) == &payload);
    CHECK_EQ(atomic_load(&destroyed), 0);
    cctx_release(leaf);
    int64_t t2 = cctx_now();
    fprintf(stderr, "%d-deep chain: built in %.3f s, released from the leaf in %.3f s\n", n,
            (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    CHECK_EQ(atomic_load(&destroyed), values);
    CHECK_EQ(cctx__test_live_allocs(), start);
    CHECK(t2 - t1 < CCTX_SEC(5));
    cctx__test_count_allocs(false);
}

/* ---- CCTX_AUTO ------------------------------------------------------------------- */

TEST(tree_cctx_auto_releases_at_scope_exit)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    struct rec r;
    {
        cctx_cancel_t *cancel;
        CCTX_AUTO cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &cancel);
        CHECK(c != NULL);
        rec_watch(&r, c);
        CHECK_EQ(atomic_load(&r.runs), 0);
    }
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.cause.err, ECANCELED);
    CHECK_STR(r.cause.msg, "context canceled");
    CHECK_STR(r.cause.func, "CCTX_AUTO");

    for (int i = 1; i <= 3; i++) {
        static int payload;
        CCTX_AUTO cctx_t *v = cctx_with_value(cctx_background(), &value_key, &payload,
                                              count_destroy);
        CHECK(cctx_value(v, &value_key) == &payload);
        CHECK_EQ(atomic_load(&destroyed), i - 1);
    }
    CHECK_EQ(atomic_load(&destroyed), 3);

    {
        CCTX_AUTO cctx_t *none = NULL; /* a failed derivation: nothing to release */
        (void)none;
        CCTX_AUTO cctx_t *root = cctx_background();
        (void)root;
    }
    check_root(cctx_background());
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

TEST(tree_cctx_auto_leaves_a_referenced_context_alive)
{
    cctx_t *kept;
    struct rec r;
    {
        CCTX_AUTO cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
        rec_watch(&r, c);
        kept = cctx_ref(c);
    }
    CHECK_EQ(atomic_load(&r.runs), 0);
    CHECK_EQ(cctx_err(kept), 0);
    cctx_release(kept);
    CHECK_EQ(atomic_load(&r.runs), 1);
}

/* Random release order of a random tree: every after-function runs once and
 * every block is freed. */
TEST(tree_random_tree_released_in_random_order_frees_everything)
{
    enum { N = 2000 };
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    static cctx_t *ctx[N];
    static struct rec recs[N];
    static int order[N];
    static bool can_end[N]; /* has a cancelable context at or above it */
    static int payload;
    int values = 0;
    rng_state = 12345;
    for (int i = 0; i < N; i++) {
        int pi = i == 0 ? -1 : (int)(rng() % (uint64_t)i);
        cctx_t *parent = pi < 0 ? cctx_background() : ctx[pi];
        switch (rng() % 4) {
        case 0:
            ctx[i] = cctx_with_cancel(parent, NULL);
            can_end[i] = true;
            break;
        case 1:
            ctx[i] = cctx_with_value(parent, &value_key, &payload, count_destroy);
            can_end[i] = pi >= 0 && can_end[pi];
            values++;
            break;
        case 2:
            ctx[i] = cctx_with_timeout(parent, CCTX_SEC(3600 + (int64_t)(rng() % 100)), NULL);
            can_end[i] = true;
            break;
        default:
            ctx[i] = cctx_without_cancel(parent);
            can_end[i] = false;
            break;
        }
        CHECK(ctx[i] != NULL);
        rec_on(&recs[i], ctx[i]);
        order[i] = i;
    }
    shuffle(order, N, &rng_state);
    for (int i = 0; i < N; i++)
        cctx_release(ctx[order[i]]);
    for (int i = 0; i < N; i++) {
        /* An after-function on a context that can never end never runs;
         * one on a cancelable source runs exactly once. */
        CHECK_EQ(atomic_load(&recs[i].runs), can_end[i] ? 1 : 0);
        if (!can_end[i])
            CHECK(cctx_after_stop(&recs[i].reg));
    }
    CHECK_EQ(atomic_load(&destroyed), values);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

/* ---- what a release locks ----------------------------------------------------- */

static cctx_t *reached_child;

static void release_reached_child(void)
{
    cctx_release(reached_child);
}

/* A child reached by its parent's cancellation was taken out of the parent's
 * list then, so its release has nothing to unlink and takes no lock of the
 * parent's: it returns while another thread holds that lock. */
TEST(release_of_a_child_reached_from_above_takes_no_lock_of_its_parent)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    reached_child = cctx_with_cancel(root, NULL);
    CHECK(root && reached_child);
    cctx_cancel(cancel);
    cctx__lock(root);
    run_with_watchdog(release_reached_child, 10);
    cctx__unlock(root);
    cctx_release(root);
}

/* A child that canceled itself with a cause record (a site given by hand)
 * stays in its parent's list until it is released: its release takes it
 * out. */
TEST(release_of_a_child_that_canceled_itself_takes_it_out_of_the_list)
{
    cctx_cancel_t *own;
    cctx_t *root = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *child = cctx_with_cancel(root, &own);
    CHECK(root && child);
    cctx_cancel_at(own, __FILE__, __LINE__, __func__);
    struct cctx__cancelable *list_owner = (struct cctx__cancelable *)root;
    cctx__lock(root);
    CHECK(list_owner->children != NULL);
    cctx__unlock(root);
    cctx_release(child);
    cctx__lock(root);
    CHECK(list_owner->children == NULL);
    cctx__unlock(root);
    cctx_release(root);
}
