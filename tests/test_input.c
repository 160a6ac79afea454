/* SPDX-License-Identifier: MIT */
/*
 * Bad input and out of memory (the conventions at the top of cctx.h): NULL
 * contexts, keys, messages and handles, negative and huge timeouts give the
 * documented errors and never crash; an allocation failure at any point of a
 * derivation gives ENOMEM and changes nothing, and a cancellation still
 * cancels; after everything is released, every block the library allocated
 * is freed.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

static const char key;

/* ---- NULL arguments ------------------------------------------------------------------ */

TEST(input_null_parent_is_rejected_by_every_derivation)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    int x = 1;
    cctx_cancel_t *cancel;
    CHECK_ERRNO(cctx_with_cancel(NULL, &cancel), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_cancel(NULL, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_deadline(NULL, cctx_now() + CCTX_SEC(1), &cancel), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_deadline(NULL, 0, &cancel), NULL, EINVAL); /* past deadline: still EINVAL */
    CHECK_ERRNO(cctx_with_timeout(NULL, CCTX_SEC(1), &cancel), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_timeout(NULL, CCTX_NO_DEADLINE, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_deadline_cause(NULL, CCTX_SEC(1), 1, "m", &cancel), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_timeout_cause(NULL, -1, 1, "m", &cancel), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_value(NULL, &key, &x, count_destroy), NULL, EINVAL);
    CHECK_ERRNO(cctx_without_cancel(NULL), NULL, EINVAL);
    /* The _at forms, as bindings call them. */
    CHECK_ERRNO(cctx_with_cancel_at(NULL, &cancel, "b.py", 1, "f"), NULL, EINVAL);
    CHECK_ERRNO(cctx_without_cancel_at(NULL, "b.py", 1, "f"), NULL, EINVAL);
    /* EINVAL hands nothing over: the value is still the caller's. */
    CHECK_EQ(atomic_load(&destroyed), 0);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

TEST(input_null_key_is_rejected)
{
    atomic_store(&destroyed, 0);
    int x = 1;
    CHECK_ERRNO(cctx_with_value(cctx_background(), NULL, &x, count_destroy), NULL, EINVAL);
    CHECK_EQ(atomic_load(&destroyed), 0);
    cctx_t *v = cctx_with_value(cctx_background(), &key, &x, NULL);
    CHECK_ERRNO(cctx_value(v, NULL), NULL, EINVAL);
    CHECK(cctx_value(v, &key) == &x);
    cctx_release(v);
}

TEST(input_null_context_reads_return_the_documented_values)
{
    CHECK_EQ(cctx_err(NULL), EINVAL);
    int64_t d = 12345;
    CHECK(!cctx_deadline(NULL, &d));
    CHECK_EQ(d, 12345); /* untouched */
    CHECK(!cctx_deadline(NULL, NULL));
    CHECK_EQ(cctx_remaining(NULL), CCTX_NO_DEADLINE);
    CHECK_ERRNO(cctx_value(NULL, &key), NULL, EINVAL);
    CHECK_ERRNO(cctx_value(NULL, NULL), NULL, EINVAL);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(NULL, &cause), EINVAL);
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_cause(c, NULL), EINVAL);
    CHECK(cctx_name(NULL) == NULL);
    CHECK(cctx_ref(NULL) == NULL);
    /* A NULL out-pointer for the deadline is fine: only the answer is wanted. */
    cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    CHECK(cctx_deadline(t, NULL));
    CHECK(!cctx_deadline(c, NULL));
    cctx_release(t);
    cctx_release(c);
}

TEST(input_null_cancel_handle_and_release_do_nothing)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_cancel(NULL);
    cctx_cancel_cause(NULL, 5, "nobody");
    cctx_cancel_at(NULL, NULL, 0, NULL);
    cctx_release(NULL);
    cctx_release_at(NULL, NULL, 0, NULL);
    /* A NULL cancel out-pointer: the context is made, only no handle is given. */
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    CHECK(c != NULL);
    CHECK_EQ(cctx_err(c), 0);
    cctx_release(c);
    CHECK_EQ(cctx_err(cctx_background()), 0);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

