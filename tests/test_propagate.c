/*
 * <cctx/propagate.h>: the grpc-timeout codec (every unit, the 8-digit bound,
 * everything else refused, saturation, rounding up at each unit boundary,
 * a spent budget never sent), the budget of a context on the fake clock, the
 * traceparent and tracestate codecs (valid and invalid tables, future
 * versions, limits), random ids (also through the /dev/urandom fallback,
 * with getrandom made to fail by a seccomp filter in a child process), child
 * spans, and a trace carried by a context.
 *
 * Parsers are given heap buffers of exactly the length they are told, with
 * no NUL after it, so that under AddressSanitizer a read past the length is
 * a failure; and every failing parse must leave its output as it was.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/propagate.h>
#include <cctx/testing.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A copy of text[0..len) in a heap block of exactly len bytes (at least 1). */
static char *exact(const char *text, size_t len)
{
    char *p = malloc(len ? len : 1);
    CHECK(p);
    memcpy(p, text, len);
    return p;
}

/* grpc-timeout parse of the first len bytes of text, from an exact copy. */
static int grpc_parse_n(const char *text, size_t len, int64_t *out)
{
    char *p = exact(text, len);
    int r = cctx_grpc_timeout_parse(p, len, out);
    free(p);
    return r;
}

static int grpc_parse(const char *text, int64_t *out)
{
    return grpc_parse_n(text, strlen(text), out);
}

static int tp_parse_n(const char *text, size_t len, cctx_trace_t *out)
{
    char *p = exact(text, len);
    int r = cctx_traceparent_parse(p, len, out);
    free(p);
    return r;
}

static int tp_parse(const char *text, cctx_trace_t *out)
{
    return tp_parse_n(text, strlen(text), out);
}

static int ts_parse_n(const char *text, size_t len, cctx_trace_t *trace)
{
    char *p = exact(text, len);
    int r = cctx_tracestate_parse(p, len, trace);
    free(p);
    return r;
}

static bool zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* A trace whose every byte is 0xab: what a failed parse must leave as it was. */
static void poison(cctx_trace_t *t)
{
    memset(t, 0xab, sizeof *t);
}

static bool poisoned(const cctx_trace_t *t)
{
    const unsigned char *p = (const unsigned char *)t;
    for (size_t i = 0; i < sizeof *t; i++)
        if (p[i] != 0xab)
            return false;
    return true;
}

#define TP_VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
static const uint8_t tp_trace_id[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                        0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t tp_parent_id[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};

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

/* ---- traceparent ------------------------------------------------------------------- */

TEST(propagate_traceparent_valid)
{
    cctx_trace_t t;
    poison(&t);
    CHECK_EQ(tp_parse(TP_VALID, &t), 0);
    CHECK(memcmp(t.trace_id, tp_trace_id, 16) == 0);
    CHECK(memcmp(t.parent_id, tp_parent_id, 8) == 0);
    CHECK(memcmp(t.span_id, tp_parent_id, 8) == 0);
    CHECK_EQ(t.flags, CCTX_TRACE_SAMPLED);
    CHECK_EQ(t.state_len, 0);
    CHECK_STR(t.state, "");

    /* Every flags byte is kept as received (bits this hop does not know too). */
    static const struct {
        const char *text;
        int flags;
    } flags[] = {
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0x00},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", 0x03},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 0xff},
        {"00-00000000000000000000000000000001-0000000000000001-09", 0x09},
        {"00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-a0", 0xa0},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        poison(&t);
        CHECK_EQ(tp_parse(flags[i].text, &t), 0);
        CHECK_EQ(t.flags, flags[i].flags);
        /* Version 00 round-trips exactly (span_id is the parent_id). */
        char out[CCTX_TRACEPARENT_SIZE];
        CHECK_EQ(cctx_traceparent_format(&t, out), 0);
        CHECK_STR(out, flags[i].text);
    }
}

