/* SPDX-License-Identifier: MIT */
/*
 * <cctx/propagate.h>, the grpc-timeout codec: every unit, the 8-digit bound,
 * everything else refused (sign, space, junk, a NUL inside the length),
 * saturation to no deadline, rounding up at each unit boundary, a spent
 * budget never sent, and the budget of a context on the fake clock (with a
 * deadline, without one, canceled, spent, under grace contexts).
 *
 * Parsers are given heap buffers of exactly the length they are told, with
 * no NUL after it, so that under AddressSanitizer a read past the length is
 * a failure; and every failing parse must leave its output as it was.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <cctx.h>
#include <cctx/propagate.h>
#include <cctx/testing.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */


/* grpc-timeout parse of the first len bytes of text, from an exact copy. */
static int grpc_parse_n(const char *text, size_t len, int64_t *out)
{
    char *p = heap_copy_exact(text, len);
    int r = cctx_grpc_timeout_parse(p, len, out);
    free(p);
    return r;
}

static int grpc_parse(const char *text, int64_t *out)
{
    return grpc_parse_n(text, strlen(text), out);
}


/* ---- grpc-timeout: parsing ------------------------------------------------------- */

TEST(propagate_grpc_parse_units)
{
    static const struct {
        const char *text;
        int64_t ns;
    } cases[] = {
        {"1n", 1},
        {"1u", CCTX_USEC(1)},
        {"1m", CCTX_MSEC(1)},
        {"1S", CCTX_SEC(1)},
        {"1M", CCTX_SEC(60)},
        {"1H", CCTX_SEC(3600)},
        {"250m", CCTX_MSEC(250)},
        {"7u", CCTX_USEC(7)},
        {"42n", 42},
        {"30S", CCTX_SEC(30)},
        {"5M", CCTX_SEC(300)},
        {"2H", CCTX_SEC(7200)},
        {"0n", 0},
        {"0H", 0},
        {"00000000n", 0},
        {"00000001S", CCTX_SEC(1)},
        {"12345678u", CCTX_USEC(12345678)},
        {"99999999n", 99999999},
        {"99999999m", CCTX_MSEC(99999999)},
        {"99999999S", CCTX_SEC(99999999)},
        {"99999999M", CCTX_SEC(99999999) * 60},
        {"2562047H", CCTX_SEC(3600) * 2562047}, /* the largest hour count that fits */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -7;
        if (grpc_parse(cases[i].text, &v) != 0 || v != cases[i].ns)
            fprintf(stderr, "case %s: got %" PRId64 "\n", cases[i].text, v);
        CHECK_EQ(grpc_parse(cases[i].text, &v), 0);
        CHECK_EQ(v, cases[i].ns);
    }
}

TEST(propagate_grpc_parse_rejects)
{
    static const struct {
        const char *text;
        size_t len;
    } cases[] = {
#define C(s) {s, sizeof(s) - 1}
        C(""), C("n"), C("S"), C("1"), C("12345678"),
        C("100000000n"), C("000000000S"), C("123456789m"), /* 9 digits */
        C("-1S"), C("+1S"), C("-0n"),                       /* signs */
        C(" 1S"), C("1S "), C("1 S"), C("\t1S"),            /* spaces */
        C("1SS"), C("1Sx"), C("1S1"), C("1Sm"),             /* trailing junk */
        C("1s"), C("1h"), C("1N"), C("1U"), C("1x"), C("1\xb5"), /* no such unit */
        C("1.5S"), C("0x1S"), C("1e3n"), C("S1"), C("1,0S"),
        C("1\0S"), C("\0" "1S"), C("1S\0"), C("\0"),        /* a NUL inside the length */
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -7;
        int r = grpc_parse_n(cases[i].text, cases[i].len, &v);
        if (r != EINVAL)
            fprintf(stderr, "case %zu (%.*s) parsed\n", i, (int)cases[i].len, cases[i].text);
        CHECK_EQ(r, EINVAL);
        CHECK_EQ(v, -7); /* untouched */
    }
    int64_t v = -7;
    CHECK_EQ(cctx_grpc_timeout_parse(NULL, 2, &v), EINVAL);
    CHECK_EQ(cctx_grpc_timeout_parse("1S", 2, NULL), EINVAL);
    CHECK_EQ(v, -7);
}