TEST(input_null_message_means_the_default_one)
{
    cctx_fake_clock_start(CCTX_SEC(10));
    cctx_cancel_t *cancel;
    cctx_t *a = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel_cause(cancel, 3, NULL);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(a, &cause), ECANCELED);
    CHECK_EQ(cause.code, 3);
    CHECK_STR(cause.msg, "context canceled");
    cctx_t *t = cctx_with_timeout_cause(cctx_background(), 10, 4, NULL, NULL);
    cctx_t *d = cctx_with_deadline_cause(cctx_background(), CCTX_SEC(10) + 10, 5, NULL, NULL);
    cctx_t *past = cctx_with_timeout_cause(cctx_background(), -1, 6, NULL, NULL);
    cctx_fake_clock_advance(10);
    CHECK_EQ(cctx_cause(t, &cause), ETIMEDOUT);
    CHECK_EQ(cause.code, 4);
    CHECK_STR(cause.msg, "context deadline exceeded");
    CHECK_EQ(cctx_cause(d, &cause), ETIMEDOUT);
    CHECK_EQ(cause.code, 5);
    CHECK_STR(cause.msg, "context deadline exceeded");
    CHECK_EQ(cctx_cause(past, &cause), ETIMEDOUT);
    CHECK_EQ(cause.code, 6);
    CHECK_STR(cause.msg, "context deadline exceeded");
    cctx_release(a);
    cctx_release(t);
    cctx_release(d);
    cctx_release(past);
    cctx_fake_clock_stop();
}

TEST(input_null_call_sites_from_bindings_do_not_crash)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel_at(cctx_background(), &cancel, NULL, 0, NULL);
    CHECK(c != NULL);
    cctx_t *t = cctx_with_timeout_cause_at(c, -1, 1, NULL, NULL, NULL, 0, NULL);
    CHECK(t != NULL);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(t, &cause), ETIMEDOUT);
    CHECK(cause.msg != NULL);
    cctx_t *v = cctx_with_value_at(c, &key, NULL, NULL, NULL, 0, NULL);
    cctx_t *w = cctx_without_cancel_at(v, NULL, 0, NULL);
    CHECK(v != NULL && w != NULL);
    cctx_cancel_cause_at(cancel, 2, NULL, NULL, 0, NULL);
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_STR(cause.msg, "context canceled");
    CHECK_EQ(cause.code, 2);
    /* The dump prints every site: a NULL one must not crash it. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    CHECK_EQ(cctx_dump(cctx_background(), f, CCTX_DUMP_TEXT), 0);
    CHECK_EQ(cctx_dump(c, f, CCTX_DUMP_JSON), 0);
    CHECK_EQ(cctx_dump(w, f, CCTX_DUMP_DOT), 0);
    fclose(f);
    free(buf);
    cctx_release_at(w, NULL, 0, NULL);
    cctx_release_at(v, NULL, 0, NULL);
    cctx_release_at(t, NULL, 0, NULL);
    cctx_release_at(c, NULL, 0, NULL);
}

static void body_null_waiting_and_after_function_arguments_are_rejected(void)
{
    CHECK_EQ(cctx_wait(NULL, 0), EINVAL);
    CHECK_EQ(cctx_wait(NULL, -1), EINVAL); /* not "wait forever" */
    CHECK_EQ(cctx_sleep(NULL, CCTX_SEC(3600)), EINVAL);
    CHECK_ERRNO(cctx_wait_any(NULL, 1, 0), -1, EINVAL);
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *arr[2] = {c, NULL};
    CHECK_ERRNO(cctx_wait_any(arr, 2, -1), -1, EINVAL);
    CHECK_ERRNO(cctx_wait_any(arr, 0, -1), -1, EINVAL);
    CHECK_ERRNO(cctx_done_fd(NULL), -1, EINVAL);
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    CHECK_EQ(cctx_after_func(NULL, &reg, rec_fn, NULL), EINVAL);
    CHECK_EQ(cctx_after_func(c, NULL, rec_fn, NULL), EINVAL);
    CHECK_EQ(cctx_after_func(c, &reg, NULL, NULL), EINVAL);
    CHECK(!cctx_after_stop(NULL));
    CHECK(!cctx_after_stop(&reg)); /* never registered */
    cctx_release(c);
}

TEST(input_null_waiting_and_after_function_arguments_are_rejected)
{
    run_with_watchdog(body_null_waiting_and_after_function_arguments_are_rejected, 20);
}