TEST(propagate_traceparent_future_versions)
{
    static const char *const ok[] = {
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        "fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-X",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cctx_trace_t t;
        poison(&t);
        CHECK_EQ(tp_parse(ok[i], &t), 0);
        CHECK(memcmp(t.trace_id, tp_trace_id, 16) == 0);
        CHECK(memcmp(t.parent_id, tp_parent_id, 8) == 0);
        CHECK_EQ(t.flags, 1);
        char out[CCTX_TRACEPARENT_SIZE];
        CHECK_EQ(cctx_traceparent_format(&t, out), 0);
        CHECK_STR(out, TP_VALID); /* sent on as 00 */
    }
    static const char *const bad[] = {
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra", /* no '-' */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01_x",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000000-01-x",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cctx_trace_t t;
        poison(&t);
        if (tp_parse(bad[i], &t) != EINVAL)
            fprintf(stderr, "parsed: %s\n", bad[i]);
        CHECK_EQ(tp_parse(bad[i], &t), EINVAL);
        CHECK(poisoned(&t));
    }
}

TEST(propagate_traceparent_invalid)
{
    static const char *const bad[] = {
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "FF-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* 54 bytes */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", /* 56 bytes */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 takes nothing more */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  /* fields shifted */
        "00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01",
        "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
        "", "00", "00-",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cctx_trace_t t;
        poison(&t);
        if (tp_parse(bad[i], &t) != EINVAL)
            fprintf(stderr, "parsed: %s\n", bad[i]);
        CHECK_EQ(tp_parse(bad[i], &t), EINVAL);
        CHECK(poisoned(&t));
    }
    /* A NUL inside the length is a bad character wherever it is. */
    static const size_t at[] = {0, 2, 10, 35, 40, 52, 54};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        char buf[56];
        memcpy(buf, TP_VALID, 56);
        buf[at[i]] = '\0';
        cctx_trace_t t;
        poison(&t);
        CHECK_EQ(tp_parse_n(buf, 55, &t), EINVAL);
        CHECK(poisoned(&t));
    }
    cctx_trace_t t;
    poison(&t);
    CHECK_EQ(cctx_traceparent_parse(NULL, 55, &t), EINVAL);
    CHECK(poisoned(&t));
    CHECK_EQ(cctx_traceparent_parse(TP_VALID, 55, NULL), EINVAL);
    /* Only the given length is read: a valid prefix is too short. */
    CHECK_EQ(cctx_traceparent_parse(TP_VALID, 54, &t), EINVAL);
    CHECK(poisoned(&t));
}

TEST(propagate_traceparent_format)
{
    cctx_trace_t t;
    memset(&t, 0, sizeof t);
    memcpy(t.trace_id, tp_trace_id, 16);
    memcpy(t.parent_id, "\x11\x11\x11\x11\x11\x11\x11\x11", 8); /* not what is sent */
    memcpy(t.span_id, tp_parent_id, 8);
    t.flags = 1;
    char out[CCTX_TRACEPARENT_SIZE];
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_traceparent_format(&t, out), 0);
    CHECK_STR(out, TP_VALID);
    CHECK_EQ(strlen(out), CCTX_TRACEPARENT_SIZE - 1);

    cctx_trace_t z = t;
    memset(z.span_id, 0, 8);
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_traceparent_format(&z, out), EINVAL);
    CHECK_STR(out, "");
    z = t;
    memset(z.trace_id, 0, 16);
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_traceparent_format(&z, out), EINVAL);
    CHECK_STR(out, "");
    memset(out, 'x', sizeof out);
    CHECK_EQ(cctx_traceparent_format(NULL, out), EINVAL);
    CHECK_STR(out, "");
    CHECK_EQ(cctx_traceparent_format(&t, NULL), EINVAL);
}

