/* SPDX-License-Identifier: MIT */
/*
 * Section 3 of cctx.h at scale: cancelling reaches a million descendants,
 * deep or wide, each with the root's cause, and releasing them in any order
 * takes constant time each (TEST_MILLION: smaller under the sanitizers).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

enum order { FORWARD, REVERSE, RANDOM };
static const char *const order_name[] = {"forward", "reverse", "random"};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static double secs(int64_t ns)
{
    return (double)ns / 1e9;
}

/* Releases ctx[0..n) in the given order, timing it. */
static int64_t release_all(cctx_t **ctx, int n, enum order order)
{
    int *idx = malloc((size_t)n * sizeof *idx);
    CHECK(idx != NULL);
    for (int i = 0; i < n; i++)
        idx[i] = order == REVERSE ? n - 1 - i : i;
    if (order == RANDOM)
        shuffle(idx, n, &rng_state);
    int64_t t0 = cctx_now();
    for (int i = 0; i < n; i++)
        cctx_release(ctx[idx[i]]);
    int64_t t = cctx_now() - t0;
    free(idx);
    return t;
}

/* Room for n contexts; the library's live blocks are counted from here on. */
static cctx_t **contexts_begin(int n, long *live0)
{
    cctx__test_count_allocs(true);
    *live0 = cctx__test_live_allocs();
    cctx_t **ctx = malloc((size_t)n * sizeof *ctx);
    CHECK(ctx != NULL);
    return ctx;
}

/* Every block the library allocated since contexts_begin is freed. */
static void contexts_end(cctx_t **ctx, long live0)
{
    CHECK_EQ(cctx__test_live_allocs(), live0);
    cctx__test_count_allocs(false);
    free(ctx);
}

/* Every ctx[0..n) ended as root did: ECANCELED, with the code and line of the
 * cancellation and its time. */
static void check_all_canceled(cctx_t **ctx, int n, const cctx_t *root, int code, int line)
{
    cctx_cause_t rc;
    CHECK_EQ(cctx_cause(root, &rc), ECANCELED);
    for (int i = 0; i < n; i++) {
        cctx_cause_t c;
        CHECK_EQ(cctx_cause(ctx[i], &c), ECANCELED);
        CHECK_EQ(c.code, code);
        CHECK_EQ(c.line, line);
        CHECK_EQ(c.when, rc.when);
    }
}

/* Prints the times of a build, cancel and release of n contexts; the cancel
 * and the release each take less than 5 s. */
static void report_times(int n, const char *shape, int64_t built, int64_t tc, enum order order,
                         int64_t tr)
{
    fprintf(stderr, "%d %s: built %.3f s, cancel %.3f s, release (%s) %.3f s\n", n, shape,
            secs(built), secs(tc), order_name[order], secs(tr));
    CHECK(tc < CCTX_SEC(5));
    CHECK(tr < CCTX_SEC(5));
}

/* A chain n deep under root, every level held; cancel the root (or not),
 * check that every level ended with the root's cause, release in `order`. */
static void deep_chain(enum order order, bool cancel_first)
{
    const int n = TEST_MILLION;
    long start;
    cctx_t **ctx = contexts_begin(n, &start);
    cctx_cancel_t *cancel;
    int64_t t0 = cctx_now();
    ctx[0] = cctx_with_cancel(cctx_background(), &cancel);
    for (int i = 1; i < n; i++) {
        ctx[i] = cctx_with_cancel(ctx[i - 1], NULL);
        CHECK(ctx[i] != NULL);
    }
    struct rec leaf;
    rec_on(&leaf, ctx[n - 1]);
    int64_t t1 = cctx_now();
    int64_t tc = 0;
    if (cancel_first) {
        const int line = __LINE__; cctx_cancel_cause(cancel, 1234, "deep");
        tc = cctx_now() - t1;
        check_all_canceled(ctx, n, ctx[0], 1234, line);
        cctx_cause_t lc;
        cctx_cause(ctx[n - 1], &lc);
        CHECK_STR(lc.msg, "deep");
        check_same_cause(ctx[n - 1], ctx[0]);
        CHECK_EQ(atomic_load(&leaf.runs), 1);
    }
    int64_t tr = release_all(ctx, n, order);
    CHECK_EQ(atomic_load(&leaf.runs), 1);
    report_times(n, "deep", t1 - t0, tc, order, tr);
    contexts_end(ctx, start);
}