TEST(input_bad_observability_arguments_are_rejected)
{
    CHECK_EQ(cctx_set_name(NULL, "x"), EINVAL);
    CHECK_EQ(cctx_set_name(cctx_background(), "x"), EINVAL);
    CHECK_STR(cctx_name(cctx_background()), "background");
    CHECK_EQ(cctx_set_name(cctx_todo(), NULL), EINVAL);
    CHECK_STR(cctx_name(cctx_todo()), "todo");
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK(cctx_name(c) == NULL);
    CHECK_EQ(cctx_set_name(c, "worker"), 0);
    CHECK_STR(cctx_name(c), "worker");
    CHECK_EQ(cctx_set_name(c, NULL), 0); /* clears */
    CHECK(cctx_name(c) == NULL);
    CHECK_EQ(cctx_dump(NULL, stderr, CCTX_DUMP_TEXT), ENOTSUP);
    CHECK_EQ(cctx_dump(c, NULL, CCTX_DUMP_TEXT), EINVAL);
    CHECK_EQ(cctx_dump(c, stderr, CCTX_DUMP_HTML + 1), EINVAL);
    CHECK_EQ(cctx_dump(c, stderr, -1), EINVAL);
    cctx_release(c);
}

/* ---- negative and huge times --------------------------------------------------------- */

TEST(input_negative_and_huge_timeouts_give_the_documented_contexts)
{
    const int64_t negative[] = {-1, -CCTX_SEC(1), INT64_MIN + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof negative / sizeof *negative; i++) {
        cctx_t *c = cctx_with_timeout(cctx_background(), negative[i], NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_err(c), ETIMEDOUT);
        CHECK(cctx_remaining(c) <= 0);
        cctx_t *d = cctx_with_deadline(cctx_background(), negative[i], NULL);
        CHECK(d != NULL);
        CHECK_EQ(cctx_err(d), ETIMEDOUT);
        CHECK(cctx_remaining(d) < 0);
        cctx_release(d);
        cctx_release(c);
    }
    const int64_t huge[] = {INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        cctx_t *c = cctx_with_timeout(cctx_background(), huge[i], NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_err(c), 0);
        CHECK(cctx_remaining(c) > 0);
        int64_t d;
        if (cctx_deadline(c, &d))
            CHECK(d > cctx_now()); /* a real deadline never wrapped into the past */
        cctx_release(c);
    }
}

struct canceller {
    cctx_cancel_t *cancel;
    int delay_ms;
};

static void *cancel_later(void *arg)
{
    struct canceller *c = arg;
    real_sleep_ms(c->delay_ms);
    cctx_cancel(c->cancel);
    return NULL;
}

/* now + INT64_MAX must saturate inside the waits, not wrap into the past
 * (which would return at once) nor overflow (which UBSan reports). */
static void body_huge_wait_and_sleep_timeouts_do_not_overflow(void)
{
    for (int kind = 0; kind < 2; kind++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        struct canceller cl = {cancel, 20};
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, cancel_later, &cl), 0);
        int r = kind == 0 ? cctx_wait(c, INT64_MAX) : cctx_sleep(c, INT64_MAX);
        CHECK_EQ(r, ECANCELED);
        CHECK_EQ(pthread_join(t, NULL), 0);
        /* Already done: at once. */
        CHECK_EQ(cctx_wait(c, INT64_MAX), ECANCELED);
        CHECK_EQ(cctx_sleep(c, INT64_MAX), ECANCELED);
        CHECK_EQ(cctx_wait(c, INT64_MIN), ECANCELED);
        cctx_release(c);
    }
    /* An active context and a zero timeout: at once, 0. */
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_wait(c, 0), 0);
    CHECK_EQ(cctx_wait(cctx_background(), 0), 0);
    CHECK_EQ(cctx_sleep(c, 0), 0);
    cctx_release(c);
}

TEST(input_huge_wait_and_sleep_timeouts_do_not_overflow)
{
    run_with_watchdog(body_huge_wait_and_sleep_timeouts_do_not_overflow, 30);
}

static void body_huge_wait_timeout_on_the_fake_clock_does_not_overflow(void)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    struct canceller cl = {cancel, 20};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_later, &cl), 0);
    CHECK_EQ(cctx_wait(c, INT64_MAX), ECANCELED);
    CHECK_EQ(pthread_join(t, NULL), 0);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(input_huge_wait_timeout_on_the_fake_clock_does_not_overflow)
{
    run_with_watchdog(body_huge_wait_timeout_on_the_fake_clock_does_not_overflow, 30);
}

