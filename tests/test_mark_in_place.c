/* SPDX-License-Identifier: MIT */
/*
 * Marking in place: a cancellation marks a leaf, and each link of a chain,
 * while it holds the lock of the list the context is in, with no reference
 * taken or dropped. These tests pin what that must keep: every context is
 * still reached, whoever sleeps on one or holds its descriptor is still
 * woken, a release in the middle of a marking still waits for it, and the
 * flag that tells a leaf from a parent is set by the unlock without losing
 * a sleeper.
 *
 * Several tests set a context's count to 0 for the length of a cancel: the
 * state of a context whose last release has begun and waits for its
 * source's lock. The ordinary marking skips such a context (try_ref fails,
 * and its releaser owns it); marking in place reaches it, which is how the
 * tests tell the two apart.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"
#include "internal.h" /* the flags word, the lock, the count */
#include "support.h"

/* Pretends c's last release has begun (see above); returns its count. */
static uint32_t count_to_zero(cctx_t *c)
{
    return atomic_exchange(&c->refs, 0);
}

static void count_back(cctx_t *c, uint32_t refs)
{
    atomic_store(&c->refs, refs);
}

/* Joins t, failing the test if it has not ended within 10 s (a lost
 * wake-up would otherwise hang until the ctest timeout). */
static void join_soon(pthread_t t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    CHECK_EQ(pthread_timedjoin_np(t, NULL, &until), 0);
}

TEST(mark_in_place_reaches_a_leaf_without_taking_a_reference)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *kids[3];
    for (int i = 0; i < 3; i++)
        CHECK((kids[i] = cctx_with_cancel(root, NULL)) != NULL);
    uint32_t refs = count_to_zero(kids[1]);
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    count_back(kids[1], refs);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(cctx__refs(kids[i]), 1u); /* none taken, none left over */
        check_cause(kids[i], ECANCELED, 0, "context canceled", line, __func__);
        cctx_release(kids[i]);
    }
    cctx_release(root);
}

TEST(mark_in_place_follows_a_chain_hand_over_hand)
{
    enum { DEPTH = 6 };
    cctx_cancel_t *cancel;
    cctx_t *chain[DEPTH + 1];
    chain[0] = cctx_with_cancel(cctx_background(), &cancel);
    for (int i = 1; i <= DEPTH; i++)
        CHECK((chain[i] = cctx_with_cancel(chain[i - 1], NULL)) != NULL);
    /* A link whose count reads 0: the ordinary way would skip it, and with
     * it everything below. */
    uint32_t refs = count_to_zero(chain[2]);
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    count_back(chain[2], refs);
    for (int i = DEPTH; i >= 1; i--) {
        /* Held by us and (but the last) by its child: no reference taken. */
        CHECK_EQ(cctx__refs(chain[i]), i == DEPTH ? 1u : 2u);
        check_cause(chain[i], ECANCELED, 0, "context canceled", line, __func__);
    }
    for (int i = DEPTH; i >= 0; i--)
        cctx_release(chain[i]);
}

/* Where the chain forks, the fork goes the ordinary way and its leaves are
 * marked in place again: every context is reached. */
TEST(mark_in_place_a_chain_that_forks_reaches_every_branch)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *link = cctx_with_cancel(root, NULL);
    cctx_t *fork = cctx_with_cancel(link, NULL);
    cctx_t *left = cctx_with_cancel(fork, NULL);
    cctx_t *right = cctx_with_cancel(fork, NULL);
    cctx_t *below = cctx_with_cancel(right, NULL);
    CHECK(below != NULL);
    cctx_cancel(cancel);
    cctx_t *all[] = {below, right, left, fork, link, root};
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(cctx_err(all[i]), ECANCELED);
        cctx_release(all[i]);
    }
}

/* A descriptor made for a leaf is signalled: such a leaf is not marked in
 * place (that marking signals nothing), in a list or at the end of a chain. */
TEST(mark_in_place_a_leaf_with_a_descriptor_is_signalled)
{
    for (int shape = 0; shape < 2; shape++) {
        cctx_cancel_t *cancel;
        cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
        cctx_t *leaf = cctx_with_cancel(root, NULL);
        cctx_t *sibling = shape ? cctx_with_cancel(root, NULL) : NULL;
        int fd = cctx_done_fd(leaf);
        CHECK(fd >= 0);
        cctx_cancel(cancel);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 0), 1);
        if (sibling)
            cctx_release(sibling);
        cctx_release(leaf);
        cctx_release(root);
    }
}

static pid_t started(_Atomic pid_t *tid)
{
    while (!atomic_load(tid))
        sched_yield();
    return atomic_load(tid);
}

static cctx_t *slept_on;
static _Atomic pid_t sleeper_tid;

static void *sleep_on_leaf(void *arg)
{
    (void)arg;
    atomic_store(&sleeper_tid, thread_id());
    CHECK_EQ(cctx_wait(slept_on, CCTX_NO_DEADLINE), ECANCELED);
    return NULL;
}

