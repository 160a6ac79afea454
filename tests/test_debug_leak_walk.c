/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=leaks: contexts the program lets go of while the report at exit
 * walks the registry (threads still running at exit go on meanwhile) are not
 * listed, however the last hold on them goes: the owner's release, a child's
 * free or an after-function. The walk's hook stands for the program's other
 * thread, at a chosen step of the walk. Each case runs in a child process
 * started with the switch.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

static void check_has(const char *text, const char *want)
{
    if (!strstr(text, want)) {
        fprintf(stderr, "expected to find \"%s\" in:\n%s\n", want, text);
        abort();
    }
}

/* The leak report's walk, at exit: the program's other thread lets go of
 * its reference to each of the first 100 contexts just after the walk took
 * its own (the hook stands for that thread). */
static atomic_int let_go_left = 100;

static void owner_lets_go(cctx_t *c)
{
    if (atomic_fetch_sub(&let_go_left, 1) > 0)
        cctx_release(c);
}

CHILD(released_during_the_report)
{
    for (int i = 0; i < 150; i++)
        cctx_with_cancel(cctx_background(), NULL);
    atomic_store(&cctx__leak_walk_hook, owner_lets_go);
}

TEST(debug_leaks_released_during_the_report_are_not_listed)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("released_during_the_report", env, &c);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), CCTX__LEAK_EXIT_STATUS);
    check_has(c.err, "cctx: 50 contexts never released");
    CHECK(!strstr(c.err, "refs 0"));
    child_done(&c);
}

/* The same thread lets go of each of the first 100 contexts a little later:
 * while the walk takes the next one, after it has counted the references
 * of this one. The report listed those as leaks with "refs 0", and strict
 * made the exit fail for them: whether a context is still held is known
 * only once the walk is over. */
static cctx_t *walked_before;
static atomic_int let_go_later_left = 100;

static void owner_lets_go_later(cctx_t *c)
{
    if (walked_before && atomic_fetch_sub(&let_go_later_left, 1) > 0)
        cctx_release(walked_before);
    walked_before = c;
}

CHILD(released_later_during_the_report)
{
    for (int i = 0; i < 150; i++)
        cctx_with_cancel(cctx_background(), NULL);
    atomic_store(&cctx__leak_walk_hook, owner_lets_go_later);
}

TEST(debug_leaks_released_after_their_turn_in_the_walk_are_not_listed)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("released_later_during_the_report", env, &c);
    if (!strstr(c.err, "cctx: 50 contexts never released") || strstr(c.err, "refs 0"))
        fprintf(stderr, "%.800s\n", c.err);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), CCTX__LEAK_EXIT_STATUS);
    check_has(c.err, "cctx: 50 contexts never released");
    CHECK(!strstr(c.err, "refs 0"));
    child_done(&c);
}

/* Parents the program let go of early, each held by its child alone, and
 * the children let go of once the walk has taken them all: the last step of
 * the walk stands for the program's other thread. Freeing a child lets go of
 * its parent, which the report must then not list either, whichever of the
 * two the walk took first. */
enum { PAIRS = 20 };
static cctx_t *children[PAIRS];
static atomic_int walked;

static void children_let_go_at_the_walks_end(cctx_t *c)
{
    (void)c;
    if (atomic_fetch_add(&walked, 1) + 1 == 2 * PAIRS)
        for (int i = 0; i < PAIRS; i++)
            cctx_release(children[i]);
}

CHILD(children_released_at_the_walks_end)
{
    for (int i = 0; i < PAIRS; i++) {
        cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
        children[i] = cctx_with_cancel(parent, NULL);
        cctx_release(parent);
    }
    atomic_store(&cctx__leak_walk_hook, children_let_go_at_the_walks_end);
}

TEST(debug_leaks_held_only_by_a_child_released_during_the_report_are_not_listed)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("children_released_at_the_walks_end", env, &c);
    if (strstr(c.err, "never released"))
        fprintf(stderr, "%.800s\n", c.err);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), 0);
    CHECK(!strstr(c.err, "never released"));
    child_done(&c);
}

/* An after-function the program registered on an older context holds the
 * newer one, and lets go of it when the older one ends. The program lets go
 * of the older one at the end of the walk: the report's release, the last,
 * ends it and runs that after-function (as the program's would have), which
 * lets go of the newer one only after its count was read. */
static cctx_t *older, *newer;
static cctx_after_t older_ends;
static atomic_int walked_with_after;

static void lets_go_of_the_newer(void *arg)
{
    cctx_release(arg);
}

static void older_let_go_at_the_walks_end(cctx_t *c)
{
    (void)c;
    if (atomic_fetch_add(&walked_with_after, 1) + 1 == 2)
        cctx_release(older);
}

CHILD(after_function_lets_go_of_a_newer_context)
{
    older = cctx_with_cancel(cctx_background(), NULL);
    newer = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_after_func(older, &older_ends, lets_go_of_the_newer, newer), 0);
    atomic_store(&cctx__leak_walk_hook, older_let_go_at_the_walks_end);
}

TEST(debug_leaks_let_go_by_an_after_function_during_the_report_are_not_listed)
{
    const char *env[] = {"CCTX_DEBUG=leaks,strict", NULL};
    struct child c;
    run_child("after_function_lets_go_of_a_newer_context", env, &c);
    if (strstr(c.err, "never released"))
        fprintf(stderr, "%.800s\n", c.err);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), 0);
    CHECK(!strstr(c.err, "never released"));
    child_done(&c);
}

/* A chain of such holds, each context's after-function letting go of the
 * next, newer one: each of the report's passes lets go of one more. It
 * stands for a thread still running at exit that keeps letting go of
 * contexts: the report makes a few passes, not as many as it takes, so it
 * does not hold the exit up for as long as that thread runs. */
enum { CHAIN = 3 * CCTX__LEAK_PASSES };
static cctx_t *chain[CHAIN + 1];
static cctx_after_t chain_ends[CHAIN];
static atomic_int walked_in_chain;

static void chain_let_go_at_the_walks_end(cctx_t *c)
{
    (void)c;
    if (atomic_fetch_add(&walked_in_chain, 1) + 1 == CHAIN + 1)
        cctx_release(chain[0]);
}

CHILD(after_functions_let_go_of_a_chain)
{
    for (int i = 0; i <= CHAIN; i++)
        chain[i] = cctx_with_cancel(cctx_background(), NULL);
    for (int i = 0; i < CHAIN; i++)
        CHECK_EQ(cctx_after_func(chain[i], &chain_ends[i], lets_go_of_the_newer, chain[i + 1]), 0);
    atomic_store(&cctx__leak_walk_hook, chain_let_go_at_the_walks_end);
}

TEST(debug_leaks_report_makes_a_few_passes_at_most)
{
    const char *env[] = {"CCTX_DEBUG=leaks", NULL};
    struct child c;
    run_child("after_functions_let_go_of_a_chain", env, &c);
    char want[64];
    snprintf(want, sizeof want, "cctx: %d contexts never released", CHAIN + 1 - CCTX__LEAK_PASSES);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), 0);
    check_has(c.err, want);
    child_done(&c);
}