/* One parent with n children, every child held. */
static void wide_fanout(enum order order, bool cancel_first)
{
    const int n = TEST_MILLION;
    long start;
    cctx_t **ctx = contexts_begin(n, &start);
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    struct rec rroot;
    rec_on(&rroot, root);
    int64_t t0 = cctx_now();
    for (int i = 0; i < n; i++) {
        ctx[i] = cctx_with_cancel(root, NULL);
        CHECK(ctx[i] != NULL);
    }
    int64_t t1 = cctx_now();
    int64_t tc = 0;
    if (cancel_first) {
        const int line = __LINE__; cctx_cancel_cause(cancel, 4321, "wide");
        tc = cctx_now() - t1;
        check_all_canceled(ctx, n, root, 4321, line);
        check_same_cause(ctx[n / 2], root);
    }
    /* Without a cancel first, every release detaches a child from an active
     * parent: that must not cost more than constant time each. */
    int64_t tr = release_all(ctx, n, order);
    if (!cancel_first)
        check_active(root);
    CHECK_EQ(atomic_load(&rroot.runs), cancel_first ? 1 : 0);
    cctx_release(root);
    CHECK_EQ(atomic_load(&rroot.runs), 1);
    report_times(n, "wide", t1 - t0, tc, order, tr);
    contexts_end(ctx, start);
}

TEST(cancel_million_deep_chain_then_release_forward)
{
    deep_chain(FORWARD, true);
}

TEST(cancel_million_deep_chain_then_release_reverse)
{
    deep_chain(REVERSE, true);
}

TEST(cancel_million_deep_chain_then_release_random)
{
    deep_chain(RANDOM, true);
}

TEST(cancel_million_deep_chain_released_uncanceled_forward)
{
    deep_chain(FORWARD, false);
}

TEST(cancel_million_deep_chain_released_uncanceled_random)
{
    deep_chain(RANDOM, false);
}

TEST(cancel_million_wide_fanout_then_release_forward)
{
    wide_fanout(FORWARD, true);
}

TEST(cancel_million_wide_fanout_then_release_reverse)
{
    wide_fanout(REVERSE, true);
}

TEST(cancel_million_wide_fanout_then_release_random)
{
    wide_fanout(RANDOM, true);
}

TEST(cancel_million_wide_fanout_released_uncanceled_forward)
{
    wide_fanout(FORWARD, false);
}

TEST(cancel_million_wide_fanout_released_uncanceled_reverse)
{
    wide_fanout(REVERSE, false);
}

TEST(cancel_million_wide_fanout_released_uncanceled_random)
{
    wide_fanout(RANDOM, false);
}

/* A million-deep chain mixing every kind, cancelled at the root. */
TEST(cancel_million_deep_mixed_chain_reaches_the_leaf)
{
    static const char key;
    const int n = TEST_MILLION;
    cctx_t **ctx = malloc((size_t)n * sizeof *ctx);
    CHECK(ctx != NULL);
    cctx_cancel_t *cancel;
    int64_t far = cctx_now() + CCTX_SEC(3600);
    ctx[0] = cctx_with_deadline(cctx_background(), far, &cancel);
    for (int i = 1; i < n; i++) {
        switch (i % 3) {
        case 0:
            ctx[i] = cctx_with_cancel(ctx[i - 1], NULL);
            break;
        case 1:
            ctx[i] = cctx_with_value(ctx[i - 1], &key, NULL, NULL);
            break;
        default:
            /* Not earlier than the root's: a plain cancelable context. */
            ctx[i] = cctx_with_deadline(ctx[i - 1], far + i, NULL);
            break;
        }
        CHECK(ctx[i] != NULL);
    }
    int64_t t0 = cctx_now();
    cctx_cancel(cancel);
    int64_t tc = cctx_now() - t0;
    for (int i = 0; i < n; i++)
        CHECK_EQ(cctx_err(ctx[i]), ECANCELED);
    check_same_cause(ctx[n - 1], ctx[0]);
    int64_t tr = release_all(ctx, n, RANDOM);
    fprintf(stderr, "%d deep mixed: cancel %.3f s, release (random) %.3f s\n", n, secs(tc),
            secs(tr));
    CHECK(tc < CCTX_SEC(5));
    CHECK(tr < CCTX_SEC(5));
    free(ctx);
}
