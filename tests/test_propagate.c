/* SPDX-License-Identifier: MIT */
/*
 * <cctx/propagate.h>, W3C Trace Context: the traceparent and tracestate
 * codecs (valid and invalid tables, future versions, limits), random ids
 * (zero draws redrawn, interrupted draws retried, a failing source, and the
 * /dev/urandom fallback with getrandom made to fail by a seccomp filter in a
 * child process), child spans, and a trace carried by a context. The
 * grpc-timeout codec is tested in test_propagate_grpc.c.
 *
 * Parsers are given heap buffers of exactly the length they are told, with
 * no NUL after it, so that under AddressSanitizer a read past the length is
 * a failure; and every failing parse must leave its output as it was.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/propagate.h>

/* The kernel's headers, for the seccomp filter; Debian's musl-gcc does not
 * see them, and the test that needs them is not run there. */
#if __has_include(<linux/filter.h>) && __has_include(<linux/seccomp.h>)
#include <linux/filter.h>
#include <linux/seccomp.h>
#define HAVE_SECCOMP_HEADERS 1
#else
#define HAVE_SECCOMP_HEADERS 0
#endif
#include <malloc.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */


static int tp_parse_n(const char *text, size_t len, cctx_trace_t *out)
{
    char *p = heap_copy_exact(text, len);
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
    char *p = heap_copy_exact(text, len);
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

/* This test binary's getrandom, which the library's objects linked into it
 * call instead of libc's: it passes through to the system call unless a test
 * asks it to return zeros (bit i of zero_mask: the i-th call), to be cut
 * short (EINTR, or one byte at a time), or to fail. A test that uses it
 * leaves it as it found it (all zero). */
static struct {
    unsigned zero_mask;
    int eintr, partial;
    int fail, fail_from; /* errno for every call from the fail_from-th on */
    int calls;
} fake;

ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
    int call = fake.calls++;
    if (call < 32 && (fake.zero_mask >> call & 1)) {
        memset(buf, 0, n);
        return (ssize_t)n;
    }
    if (fake.fail && call >= fake.fail_from) {
        errno = fake.fail;
        return -1;
    }
    if (fake.eintr > 0) {
        fake.eintr--;
        errno = EINTR;
        return -1;
    }
    if (fake.partial > 0 && n > 1) {
        fake.partial--;
        n = 1;
    }
    return syscall(SYS_getrandom, buf, n, flags);
}

/* Ids come from a per-thread pool that one getrandom call fills; each test
 * below empties it first (cctx__random_pool_empty), so the fake above sees
 * the draws it is set up for. */
static void fake_from_empty_pool(typeof(fake) f)
{
    cctx__random_pool_empty();
    fake = f;
}

TEST(propagate_trace_new_redraws_zero_ids)
{
    cctx_trace_t t, c;
    /* The first fill is all zero: the trace id drawn from it is all zero,
     * which says the source is broken, so the pool is refilled. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 1});
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
    CHECK_EQ(fake.calls, 2);
    /* Two broken fills in a row. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 3});
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
    CHECK_EQ(fake.calls, 3);
    /* A child's span too. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 1});
    CHECK_EQ(cctx_trace_child(&t, &c), 0);
    CHECK(!zero(c.span_id, 8));
    CHECK_EQ(fake.calls, 2);
    fake = (typeof(fake)){0};
}

TEST(propagate_ids_come_from_one_draw_per_pool)
{
    /* One getrandom call serves ten traces (24 bytes each) from a 256-byte
     * pool, and every id differs. */
    fake_from_empty_pool((typeof(fake)){0});
    cctx_trace_t t[10];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cctx_trace_new(&t[i]), 0);
    CHECK_EQ(fake.calls, 1);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < i; j++)
            CHECK(memcmp(t[i].trace_id, t[j].trace_id, 16) != 0 &&
                  memcmp(t[i].span_id, t[j].span_id, 8) != 0);
    CHECK_EQ(cctx_trace_new(&t[0]), 0);
    CHECK_EQ(fake.calls, 2); /* the eleventh needs a new fill */
    fake = (typeof(fake)){0};
}