/* A thread asleep on a leaf wakes: such a leaf is not marked in place
 * either, in a list or at the end of a chain. */
TEST(mark_in_place_a_leaf_with_a_sleeper_wakes_it)
{
    for (int shape = 0; shape < 2; shape++) {
        cctx_cancel_t *cancel;
        cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
        slept_on = cctx_with_cancel(root, NULL);
        cctx_t *sibling = shape ? cctx_with_cancel(root, NULL) : NULL;
        atomic_store(&sleeper_tid, 0);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, sleep_on_leaf, NULL), 0);
        wait_until_blocked(started(&sleeper_tid));
        cctx_cancel(cancel);
        join_soon(t);
        if (sibling)
            cctx_release(sibling);
        cctx_release(slept_on);
        cctx_release(root);
    }
}

/* ---- a release in the middle of a marking ------------------------------------ */

static struct {
    cctx_cancel_t *cancel;
    cctx_t *leaf;
    _Atomic pid_t canceller, releaser;
    atomic_bool released;
} mid;

static void *cancel_root(void *arg)
{
    (void)arg;
    atomic_store(&mid.canceller, thread_id());
    cctx_cancel(mid.cancel);
    return NULL;
}

static void *release_leaf(void *arg)
{
    (void)arg;
    atomic_store(&mid.releaser, thread_id());
    cctx_release(mid.leaf);
    atomic_store(&mid.released, true);
    return NULL;
}

/* Until the whole marking is complete, the canceller may still be at work
 * on a leaf it marked in place, kept alive only by the source's lock: the
 * leaf's last release must take that lock, even though the leaf reads as
 * reached from above. Here the marking stops at a sibling whose lock the
 * test holds; the release must wait for the source's lock. */
TEST(mark_in_place_release_before_the_marking_completes_takes_the_source_lock)
{
    cctx_t *root = cctx_with_cancel(cctx_background(), &mid.cancel);
    mid.leaf = cctx_with_cancel(root, NULL);
    cctx_t *parent = cctx_with_cancel(root, NULL); /* not a leaf: marked later */
    cctx_t *below = cctx_with_cancel(parent, NULL);
    CHECK(below != NULL);
    atomic_store(&mid.canceller, 0);
    atomic_store(&mid.releaser, 0);
    atomic_store(&mid.released, false);

    cctx__lock(parent);
    pthread_t canceller, releaser;
    CHECK_EQ(pthread_create(&canceller, NULL, cancel_root, NULL), 0);
    wait_until_blocked(started(&mid.canceller)); /* on parent's lock */
    CHECK_EQ(cctx_err(mid.leaf), ECANCELED);     /* marked in place */
    CHECK_EQ(cctx_err(parent), 0);

    cctx__lock(root);
    CHECK_EQ(pthread_create(&releaser, NULL, release_leaf, NULL), 0);
    wait_until_blocked(started(&mid.releaser)); /* on root's lock */
    CHECK(!atomic_load(&mid.released));
    cctx__unlock(root);
    join_soon(releaser);
    CHECK(atomic_load(&mid.released));

    cctx__unlock(parent);
    join_soon(canceller);
    CHECK_EQ(cctx_err(below), ECANCELED);
    cctx_release(below);
    cctx_release(parent);
    cctx_release(root);
}

/* ---- the flag that tells a leaf from a parent -------------------------------- */

static cctx_t *contended;
static _Atomic pid_t locker;

static void *lock_and_unlock(void *arg)
{
    (void)arg;
    atomic_store(&locker, thread_id());
    cctx__lock(contended);
    cctx__unlock(contended);
    return NULL;
}

TEST(mark_in_place_parent_flag_is_set_by_the_first_child_and_the_unlock_wakes_sleepers)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(!(atomic_load(&root->word) & WORD_PARENT));
    cctx_t *kid = cctx_with_cancel(root, NULL);
    CHECK(atomic_load(&root->word) & WORD_PARENT);
    CHECK(!(atomic_load(&root->word) & WORD_LOCK)); /* unlocked */
    CHECK(!(atomic_load(&kid->word) & WORD_PARENT));
    cctx_release(kid);

    /* The unlock that sets it, with a thread asleep on the lock: the
     * sleeper gets it (the flag is added without losing the lock's state). */
    contended = cctx_with_cancel(cctx_background(), NULL);
    atomic_store(&locker, 0);
    cctx__lock(contended);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, lock_and_unlock, NULL), 0);
    wait_until_blocked(started(&locker));
    cctx__unlock_setting(contended, WORD_PARENT);
    join_soon(t);
    CHECK(atomic_load(&contended->word) & WORD_PARENT);
    CHECK(!(atomic_load(&contended->word) & WORD_LOCK));
    cctx_release(contended);
    cctx_release(root);
}