/* ---- out of memory: derivations ---------------------------------------------------------- */

static int payload;

static cctx_t *d_cancel(cctx_t *p)
{
    cctx_cancel_t *cancel = NULL;
    return cctx_with_cancel(p, &cancel);
}
static cctx_t *d_deadline(cctx_t *p)
{
    cctx_cancel_t *cancel = NULL;
    return cctx_with_deadline(p, cctx_now() + CCTX_SEC(3600), &cancel);
}
static cctx_t *d_timeout(cctx_t *p)
{
    return cctx_with_timeout(p, CCTX_SEC(1800), NULL);
}
static cctx_t *d_deadline_cause(cctx_t *p)
{
    cctx_cancel_t *cancel = NULL;
    return cctx_with_deadline_cause(p, cctx_now() + CCTX_SEC(900), 7,
                                    "a message long enough to need its own copy", &cancel);
}
static cctx_t *d_timeout_cause(cctx_t *p)
{
    return cctx_with_timeout_cause(p, CCTX_SEC(600), 8, "another message to copy", NULL);
}
static cctx_t *d_past(cctx_t *p)
{
    return cctx_with_timeout_cause(p, -1, 9, "born late", NULL);
}
static cctx_t *d_value(cctx_t *p)
{
    return cctx_with_value(p, &key, &payload, count_destroy);
}
static cctx_t *d_detached(cctx_t *p)
{
    return cctx_without_cancel(p);
}

static const struct {
    const char *name;
    cctx_t *(*derive)(cctx_t *parent);
    bool value;
} derivations[] = {
    {"with_cancel", d_cancel, false},
    {"with_deadline", d_deadline, false},
    {"with_timeout", d_timeout, false},
    {"with_deadline_cause", d_deadline_cause, false},
    {"with_timeout_cause", d_timeout_cause, false},
    {"with_timeout_cause(past)", d_past, false},
    {"with_value", d_value, true},
    {"without_cancel", d_detached, false},
};
enum { NDERIV = sizeof derivations / sizeof *derivations };

/* Fails the n-th allocation of one derivation, for n = 1, 2, ... until the
 * derivation needs fewer than n; every failure must be ENOMEM with nothing
 * changed. Returns the context finally made. */
static cctx_t *derive_under_oom(int which, cctx_t *parent)
{
    int failures = 0;
    for (long n = 1;; n++) {
        CHECK(n < 64);
        long live = cctx__test_live_allocs();
        long armed = cctx__test_armed_timers();
        int perr = cctx_err(parent);
        int dest = atomic_load(&destroyed);
        cctx__test_fail_alloc(n);
        errno = 0;
        cctx_t *c = derivations[which].derive(parent);
        int err = errno;
        cctx__test_fail_alloc(0);
        CHECK_EQ(cctx_err(parent), perr);
        if (c) {
            /* This one needed fewer than n allocations. */
            if (failures == 0)
                fprintf(stderr, "%s: no allocation to fail\n", derivations[which].name);
            CHECK(failures > 0); /* every derivation makes a new context */
            return c;
        }
        failures++;
        CHECK_EQ(err, ENOMEM);
        CHECK_EQ(cctx__test_live_allocs(), live);
        CHECK_EQ(cctx__test_armed_timers(), armed);
        /* The value is destroyed on ENOMEM, exactly once. */
        CHECK_EQ(atomic_load(&destroyed), dest + (derivations[which].value ? 1 : 0));
    }
}

/* The parent kinds a derivation may fail under. */
static void oom_derivations_under(cctx_t *parent, bool cancelable, cctx_cancel_t *cancel)
{
    cctx_t *made[NDERIV];
    struct rec recs[NDERIV];
    for (int i = 0; i < NDERIV; i++) {
        made[i] = derive_under_oom(i, parent);
        rec_on(&recs[i], made[i]);
    }
    /* The children made after the failures are whole: the parent's end
     * reaches them, and the values are where they should be. */
    CHECK(cctx_value(made[6], &key) == &payload);
    if (cancelable && cctx_err(parent) == 0) {
        cctx_cancel_cause(cancel, 99, "parent ends");
        for (int i = 0; i < NDERIV; i++) {
            if (i == 7) {
                CHECK_EQ(cctx_err(made[i]), 0); /* without_cancel */
                continue;
            }
            CHECK(cctx_err(made[i]) != 0);
            CHECK_EQ(atomic_load(&recs[i].runs), 1);
        }
    }
    for (int i = 0; i < NDERIV; i++) {
        if (atomic_load(&recs[i].runs) == 0)
            cctx_after_stop(&recs[i].reg);
        cctx_release(made[i]);
    }
}