TEST(propagate_trace_hex)
{
    cctx_trace_t t;
    CHECK_EQ(tp_parse(TP_VALID, &t), 0);
    char id[CCTX_TRACE_ID_HEX_SIZE], span[CCTX_SPAN_ID_HEX_SIZE];
    cctx_trace_id_hex(&t, id);
    CHECK_STR(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cctx_span_id_hex(t.parent_id, span);
    CHECK_STR(span, "00f067aa0ba902b7");
    const uint8_t ff[8] = {0xff, 0xfe, 0xa0, 0x0a, 0x10, 0x01, 0x9f, 0xf9};
    cctx_span_id_hex(ff, span);
    CHECK_STR(span, "fffea00a10019ff9");
    cctx_trace_id_hex(NULL, id);
    CHECK_STR(id, "");
    cctx_span_id_hex(NULL, span);
    CHECK_STR(span, "");
    cctx_trace_id_hex(&t, NULL); /* nothing to write to: no crash */
    cctx_span_id_hex(ff, NULL);
}

/* ---- tracestate ----------------------------------------------------------------------- */

/* A trace that already holds a state, which a failing parse must drop. */
static void with_old_state(cctx_trace_t *t)
{
    CHECK_EQ(tp_parse(TP_VALID, t), 0);
    CHECK_EQ(cctx_tracestate_parse("old=1", 5, t), 0);
    CHECK_EQ(t->state_len, 5);
}

/* n members "kNN=v" joined by sep, padded with 'x' in the last value to len
 * bytes if len is larger. */
static char *members(int n, size_t len)
{
    char *s = malloc(len > (size_t)n * 8 ? len + 1 : (size_t)n * 8 + 1);
    CHECK(s);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "%sk%02d=v", i ? "," : "", i);
    while (k < len)
        s[k++] = 'x';
    s[k] = '\0';
    return s;
}

TEST(propagate_tracestate_kept_verbatim)
{
    cctx_trace_t t;
    with_old_state(&t);
    const char *v = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE ,\t,x@y=z";
    CHECK_EQ(ts_parse_n(v, strlen(v), &t), 0);
    CHECK_EQ(t.state_len, strlen(v));
    CHECK_STR(t.state, v);
    /* The ids are not touched. */
    CHECK(memcmp(t.trace_id, tp_trace_id, 16) == 0);
    /* Empty clears. */
    CHECK_EQ(cctx_tracestate_parse("", 0, &t), 0);
    CHECK_EQ(t.state_len, 0);
    CHECK_STR(t.state, "");
    with_old_state(&t);
    CHECK_EQ(cctx_tracestate_parse(NULL, 0, &t), 0);
    CHECK_EQ(t.state_len, 0);
    /* Only the length is read. */
    CHECK_EQ(cctx_tracestate_parse("a=1,b=2", 3, &t), 0);
    CHECK_STR(t.state, "a=1");
    CHECK_EQ(cctx_tracestate_parse("a=1", 3, NULL), EINVAL);
    with_old_state(&t);
    CHECK_EQ(cctx_tracestate_parse(NULL, 3, &t), EINVAL);
    CHECK_EQ(t.state_len, 0);
}

TEST(propagate_tracestate_size_limit)
{
    cctx_trace_t t;
    char *s = members(3, 512);
    CHECK_EQ(strlen(s), 512);
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(s, 512, &t), 0);
    CHECK_EQ(t.state_len, 512);
    CHECK_STR(t.state, s);
    free(s);
    s = members(3, 513);
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(s, 513, &t), E2BIG);
    CHECK_EQ(t.state_len, 0);
    CHECK_STR(t.state, "");
    free(s);
}

