/* SPDX-License-Identifier: MIT */
/*
 * Value lookups jump over runs of value contexts whose summary says the key
 * is not among theirs (layout.h: struct cctx__value). Whatever the shape of
 * the chain and however keys collide in the summary, a lookup must answer
 * exactly as a walk of every context would: the nearest context with the
 * key, or nothing.
 */
#include <cctx.h>
#include <stdint.h>

#include "harness.h"
#include "internal.h" /* struct cctx__value, cctx__key_bit */
#include "support.h"

enum { DEPTH = 100 };

static const char keys[DEPTH];
static const char absent;

/* The answer of a walk of every context, which the lookup must match. */
static void *walk_every_context(const cctx_t *ctx, const void *key)
{
    for (const struct cctx *c = ctx; c; c = c->parent)
        if (cctx__kind(c) == KIND_VALUE && ((const struct cctx__value *)c)->key == key)
            return ((const struct cctx__value *)c)->value;
    return NULL;
}

static void release_chain(cctx_t **chain, int n)
{
    for (int i = n - 1; i >= 0; i--)
        cctx_release(chain[i]);
}

TEST(value_runs_a_long_chain_is_crossed_in_jumps)
{
    cctx_t *chain[DEPTH];
    cctx_t *up = cctx_background();
    for (int i = 0; i < DEPTH; i++)
        up = chain[i] = cctx_with_value(up, &keys[i], (void *)(intptr_t)(i + 1), NULL);
    /* Each run is at most VALUE_WINDOW_MAX long, and all but the lowest
     * are full: from the leaf, the ends of the runs reach the root in
     * DEPTH / VALUE_WINDOW_MAX jumps, rounded up. */
    int jumps = 0;
    const struct cctx *c = chain[DEPTH - 1];
    while (cctx__kind(c) == KIND_VALUE) {
        uintptr_t w = ((const struct cctx__value *)c)->window;
        CHECK((w & VALUE_WINDOW_LEN) >= 1 && (w & VALUE_WINDOW_LEN) <= VALUE_WINDOW_MAX);
        c = (const struct cctx *)(w & ~(uintptr_t)VALUE_WINDOW_LEN);
        jumps++;
    }
    CHECK(c == cctx_background());
    CHECK_EQ(jumps, (DEPTH + (int)VALUE_WINDOW_MAX - 1) / (int)VALUE_WINDOW_MAX);
    /* Every key answers from the leaf and from the middle; above the middle
     * only. The absent key, nowhere. */
    for (int i = 0; i < DEPTH; i++) {
        CHECK_EQ((intptr_t)cctx_value(chain[DEPTH - 1], &keys[i]), (intptr_t)(i + 1));
        CHECK(cctx_value(chain[DEPTH / 2], &keys[i]) ==
              walk_every_context(chain[DEPTH / 2], &keys[i]));
    }
    CHECK(cctx_value(chain[DEPTH - 1], &absent) == NULL);
    release_chain(chain, DEPTH);
}

/* Keys that share one summary bit: each run's summary says "maybe" for all of
 * them, and the lookup must still tell them apart, and find the nearest of
 * two contexts with the same key. */
TEST(value_runs_colliding_keys_and_shadowed_keys_answer_as_a_full_walk)
{
    const void *same_bit[8];
    int n = 0;
    uint32_t want = cctx__key_bit(&keys[0]);
    for (int i = 0; i < DEPTH && n < 8; i++)
        if (cctx__key_bit(&keys[i]) == want)
            same_bit[n++] = &keys[i];
    CHECK(n >= 2); /* 100 keys over 32 bits: some share one */
    cctx_t *chain[24];
    cctx_t *up = cctx_background();
    for (int i = 0; i < 24; i++) {
        /* The same few keys over and over: every one shadowed, at every
         * position of every run. */
        up = chain[i] = cctx_with_value(up, same_bit[i % n], (void *)(intptr_t)(i + 1), NULL);
    }
    for (int at = 0; at < 24; at++)
        for (int k = 0; k < n; k++)
            CHECK(cctx_value(chain[at], same_bit[k]) == walk_every_context(chain[at], same_bit[k]));
    /* A key with another bit, absent from all of them. */
    for (int i = 0; i < DEPTH; i++)
        if (cctx__key_bit(&keys[i]) != want) {
            CHECK(cctx_value(chain[23], &keys[i]) == NULL);
            break;
        }
    release_chain(chain, 24);
}

/* Other kinds between values end a run: the lookup steps over them one at
 * a time and picks up the runs beyond. */
TEST(value_runs_other_kinds_between_values_start_new_runs)
{
    enum { N = 40 };
    cctx_t *chain[N];
    cctx_t *up = cctx_background();
    int values = 0;
    for (int i = 0; i < N; i++) {
        if (i % 5 == 4)
            up = chain[i] = cctx_with_cancel(up, NULL);
        else if (i % 11 == 10)
            up = chain[i] = cctx_without_cancel(up);
        else
            up = chain[i] = cctx_with_value(up, &keys[values++], (void *)(intptr_t)(i + 1), NULL);
        CHECK(up != NULL);
        if (cctx__kind(up) == KIND_VALUE && i > 0 && cctx__kind(chain[i - 1]) != KIND_VALUE)
            CHECK_EQ((unsigned)(((struct cctx__value *)up)->window & VALUE_WINDOW_LEN), 1u);
    }
    for (int at = 0; at < N; at++) {
        for (int k = 0; k < values; k++)
            CHECK(cctx_value(chain[at], &keys[k]) == walk_every_context(chain[at], &keys[k]));
        CHECK(cctx_value(chain[at], &absent) == NULL);
    }
    release_chain(chain, N);
}