TEST(input_oom_in_any_derivation_gives_enomem_and_changes_nothing)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);

    /* Under the background. */
    oom_derivations_under(cctx_background(), false, NULL);
    CHECK_EQ(cctx__test_live_allocs(), start);

    /* Under an active cancelable parent that already has children, values, a
     * deadline and an after-function: the failures must not corrupt its lists. */
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_timeout(cctx_background(), CCTX_SEC(7200), &pc);
    cctx_t *sib1 = cctx_with_cancel(p, NULL);
    cctx_t *pv = cctx_with_value(p, &key, &payload, NULL);
    cctx_t *sib2 = cctx_with_cancel(pv, NULL);
    struct rec rp, r1, r2;
    rec_on(&rp, p);
    rec_on(&r1, sib1);
    rec_on(&r2, sib2);
    oom_derivations_under(pv, true, pc);
    CHECK_EQ(cctx_err(sib1), ECANCELED);
    CHECK_EQ(cctx_err(sib2), ECANCELED);
    CHECK_EQ(atomic_load(&rp.runs), 1);
    CHECK_EQ(atomic_load(&r1.runs), 1);
    CHECK_EQ(atomic_load(&r2.runs), 1);
    cctx_release(sib2);
    cctx_release(pv);
    cctx_release(sib1);
    cctx_release(p);
    CHECK_EQ(cctx__test_live_allocs(), start);

    /* Under a parent that is already done (children are born done). */
    cctx_cancel_t *dc;
    cctx_t *done = cctx_with_cancel(cctx_background(), &dc);
    cctx_cancel_cause(dc, 5, "already over");
    oom_derivations_under(done, true, dc);
    cctx_release(done);
    CHECK_EQ(cctx__test_live_allocs(), start);

    /* Under a detached parent. */
    cctx_t *w = cctx_without_cancel(cctx_background());
    oom_derivations_under(w, false, NULL);
    cctx_release(w);

    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

/* Born done under a canceled parent, a context derived after failures must
 * still carry the parent's cause. */
TEST(input_oom_born_done_child_keeps_the_parents_cause)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    const int line = __LINE__; cctx_cancel_cause(pc, 33, "gone");
    for (int i = 0; i < NDERIV; i++) {
        if (i == 7)
            continue; /* without_cancel is never done */
        cctx_t *c = derive_under_oom(i, p);
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        CHECK_EQ(cause.code, 33);
        CHECK_STR(cause.msg, "gone");
        CHECK_EQ(cause.line, line);
        cctx_release(c);
    }
    cctx_release(p);
}

/* A _cause derivation whose deadline is already past either fails with
 * ENOMEM or is born done with the code, message and site it was given. */
TEST(input_oom_past_deadline_cause_variant_fails_or_keeps_its_cause)
{
    for (long n = 1; n < 8; n++) {
        cctx__test_fail_alloc(n);
        errno = 0;
        const int line = __LINE__; cctx_t *c = cctx_with_timeout_cause(cctx_background(), -1, 9, "born late", NULL);
        int err = errno;
        cctx__test_fail_alloc(0);
        if (!c) {
            CHECK_EQ(err, ENOMEM);
            continue;
        }
        check_cause(c, ETIMEDOUT, 9, "born late", line, __func__);
        cctx_release(c);
    }
}

TEST(input_oom_in_set_name_keeps_the_old_name)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_set_name(c, "first"), 0);
    int failures = 0;
    for (long n = 1;; n++) {
        CHECK(n < 16);
        cctx__test_fail_alloc(n);
        int r = cctx_set_name(c, "second, a longer name");
        cctx__test_fail_alloc(0);
        if (r == 0)
            break;
        CHECK_EQ(r, ENOMEM);
        CHECK_STR(cctx_name(c), "first");
        failures++;
    }
    CHECK(failures > 0);
    CHECK_STR(cctx_name(c), "second, a longer name");
    cctx_release(c);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