TEST(propagate_tracestate_member_limit)
{
    cctx_trace_t t;
    char *s = members(32, 0);
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(s, strlen(s), &t), 0);
    CHECK_EQ(t.state_len, strlen(s));
    CHECK_STR(t.state, s);
    free(s);
    s = members(33, 0);
    CHECK(strlen(s) <= 512);
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(s, strlen(s), &t), E2BIG);
    CHECK_EQ(t.state_len, 0);
    CHECK_STR(t.state, "");
    free(s);
    /* Empty and blank members do not count: 32 members and many commas. */
    char buf[512];
    size_t k = 0;
    for (int i = 0; i < 32; i++)
        k += (size_t)sprintf(buf + k, "%sk%02d=v, ,", i ? "," : "", i);
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(buf, k, &t), 0);
    CHECK_EQ(t.state_len, k);
    /* ...but a 33rd real one does. */
    k += (size_t)sprintf(buf + k, "k32=v");
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(buf, k, &t), E2BIG);
    CHECK_EQ(t.state_len, 0);
}

TEST(propagate_tracestate_bad_byte)
{
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
#define C(s) {s, sizeof(s) - 1}
        C("a=1\x7f"), C("a=\x01"), C("a=1\r\nb=2"), C("a=\xc3\xa9"), C("\x80"),
        C("a=1\0b=2"), C("\n"),
#undef C
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cctx_trace_t t;
        with_old_state(&t);
        CHECK_EQ(ts_parse_n(bad[i].text, bad[i].len, &t), EINVAL);
        CHECK_EQ(t.state_len, 0);
        CHECK_STR(t.state, "");
    }
    /* Too long wins over a bad byte: the length is checked first. */
    char *s = members(1, 600);
    s[3] = '\x01';
    cctx_trace_t t;
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(s, 600, &t), E2BIG);
    CHECK_EQ(t.state_len, 0);
    free(s);
    /* Space and tab are fine, and every printable byte. */
    char all[96];
    for (int c = 0x20; c <= 0x7e; c++)
        all[c - 0x20] = (char)c;
    all[95] = '\t';
    with_old_state(&t);
    CHECK_EQ(ts_parse_n(all, 96, &t), 0);
    CHECK_EQ(t.state_len, 96);
    CHECK(memcmp(t.state, all, 96) == 0);
}

/* ---- random ids ------------------------------------------------------------------------ */

static void check_new(const cctx_trace_t *t)
{
    CHECK(!zero(t->trace_id, 16));
    CHECK(!zero(t->span_id, 8));
    CHECK(zero(t->parent_id, 8));
    CHECK_EQ(t->flags, CCTX_TRACE_SAMPLED);
    CHECK_EQ(t->state_len, 0);
    CHECK_STR(t->state, "");
}

TEST(propagate_trace_new_random)
{
    cctx_trace_t a, b;
    poison(&a);
    poison(&b);
    CHECK_EQ(cctx_trace_new(&a), 0);
    CHECK_EQ(cctx_trace_new(&b), 0);
    check_new(&a);
    check_new(&b);
    CHECK(memcmp(a.trace_id, b.trace_id, 16) != 0);
    CHECK(memcmp(a.span_id, b.span_id, 8) != 0);
    /* Not a constant or a counter: over many draws every byte position takes
     * many values (a fixed byte would give 1). */
    uint8_t seen[16][256];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 512; i++) {
        CHECK_EQ(cctx_trace_new(&a), 0);
        check_new(&a);
        for (int j = 0; j < 16; j++)
            seen[j][a.trace_id[j]] = 1;
    }
    for (int j = 0; j < 16; j++) {
        int n = 0;
        for (int v = 0; v < 256; v++)
            n += seen[j][v];
        CHECK(n > 100);
    }
    /* A new trace formats and parses back to itself. */
    char out[CCTX_TRACEPARENT_SIZE];
    CHECK_EQ(cctx_traceparent_format(&b, out), 0);
    cctx_trace_t c;
    CHECK_EQ(cctx_traceparent_parse(out, strlen(out), &c), 0);
    CHECK(memcmp(c.trace_id, b.trace_id, 16) == 0);
    CHECK(memcmp(c.parent_id, b.span_id, 8) == 0);
    CHECK_EQ(c.flags, b.flags);
    CHECK_EQ(cctx_trace_new(NULL), EINVAL);
}