TEST(propagate_grpc_parse_reads_only_its_length)
{
    int64_t v = -7;
    /* The bytes after the length would make it invalid, or another value. */
    CHECK_EQ(cctx_grpc_timeout_parse("1Sjunk", 2, &v), 0);
    CHECK_EQ(v, CCTX_SEC(1));
    CHECK_EQ(cctx_grpc_timeout_parse("25m0", 3, &v), 0);
    CHECK_EQ(v, CCTX_MSEC(25));
    v = -7;
    CHECK_EQ(cctx_grpc_timeout_parse("12S", 2, &v), EINVAL); /* "12": no unit */
    CHECK_EQ(v, -7);
    CHECK_EQ(cctx_grpc_timeout_parse("1S", 0, &v), EINVAL);
    CHECK_EQ(v, -7);
}

TEST(propagate_grpc_parse_saturates)
{
    int64_t v = 0;
    CHECK_EQ(grpc_parse("99999999H", &v), 0);
    CHECK_EQ(v, CCTX_NO_DEADLINE);
    v = 0;
    CHECK_EQ(grpc_parse("2562048H", &v), 0); /* just above INT64_MAX ns */
    CHECK_EQ(v, CCTX_NO_DEADLINE);
    v = 0;
    CHECK_EQ(grpc_parse("2562047H", &v), 0); /* just below: exact */
    CHECK_EQ(v, INT64_C(2562047) * CCTX_SEC(3600));
    CHECK(v < CCTX_NO_DEADLINE);
}

/* ---- grpc-timeout: formatting ----------------------------------------------------- */

static void check_format(int64_t ns, const char *want)
{
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    memset(out, 'x', sizeof out);
    int r = cctx_grpc_timeout_format(ns, out);
    if (r != 0 || strcmp(out, want) != 0)
        fprintf(stderr, "format(%" PRId64 "): want %s\n", ns, want);
    CHECK_EQ(r, 0);
    CHECK_STR(out, want);
    int64_t back;
    CHECK_EQ(grpc_parse(out, &back), 0);
    CHECK(back >= ns); /* never less time than was left */
}

TEST(propagate_grpc_format_rounds_up_at_each_unit)
{
    check_format(1, "1n");
    check_format(999, "999n");
    check_format(99999999, "99999999n");
    check_format(100000000, "100000u");
    check_format(100000001, "100001u");
    check_format(100000999, "100001u");
    check_format(100001000, "100001u");
    check_format(INT64_C(99999999000), "99999999u");
    check_format(INT64_C(99999999001), "100000m");
    check_format(INT64_C(100000000001), "100001m");
    check_format(INT64_C(99999999000000), "99999999m");
    check_format(INT64_C(99999999000001), "100000S");
    check_format(INT64_C(100000000000001), "100001S");
    check_format(INT64_C(99999999000000000), "99999999S");
    check_format(INT64_C(99999999000000001), "1666667M");
    check_format(INT64_C(100000000000000000), "1666667M");
    check_format(INT64_C(5999999940000000000), "99999999M");
    check_format(INT64_C(5999999940000000001), "1666667H");
    check_format(CCTX_SEC(3600) * 2562047, "2562047H");
    check_format(CCTX_SEC(3600) * 2562047 + 1, "2562048H");
    check_format(CCTX_NO_DEADLINE, "2562048H");
    /* Whole values in a unit stay exact. */
    check_format(CCTX_SEC(1), "1000000u");
    check_format(CCTX_SEC(30), "30000000u");
    check_format(CCTX_SEC(3600), "3600000m");
}

TEST(propagate_grpc_format_spent_budget)
{
    const int64_t spent[] = {0, -1, -CCTX_SEC(5), INT64_MIN};
    for (size_t i = 0; i < sizeof spent / sizeof spent[0]; i++) {
        char out[CCTX_GRPC_TIMEOUT_SIZE];
        memset(out, 'x', sizeof out);
        CHECK_EQ(cctx_grpc_timeout_format(spent[i], out), ETIMEDOUT);
        CHECK_STR(out, ""); /* never "0n" */
    }
    CHECK_EQ(cctx_grpc_timeout_format(CCTX_SEC(1), NULL), EINVAL);
}

TEST(propagate_grpc_round_trip)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        uint64_t r = xorshift64(&seed);
        /* every magnitude, from 1 ns to INT64_MAX */
        int64_t ns = (int64_t)((r >> 1) >> (r % 63));
        if (ns <= 0)
            ns = 1;
        char a[CCTX_GRPC_TIMEOUT_SIZE], b[CCTX_GRPC_TIMEOUT_SIZE];
        int64_t back, again;
        CHECK_EQ(cctx_grpc_timeout_format(ns, a), 0);
        CHECK(strlen(a) >= 2 && strlen(a) <= 9);
        CHECK_EQ(grpc_parse(a, &back), 0);
        CHECK(back >= ns);
        CHECK_EQ(cctx_grpc_timeout_format(back, b), 0);
        CHECK_STR(a, b);
        CHECK_EQ(grpc_parse(b, &again), 0);
        CHECK_EQ(again, back);
    }
}