/* ---- out of memory: cancelling ------------------------------------------------------------ */

/* A tree with a wide and a deep part and after-functions throughout. */
struct tree {
    cctx_cancel_t *cancel;
    cctx_t **nodes;
    struct rec *recs;
    int n;
};

static void tree_build(struct tree *t, int width, int depth, bool timed)
{
    t->n = 1 + width + depth;
    t->nodes = calloc((size_t)t->n, sizeof *t->nodes);
    t->recs = calloc((size_t)t->n, sizeof *t->recs);
    CHECK(t->nodes && t->recs);
    t->nodes[0] = timed ? cctx_with_timeout_cause(cctx_background(), 1000, 61, "root budget",
                                                  &t->cancel)
                        : cctx_with_cancel(cctx_background(), &t->cancel);
    for (int i = 0; i < width; i++)
        t->nodes[1 + i] = i % 2 ? cctx_with_cancel(t->nodes[0], NULL)
                                : cctx_with_value(t->nodes[0], &key, NULL, NULL);
    cctx_t *tip = t->nodes[0];
    for (int i = 0; i < depth; i++)
        tip = t->nodes[1 + width + i] = i % 3 ? cctx_with_cancel(tip, NULL)
                                              : cctx_with_timeout(tip, CCTX_SEC(3600), NULL);
    for (int i = 0; i < t->n; i++) {
        CHECK(t->nodes[i] != NULL);
        rec_on(&t->recs[i], t->nodes[i]);
    }
}

static void tree_check_done(struct tree *t, int err)
{
    for (int i = 0; i < t->n; i++) {
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(t->nodes[i], &cause), err);
        CHECK(cause.msg != NULL);
        CHECK(cause.file != NULL && cause.func != NULL);
        CHECK_EQ(atomic_load(&t->recs[i].runs), 1);
    }
}

static void tree_free(struct tree *t)
{
    for (int i = t->n - 1; i >= 0; i--)
        cctx_release(t->nodes[i]);
    free(t->nodes);
    free(t->recs);
}

TEST(input_oom_cancel_still_cancels_everything)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    for (long n = 1; n <= 8; n++) {
        struct tree t;
        tree_build(&t, 300, 300, false);
        cctx__test_fail_alloc(n);
        cctx_cancel_cause(t.cancel, 17, "a message the cancellation must copy");
        cctx__test_fail_alloc(0);
        tree_check_done(&t, ECANCELED);
        tree_free(&t);
        CHECK_EQ(cctx__test_live_allocs(), start);
    }
    cctx__test_count_allocs(false);
}

TEST(input_oom_release_still_ends_and_frees)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    for (long n = 1; n <= 4; n++) {
        cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
        struct rec r;
        rec_on(&r, c);
        cctx__test_fail_alloc(n);
        cctx_release(c); /* cancels (after-function registered), then frees */
        cctx__test_fail_alloc(0);
        CHECK_EQ(atomic_load(&r.runs), 1);
        CHECK_EQ(cctx__test_live_allocs(), start);
        CHECK_EQ(cctx__test_armed_timers(), 0);
    }
    cctx__test_count_allocs(false);
}

TEST(input_oom_deadline_still_fires_everywhere)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_fake_clock_start(CCTX_SEC(1000));
    for (long n = 1; n <= 8; n++) {
        struct tree t;
        tree_build(&t, 100, 100, true);
        cctx__test_fail_alloc(n);
        cctx_fake_clock_advance(1000);
        cctx__test_fail_alloc(0);
        tree_check_done(&t, ETIMEDOUT);
        tree_free(&t);
        CHECK_EQ(cctx__test_live_allocs(), start);
    }
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_fake_clock_stop();
    cctx__test_count_allocs(false);
}

/* What needs no memory is never lost to a failed allocation: the code and the
 * site of a cancellation or of a firing _cause deadline (the message may fall
 * back to the default one if its copy cannot be made). */