/* getrandom fails with ENOSYS, as on a kernel that lacks it: the ids come
 * from /dev/urandom, and its descriptor is closed again. Exit 77: no seccomp. */
CHILD(propagate_no_getrandom)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        exit(77);
    uint8_t buf[4];
    CHECK(syscall(SYS_getrandom, buf, sizeof buf, 0) == -1 && errno == ENOSYS);
    int fds = count_open_fds();
    cctx_trace_t a, b;
    CHECK_EQ(cctx_trace_new(&a), 0);
    CHECK_EQ(cctx_trace_child(&a, &b), 0);
    check_new(&a);
    CHECK(!zero(b.span_id, 8));
    CHECK(memcmp(b.span_id, a.span_id, 8) != 0);
    CHECK_EQ(count_open_fds(), fds);
    printf("fallback ok\n");
    exit(0);
}

TEST(propagate_trace_new_urandom_fallback)
{
    struct child c;
    run_child("propagate_no_getrandom", NULL, &c);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 77) {
        child_done(&c);
        SKIP("seccomp filters are not available here");
    }
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
        fprintf(stderr, "child: status %d\n%s%s", c.status, c.out, c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.out, "fallback ok"));
    child_done(&c);
}

/* ---- child spans ---------------------------------------------------------------------- */

TEST(propagate_trace_child)
{
    cctx_trace_t p, c;
    CHECK_EQ(tp_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", &p), 0);
    CHECK_EQ(cctx_tracestate_parse("a=1,b=2", 7, &p), 0);
    poison(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), 0);
    CHECK(memcmp(c.trace_id, p.trace_id, 16) == 0);
    CHECK(memcmp(c.parent_id, p.span_id, 8) == 0);
    CHECK(!zero(c.span_id, 8));
    CHECK(memcmp(c.span_id, p.span_id, 8) != 0);
    CHECK_EQ(c.flags, 0x03);
    CHECK_EQ(c.state_len, 7);
    CHECK_STR(c.state, "a=1,b=2");
    char out[CCTX_TRACEPARENT_SIZE], span[CCTX_SPAN_ID_HEX_SIZE];
    CHECK_EQ(cctx_traceparent_format(&c, out), 0);
    cctx_span_id_hex(c.span_id, span);
    CHECK(strncmp(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
    CHECK(strncmp(out + 36, span, 16) == 0);
    CHECK_STR(out + 52, "-03");

    /* A grandchild: its parent is the child's span. */
    cctx_trace_t g;
    CHECK_EQ(cctx_trace_child(&c, &g), 0);
    CHECK(memcmp(g.parent_id, c.span_id, 8) == 0);
    CHECK(memcmp(g.span_id, c.span_id, 8) != 0);

    /* In place. */
    cctx_trace_t same = c;
    CHECK_EQ(cctx_trace_child(&same, &same), 0);
    CHECK(memcmp(same.parent_id, c.span_id, 8) == 0);
    CHECK(memcmp(same.span_id, c.span_id, 8) != 0);
    CHECK(memcmp(same.trace_id, c.trace_id, 16) == 0);
    CHECK_STR(same.state, "a=1,b=2");

    /* No parent: a new trace. */
    poison(&c);
    CHECK_EQ(cctx_trace_child(NULL, &c), 0);
    check_new(&c);
    CHECK(memcmp(c.trace_id, p.trace_id, 16) != 0);

    CHECK_EQ(cctx_trace_child(&p, NULL), EINVAL);
    p.state_len = CCTX_TRACESTATE_MAX + 1; /* a broken trace is refused */
    poison(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), EINVAL);
    CHECK(poisoned(&c));
}

/* ---- a trace carried by a context ------------------------------------------------------ */

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

TEST(propagate_with_trace_nearest)
{
    cctx_t *bg = cctx_background();
    CHECK(cctx_trace_of(bg) == NULL);
    CHECK(cctx_trace_of(NULL) == NULL);

    cctx_trace_t a, b;
    CHECK_EQ(cctx_trace_new(&a), 0);
    CHECK_EQ(cctx_tracestate_parse("k=a", 3, &a), 0);
    CHECK_EQ(cctx_trace_child(&a, &b), 0);
    cctx_trace_t a_copy = a;

    cctx_cancel_t *cancel;
    cctx_t *c0 = cctx_with_cancel(bg, &cancel);
    cctx_t *c1 = cctx_with_trace(c0, &a);
    CHECK(c1);
    memset(&a, 0, sizeof a); /* the context holds its own copy */
    const cctx_trace_t *got = cctx_trace_of(c1);
    CHECK(got && got != &a);
    CHECK(memcmp(got, &a_copy, sizeof a_copy) == 0);
    CHECK(cctx_trace_of(c0) == NULL);

    static const char other_key;
    cctx_t *c2 = cctx_with_value(c1, &other_key, (void *)&other_key, NULL);
    cctx_t *c3 = cctx_with_timeout(c2, CCTX_SEC(60), NULL);
    CHECK(cctx_trace_of(c3) == got); /* through other contexts */
    cctx_t *c4 = cctx_with_trace(c3, &b);
    cctx_t *c5 = cctx_with_cancel(c4, NULL);
    const cctx_trace_t *near = cctx_trace_of(c5);
    CHECK(near && near != got);
    CHECK(memcmp(near->span_id, b.span_id, 8) == 0);
    CHECK(memcmp(near->parent_id, a_copy.span_id, 8) == 0);
    CHECK(cctx_trace_of(c3) == got); /* the outer one is unchanged */
    /* Still readable after cancellation. */
    cctx_cancel(cancel);
    CHECK(cctx_trace_of(c5) == near);
    CHECK_STR(near->state, "k=a");

    cctx_release(c5);
    cctx_release(c4);
    cctx_release(c3);
    cctx_release(c2);
    cctx_release(c1);
    cctx_release(c0);
}

TEST(propagate_with_trace_frees)
{
    cctx_trace_t t;
    CHECK_EQ(cctx_trace_new(&t), 0);
    CHECK_ERRNO(cctx_with_trace(NULL, &t), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_trace(cctx_background(), NULL), NULL, EINVAL);
    t.state_len = CCTX_TRACESTATE_MAX + 1;
    CHECK_ERRNO(cctx_with_trace(cctx_background(), &t), NULL, EINVAL);
    t.state_len = 0;

    /* The derivation fails after the copy was made: it is freed then too
     * (LeakSanitizer sees it under ASan; the heap count below otherwise). */
    cctx__test_fail_alloc(1);
    CHECK_ERRNO(cctx_with_trace(cctx_background(), &t), NULL, ENOMEM);
    cctx__test_fail_alloc(0);

    /* Each copy goes with its context: a thousand of them leave nothing. */
    cctx_t *warm = cctx_with_trace(cctx_background(), &t);
    cctx_release(warm);
    size_t before = heap_in_use();
    for (int i = 0; i < 1000; i++) {
        cctx_t *c = cctx_with_trace(cctx_background(), &t);
        CHECK(c);
        CHECK(cctx_trace_of(c) != NULL);
        cctx_release(c);
    }
    for (int i = 0; i < 1000; i++) {
        cctx__test_fail_alloc(1);
        CHECK(cctx_with_trace(cctx_background(), &t) == NULL);
    }
    cctx__test_fail_alloc(0);
    size_t after = heap_in_use();
    if (!TEST_UNDER_ASAN && !TEST_UNDER_TSAN)
        CHECK(after < before + 100 * sizeof t); /* a leak would be 1000 or 2000 copies */
}
