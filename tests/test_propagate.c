/* SPDX-License-Identifier: MIT */
/*
 * <cctx/propagate.h>, W3C Trace Context on the wire: the traceparent and
 * tracestate codecs (valid and invalid tables, future versions, limits) and
 * ids as hex. Where ids come from (random ids, child spans) and a trace
 * carried by a context are tested in test_propagate_ids.c, the grpc-timeout
 * codec in test_propagate_grpc.c.
 *
 * Parsers are given heap buffers of exactly the length they are told, with
 * no NUL after it, so that under AddressSanitizer a read past the length is
 * a failure; and every failing parse must leave its output as it was.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/propagate.h>

#include "harness.h"
#include "support.h"

/* ---- helpers ------------------------------------------------------------------ */

static int tp_parse(const char *text, cctx_trace_t *out)
{
    return traceparent_parse_exact(text, strlen(text), out);
}

static int ts_parse_n(const char *text, size_t len, cctx_trace_t *trace)
{
    char *p = heap_copy_exact(text, len);
    int r = cctx_tracestate_parse(p, len, trace);
    free(p);
    return r;
}

/* Each of bad[0..n) is refused (EINVAL) and leaves the trace as it was. */
static void check_traceparents_refused(const char *const bad[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cctx_trace_t t;
        poison_trace(&t);
        if (tp_parse(bad[i], &t) != EINVAL)
            fprintf(stderr, "parsed: %s\n", bad[i]);
        CHECK_EQ(tp_parse(bad[i], &t), EINVAL);
        CHECK(trace_poisoned(&t));
    }
}

#define TP_VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
static const uint8_t tp_trace_id[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                        0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t tp_parent_id[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};

/* ---- traceparent ------------------------------------------------------------------- */

TEST(propagate_traceparent_valid)
{
    cctx_trace_t t;
    poison_trace(&t);
    CHECK_EQ(tp_parse(TP_VALID, &t), 0);
    CHECK(memcmp(t.trace_id, tp_trace_id, 16) == 0);
    CHECK(memcmp(t.parent_id, tp_parent_id, 8) == 0);
    CHECK(memcmp(t.span_id, tp_parent_id, 8) == 0);
    CHECK_EQ(t.flags, CCTX_TRACE_SAMPLED);
    CHECK_EQ(t.state_len, 0);
    CHECK_STR(t.state, "");

    /* "sampled" and "random" are kept; the reserved bits are cleared, as
     * W3C asks of whoever sends the header on (before, 0xff went on as ff). */
    static const struct {
        const char *text;
        int flags;
        const char *sent; /* NULL: the text itself */
    } flags[] = {
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0x00, NULL},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", 0x03, NULL},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 0x03,
         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"},
        {"00-00000000000000000000000000000001-0000000000000001-09", 0x01,
         "00-00000000000000000000000000000001-0000000000000001-01"},
        {"00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-a0", 0x00,
         "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        poison_trace(&t);
        CHECK_EQ(tp_parse(flags[i].text, &t), 0);
        CHECK_EQ(t.flags, flags[i].flags);
        /* Version 00 round-trips (span_id is the parent_id), reserved bits aside. */
        char out[CCTX_TRACEPARENT_SIZE];
        CHECK_EQ(cctx_traceparent_format(&t, out), 0);
        CHECK_STR(out, flags[i].sent ? flags[i].sent : flags[i].text);
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
        poison_trace(&t);
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
    check_traceparents_refused(bad, sizeof bad / sizeof bad[0]);
}

/* A later version's flags other than "sampled" may mean anything: they are
 * not sent on as version 00's. */
TEST(propagate_traceparent_future_version_keeps_only_sampled)
{
    static const struct {
        const char *text;
        uint8_t flags;
    } cases[] = {
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 0x01},
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe-x", 0x00},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 0x03}, /* 00's own two */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cctx_trace_t t;
        poison_trace(&t);
        CHECK_EQ(tp_parse(cases[i].text, &t), 0);
        CHECK_EQ(t.flags, cases[i].flags);
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
    check_traceparents_refused(bad, sizeof bad / sizeof bad[0]);
    /* A NUL inside the length is a bad character wherever it is. */
    static const size_t at[] = {0, 2, 10, 35, 40, 52, 54};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        char buf[56];
        memcpy(buf, TP_VALID, 56);
        buf[at[i]] = '\0';
        cctx_trace_t t;
        poison_trace(&t);
        CHECK_EQ(traceparent_parse_exact(buf, 55, &t), EINVAL);
        CHECK(trace_poisoned(&t));
    }
    cctx_trace_t t;
    poison_trace(&t);
    CHECK_EQ(cctx_traceparent_parse(NULL, 55, &t), EINVAL);
    CHECK(trace_poisoned(&t));
    CHECK_EQ(cctx_traceparent_parse(TP_VALID, 55, NULL), EINVAL);
    /* Only the given length is read: a valid prefix is too short. */
    CHECK_EQ(cctx_traceparent_parse(TP_VALID, 54, &t), EINVAL);
    CHECK(trace_poisoned(&t));
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