/* ---- grpc-timeout of a context ------------------------------------------------------ */

TEST(propagate_grpc_timeout_of_deadline)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(1500), &cancel);
    CHECK(ctx);
    cctx_t *val = cctx_with_value(ctx, &cancel, NULL, NULL);
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), 0);
    CHECK_STR(out, "1500000u");
    CHECK_EQ(cctx_grpc_timeout_of(val, out), 0); /* through a value context */
    CHECK_STR(out, "1500000u");
    cctx_fake_clock_advance(CCTX_MSEC(1) + 1);
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), 0);
    CHECK_STR(out, "1499000u"); /* 1498999999 ns, rounded up */
    cctx_fake_clock_advance(CCTX_MSEC(1499) - 100000000);
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), 0);
    CHECK_STR(out, "99999999n");
    cctx_fake_clock_advance(99999998);
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), 0);
    CHECK_STR(out, "1n");
    cctx_fake_clock_advance(1); /* the deadline: spent */
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), ETIMEDOUT);
    CHECK_STR(out, "");
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(val, out), ETIMEDOUT);
    CHECK_STR(out, "");
    cctx_release(val);
    cctx_release(ctx);
    cctx_fake_clock_stop();
}

TEST(propagate_grpc_timeout_of_no_deadline)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(cctx_background(), out), ENOENT);
    CHECK_STR(out, "");
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(c, out), ENOENT);
    CHECK_STR(out, "");
    /* without_cancel drops the parent's deadline. */
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    cctx_t *w = cctx_without_cancel(d);
    CHECK_EQ(cctx_grpc_timeout_of(d, out), 0);
    CHECK_STR(out, "5000000u");
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(w, out), ENOENT);
    CHECK_STR(out, "");
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(NULL, out), EINVAL);
    CHECK_STR(out, "");
    CHECK_EQ(cctx_grpc_timeout_of(d, NULL), EINVAL);
    cctx_release(w);
    cctx_release(d);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(propagate_grpc_timeout_of_canceled)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), &cancel);
    cctx_t *child = cctx_with_cancel(ctx, NULL);
    CHECK_EQ(cctx_grpc_timeout_of(child, out), 0);
    CHECK_STR(out, "10000000u");
    cctx_cancel(cancel); /* time is left, but the work was canceled */
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), ECANCELED);
    CHECK_STR(out, "");
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(child, out), ECANCELED);
    CHECK_STR(out, "");
    /* Canceled with no deadline: the error, not ENOENT. */
    cctx_cancel_t *c2;
    cctx_t *plain = cctx_with_cancel(cctx_background(), &c2);
    cctx_cancel(c2);
    CHECK_EQ(cctx_grpc_timeout_of(plain, out), ECANCELED);
    CHECK_STR(out, "");
    cctx_release(plain);
    cctx_release(child);
    cctx_release(ctx);
    cctx_fake_clock_stop();
}

/* A deadline derived under a grace context before the grace context's parent
 * ended stays that context's own (cctx_deadline), yet the context ends with
 * the grace context: the budget sent is the earlier of the two, never more
 * time than the caller has. */