CHILD(propagate_ids_after_fork)
{
    /* Parent and child start from the same pool: each must draw anew. */
    cctx_trace_t before, mine;
    CHECK_EQ(cctx_trace_new(&before), 0);
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    CHECK_EQ(cctx_trace_new(&mine), 0);
    if (pid == 0) {
        CHECK(write(p[1], &mine, sizeof mine) == (ssize_t)sizeof mine);
        _exit(0);
    }
    cctx_trace_t theirs;
    CHECK(read(p[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(memcmp(mine.trace_id, theirs.trace_id, 16) != 0);
    CHECK(memcmp(mine.span_id, theirs.span_id, 8) != 0);
    printf("fork ok\n");
    exit(0);
}

TEST(propagate_ids_differ_between_parent_and_child_of_fork)
{
    struct child c;
    run_child("propagate_ids_after_fork", NULL, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}

TEST(propagate_trace_new_retries_interrupted_draws)
{
    cctx_trace_t t;
    fake_from_empty_pool((typeof(fake)){.eintr = 3, .partial = 20});
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
    CHECK_EQ(fake.eintr, 0);
    CHECK_EQ(fake.partial, 0); /* 20 bytes came one at a time, the rest of the pool whole */
    /* Every byte was filled: over many draws each position varies. */
    uint8_t seen[24][256];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 300; i++) {
        fake_from_empty_pool((typeof(fake)){.eintr = 1, .partial = 30});
        CHECK_EQ(cctx_trace_new(&t), 0);
        for (int j = 0; j < 16; j++)
            seen[j][t.trace_id[j]] = 1;
        for (int j = 0; j < 8; j++)
            seen[16 + j][t.span_id[j]] = 1;
    }
    fake = (typeof(fake)){0};
    for (int j = 0; j < 24; j++) {
        int n = 0;
        for (int v = 0; v < 256; v++)
            n += seen[j][v];
        CHECK(n > 50);
    }
}

TEST(propagate_trace_new_random_source_fails)
{
    cctx_trace_t t, p, c;
    CHECK_EQ(cctx_trace_new(&p), 0);
    fake_from_empty_pool((typeof(fake)){.fail = EIO});
    poison(&t);
    CHECK_EQ(cctx_trace_new(&t), EIO);
    CHECK(poisoned(&t));
    poison(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), EIO);
    CHECK(poisoned(&c));
    CHECK_EQ(cctx_trace_child(NULL, &c), EIO);
    CHECK(poisoned(&c));
    /* A fill that fails after an all-zero one: nothing written. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 1, .fail = EIO, .fail_from = 1});
    poison(&t);
    CHECK_EQ(cctx_trace_new(&t), EIO);
    CHECK_EQ(fake.calls, 2);
    CHECK(poisoned(&t));
    /* The source works again: so do ids. */
    fake = (typeof(fake)){0};
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
}

/* getrandom fails with ENOSYS, as on a kernel that lacks it: the ids come
 * from /dev/urandom, and its descriptor is closed again. Exit 77: no seccomp. */
CHILD(propagate_no_getrandom)
{
#if !HAVE_SECCOMP_HEADERS
    exit(78); /* this build cannot write a filter */
#else
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
#endif
}

TEST(propagate_trace_new_urandom_fallback)
{
    struct child c;
    run_child("propagate_no_getrandom", NULL, &c);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 78) {
        child_done(&c);
        SKIP_IN_THIS_BUILD("no kernel headers for a seccomp filter with this libc");
    }
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

/* The bytes malloc has handed out: glibc's mallinfo2 (2.33) tells; other
 * libcs have no such call, and the leak check that uses it is left to the
 * builds on glibc (and to LeakSanitizer). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#define HEAP_COUNTED 1
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#else
#define HEAP_COUNTED 0
static size_t heap_in_use(void)
{
    return 0;
}
#endif

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
    if (HEAP_COUNTED && !TEST_UNDER_ASAN && !TEST_UNDER_TSAN)
        CHECK(after < before + 100 * sizeof t); /* a leak would be 1000 or 2000 copies */
}