TEST(input_oom_cancel_cause_keeps_code_and_site)
{
    int defaulted = 0;
    for (long n = 1; n <= 4; n++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        cctx__test_fail_alloc(n);
        const int line = __LINE__; cctx_cancel_cause(cancel, 17, "copy me");
        cctx__test_fail_alloc(0);
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        CHECK_EQ(cause.code, 17);
        CHECK(strcmp(cause.msg, "copy me") == 0 || strcmp(cause.msg, "context canceled") == 0);
        defaulted += strcmp(cause.msg, "context canceled") == 0;
        CHECK_STR(cause.file, __FILE__);
        CHECK_EQ(cause.line, line);
        CHECK_STR(cause.func, __func__);
        cctx_release(c);
    }
    CHECK(defaulted >= 1); /* some allocation that failed was the message's */
}

TEST(input_oom_deadline_cause_keeps_code_and_message)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    for (long n = 1; n <= 4; n++) {
        /* The message was copied when the context was made. */
        const int line = __LINE__; cctx_t *c = cctx_with_timeout_cause(cctx_background(), 10, 504, "budget", NULL);
        cctx__test_fail_alloc(n);
        cctx_fake_clock_advance(10);
        cctx__test_fail_alloc(0);
        check_cause(c, ETIMEDOUT, 504, "budget", line, __func__);
        cctx_release(c);
    }
    cctx_fake_clock_stop();
}

/* ---- out of memory: waiting on the fake clock -------------------------------------------- */

struct waiter {
    cctx_t *ctx;
    int result;
    atomic_int finished;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    w->result = cctx_wait(w->ctx, CCTX_SEC(10));
    atomic_store(&w->finished, 1);
    return NULL;
}

static void body_oom_fake_clock_wait_fails_with_enomem_or_waits(void)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    int enomem = 0;
    for (long n = 1; n <= 3; n++) {
        struct waiter w = {.ctx = c};
        cctx__test_fail_alloc(n);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, wait_main, &w), 0);
        while (!atomic_load(&w.finished)) {
            real_sleep_ms(1);
            cctx_fake_clock_advance(CCTX_SEC(1));
        }
        CHECK_EQ(pthread_join(t, NULL), 0);
        cctx__test_fail_alloc(0);
        CHECK(w.result == 0 || w.result == ENOMEM);
        enomem += w.result == ENOMEM;
        CHECK_EQ(cctx_err(c), 0);
    }
    fprintf(stderr, "%d of 3 waits failed with ENOMEM\n", enomem);
    CHECK(enomem >= 1); /* the failing path was taken, not only the others */
    cctx_release(c);
    cctx_fake_clock_stop();
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

TEST(input_oom_fake_clock_wait_fails_with_enomem_or_waits)
{
    run_with_watchdog(body_oom_fake_clock_wait_fails_with_enomem_or_waits, 60);
}

/* ---- nothing left behind --------------------------------------------------------------- */

TEST(input_every_block_is_freed_after_everything_is_released)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    atomic_store(&destroyed, 0);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *rc;
    cctx_t *root = cctx_with_cancel(cctx_background(), &rc);
    CHECK_EQ(cctx_set_name(root, "root"), 0);
    cctx_t *v = cctx_with_value(root, &key, &payload, count_destroy);
    cctx_t *t = cctx_with_timeout_cause(v, 100, 1, "fires", NULL);
    CHECK_EQ(cctx_set_name(t, "timer"), 0);
    CHECK_EQ(cctx_set_name(t, "timer, renamed"), 0);
    cctx_t *t2 = cctx_with_timeout(v, 5000, NULL);
    cctx_t *w = cctx_without_cancel(t2);
    CHECK_EQ(cctx_set_name(w, "detached"), 0);
    cctx_t *wc = cctx_with_cancel(w, NULL);
    cctx_t *past = cctx_with_deadline_cause(root, 0, 2, "past", NULL);
    cctx_fake_clock_advance(100); /* t fires */
    cctx_t *born = cctx_with_cancel(t, NULL); /* born done */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    CHECK_EQ(cctx_dump(root, f, CCTX_DUMP_JSON), 0);
    fclose(f);
    free(buf);
    cctx_cancel_cause(rc, 3, "root over");
    cctx_t *all[] = {born, past, wc, w, t2, t, v, root};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        CHECK(cctx__test_live_allocs() > start);
        cctx_release(all[i]);
    }
    CHECK_EQ(atomic_load(&destroyed), 1);
    CHECK_EQ(cctx__test_live_allocs(), start);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_fake_clock_stop();
    cctx__test_count_allocs(false);
}