TEST(propagate_grpc_timeout_of_under_grace)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(1), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(50), NULL);
    cctx_t *late = cctx_with_timeout(g, CCTX_SEC(10), NULL);
    cctx_t *mid = cctx_with_cancel(late, NULL);
    static const char key;
    cctx_t *below = cctx_with_value(mid, &key, NULL, NULL);
    cctx_t *early = cctx_with_timeout(g, CCTX_MSEC(20), NULL);
    /* Before the parent ends the grace context has no deadline of its own
     * (cctx_deadline), yet it ends at the latest 50 ms after the parent's
     * deadline, and so does all that is under it. */
    int64_t d;
    CHECK(!cctx_deadline(g, &d));
    CHECK_EQ(cctx_grpc_timeout_of(g, out), 0);
    CHECK_STR(out, "1050000u");
    CHECK_EQ(cctx_grpc_timeout_of(late, out), 0);
    CHECK_STR(out, "1050000u");
    CHECK_EQ(cctx_grpc_timeout_of(below, out), 0);
    CHECK_STR(out, "1050000u");

    cctx_fake_clock_advance(CCTX_MSEC(5));
    cctx_cancel(pc); /* the grace context now ends 50 ms from here */
    CHECK_EQ(cctx_grpc_timeout_of(g, out), 0);
    CHECK_STR(out, "50000000n");
    CHECK_EQ(cctx_grpc_timeout_of(late, out), 0);
    CHECK_STR(out, "50000000n");
    CHECK_EQ(cctx_grpc_timeout_of(below, out), 0);
    CHECK_STR(out, "50000000n");
    CHECK_EQ(cctx_grpc_timeout_of(early, out), 0); /* its own is earlier */
    CHECK_STR(out, "15000000n");

    cctx_fake_clock_advance(CCTX_MSEC(50));
    CHECK_EQ(cctx_err(late), ETIMEDOUT); /* it did end with the grace */
    CHECK_EQ(cctx_grpc_timeout_of(below, out), ETIMEDOUT);
    cctx_release(early);
    cctx_release(below);
    cctx_release(mid);
    cctx_release(late);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

/* Along a chain: a grace context not yet given its deadline is bounded by
 * its parent's bound plus its grace (a negative grace by the parent's
 * alone), graces under graces add up, and a without-cancel context, which
 * nothing above ends, ends the walk. */
TEST(propagate_grpc_timeout_of_grace_chain)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    cctx_t *g1 = cctx_with_grace(parent, CCTX_MSEC(500), NULL);
    cctx_t *t1 = cctx_with_timeout(g1, CCTX_SEC(10), NULL);
    cctx_t *g2 = cctx_with_grace(t1, CCTX_MSEC(200), NULL);
    cctx_t *t2 = cctx_with_timeout(g2, CCTX_SEC(20), NULL);
    cctx_t *w = cctx_without_cancel(t2);
    cctx_t *t3 = cctx_with_timeout(w, CCTX_SEC(30), NULL);
    cctx_t *neg = cctx_with_grace(parent, -CCTX_SEC(5), NULL);
    CHECK_EQ(cctx_grpc_timeout_of(t1, out), 0);
    CHECK_STR(out, "1500000u");
    CHECK_EQ(cctx_grpc_timeout_of(t2, out), 0);
    CHECK_STR(out, "1700000u");
    CHECK_EQ(cctx_grpc_timeout_of(w, out), ENOENT);
    CHECK_EQ(cctx_grpc_timeout_of(t3, out), 0);
    CHECK_STR(out, "30000000u");
    CHECK_EQ(cctx_grpc_timeout_of(neg, out), 0);
    CHECK_STR(out, "1000000u");

    cctx_fake_clock_advance(CCTX_SEC(1)); /* the parent's deadline: g1's is set */
    CHECK_EQ(cctx_err(neg), ETIMEDOUT);
    CHECK_EQ(cctx_grpc_timeout_of(t2, out), 0);
    CHECK_STR(out, "700000u");
    cctx_fake_clock_advance(CCTX_MSEC(500)); /* g1 and t1 end: g2's is set */
    CHECK_EQ(cctx_err(t1), ETIMEDOUT);
    CHECK_EQ(cctx_grpc_timeout_of(t2, out), 0);
    CHECK_STR(out, "200000u");
    CHECK_EQ(cctx_grpc_timeout_of(t3, out), 0);
    CHECK_STR(out, "28500000u");
    cctx_fake_clock_advance(CCTX_MSEC(200));
    CHECK_EQ(cctx_err(t2), ETIMEDOUT);
    CHECK_EQ(cctx_err(t3), 0);
    cctx_release(neg);
    cctx_release(t3);
    cctx_release(w);
    cctx_release(t2);
    cctx_release(g2);
    cctx_release(t1);
    cctx_release(g1);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(propagate_grpc_timeout_of_spent)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    /* Born done: a deadline at now. */
    cctx_t *now = cctx_with_timeout(cctx_background(), 0, NULL);
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(now, out), ETIMEDOUT);
    CHECK_STR(out, "");
    /* Fired long ago. */
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    cctx_fake_clock_advance(CCTX_SEC(3600));
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_grpc_timeout_of(ctx, out), ETIMEDOUT);
    CHECK_STR(out, "");
    cctx_release(ctx);
    cctx_release(now);
    cctx_fake_clock_stop();
}
/* A thread reading the budget while another ends the grace context's
 * parent, which sets the grace context's deadline (one relaxed store, read
 * relaxed: ThreadSanitizer checks there is no data race). Every read is
 * either the bound before (the parent's 10 s plus the grace) or after (the
 * grace), never the 60 s of the context's own deadline. Real clock, with
 * bounds loose enough for a slow machine. */
struct grace_reader {
    cctx_t *ctx;
    _Atomic int reads, stop;
    _Atomic int64_t worst;
    _Atomic int errors;
};

static void *read_budgets(void *arg)
{
    struct grace_reader *r = arg;
    while (!atomic_load(&r->stop)) {
        char out[CCTX_GRPC_TIMEOUT_SIZE];
        int64_t t = 0;
        if (cctx_grpc_timeout_of(r->ctx, out) != 0 ||
            cctx_grpc_timeout_parse(out, strlen(out), &t) != 0)
            atomic_fetch_add(&r->errors, 1);
        if (t > atomic_load(&r->worst))
            atomic_store(&r->worst, t);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

TEST(propagate_grpc_timeout_of_while_a_grace_begins)
{
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(10), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(1), NULL);
    cctx_t *late = cctx_with_timeout(g, CCTX_SEC(60), NULL);
    struct grace_reader r = {.ctx = late};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, read_budgets, &r), 0);
    while (atomic_load(&r.reads) < 1000)
        sched_yield();
    cctx_cancel(pc);
    int at_cancel = atomic_load(&r.reads);
    while (atomic_load(&r.reads) < at_cancel + 1000)
        sched_yield();
    atomic_store(&r.stop, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(atomic_load(&r.errors), 0);
    CHECK(atomic_load(&r.worst) <= CCTX_SEC(11));
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    int64_t t;
    CHECK_EQ(cctx_grpc_timeout_of(late, out), 0);
    CHECK_EQ(cctx_grpc_timeout_parse(out, strlen(out), &t), 0);
    CHECK(t <= CCTX_SEC(1));
    cctx_release(late);
    cctx_release(g);
    cctx_release(parent);
}

/* Between the end of a grace context's parent and the after-function that
 * gives the grace context its deadline (held there by a hook, on the thread
 * that cancels), the budget is already the grace after the parent's end:
 * not the parent's own later deadline plus the grace, nor none when the
 * parent has no deadline. */
static struct {
    cctx_t *ctx;
    int err;
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    int calls;
} in_gap;

static void read_in_gap(void)
{
    if (in_gap.calls++ == 0)
        in_gap.err = cctx_grpc_timeout_of(in_gap.ctx, in_gap.out);
}

TEST(propagate_grpc_timeout_of_before_a_grace_is_set)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    atomic_store(&cctx__grace_parent_ended_hook, read_in_gap);
    cctx_cancel_t *pc, *qc;
    cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(10), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(1), NULL);
    cctx_t *late = cctx_with_timeout(g, CCTX_SEC(60), NULL);
    cctx_t *plain = cctx_with_cancel(cctx_background(), &qc);
    cctx_t *pg = cctx_with_grace(plain, CCTX_MSEC(300), NULL);
    cctx_t *neg = cctx_with_grace(plain, -CCTX_SEC(1), NULL);
    cctx_fake_clock_advance(CCTX_SEC(2));

    in_gap.ctx = late;
    in_gap.calls = 0;
    cctx_cancel(pc);
    CHECK_EQ(in_gap.calls, 1);
    CHECK_EQ(in_gap.err, 0);
    CHECK_STR(in_gap.out, "1000000u"); /* not 9 s: the parent's deadline, 1010 s, plus 1 s */

    in_gap.ctx = pg;
    in_gap.calls = 0;
    cctx_cancel(qc);
    CHECK_EQ(in_gap.calls, 2); /* pg's and neg's */
    CHECK_EQ(in_gap.err, 0);
    CHECK_STR(in_gap.out, "300000u"); /* not ENOENT */
    /* A negative grace ends it with its parent. */
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    CHECK_EQ(cctx_grpc_timeout_of(neg, out), ETIMEDOUT);

    atomic_store(&cctx__grace_parent_ended_hook, NULL);
    CHECK_EQ(cctx_grpc_timeout_of(late, out), 0);
    CHECK_STR(out, "1000000u");
    CHECK_EQ(cctx_grpc_timeout_of(pg, out), 0);
    CHECK_STR(out, "300000u");
    cctx_release(neg);
    cctx_release(pg);
    cctx_release(plain);
    cctx_release(late);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}
