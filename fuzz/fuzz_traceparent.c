/* SPDX-License-Identifier: MIT */
/*
 * fuzz_traceparent: the input is a traceparent header, a newline, and a
 * tracestate header (no newline: all traceparent). Checked:
 *  - the traceparent parser, on the whole input and on its first line,
 *    agrees with a reference reading of the W3C grammar (lower-case hex,
 *    version ff refused, 00 exactly 55 bytes, a later version's extra fields
 *    behind a '-', no all-zero id); on failure its output is untouched;
 *  - a parsed traceparent formats to 55 characters that parse back to the
 *    same ids and flags, and to the input itself for version 00 but for the
 *    reserved flag bits, cleared ("sampled" and "random" kept; a later
 *    version is sent on as 00, with only the "sampled" bit of its flags);
 *  - the tracestate parser keeps exactly the values of at most 512 bytes,
 *    printable ASCII and tabs, with at most 32 non-blank members, verbatim;
 *    otherwise it drops the state with E2BIG or EINVAL; it never touches
 *    the ids;
 *  - a child span keeps the trace, flags and state and takes the parent's
 *    span as its parent; a context carrying the trace gives back a copy.
 * Each parser reads a heap copy of exactly its length, so a read past the
 * length is an AddressSanitizer finding.
 */
#include <cctx.h>
#include <cctx/propagate.h>
#include <string.h>

#include "fuzz_common.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The W3C rules, position by position. */
static bool reference_traceparent(const char *s, size_t n)
{
    if (n < 55)
        return false;
    for (size_t i = 0; i < 55; i++) {
        bool dash = i == 2 || i == 35 || i == 52;
        if (dash ? s[i] != '-' : hexval(s[i]) < 0)
            return false;
    }
    if (s[0] == 'f' && s[1] == 'f')
        return false;
    if (s[0] == '0' && s[1] == '0' ? n != 55 : n > 55 && s[55] != '-')
        return false;
    bool trace_zero = true, parent_zero = true;
    for (size_t i = 3; i < 35; i++)
        trace_zero &= s[i] == '0';
    for (size_t i = 36; i < 52; i++)
        parent_zero &= s[i] == '0';
    return !trace_zero && !parent_zero;
}

static bool reference_tracestate(const char *s, size_t n, int *err)
{
    if (n > CCTX_TRACESTATE_MAX) {
        *err = E2BIG;
        return false;
    }
    int members = 0;
    bool blank = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 || c > 0x7e) && c != '\t') {
            *err = EINVAL;
            return false;
        }
        if (c == ',') {
            members += !blank;
            blank = true;
        } else if (c != ' ' && c != '\t') {
            blank = false;
        }
    }
    members += !blank;
    *err = members > 32 ? E2BIG : 0;
    return members <= 32;
}

static char *copy(const uint8_t *p, size_t n)
{
    char *s = malloc(n ? n : 1);
    FUZZ_CHECK(s);
    memcpy(s, p, n);
    return s;
}

/* Parses s[0..n) as a traceparent and checks it; true if it was valid, and
 * then *out holds it. */
static bool check_traceparent(const uint8_t *p, size_t n, cctx_trace_t *out)
{
    char *s = copy(p, n);
    cctx_trace_t t, untouched;
    memset(&t, 0x5a, sizeof t);
    untouched = t;
    int r = cctx_traceparent_parse(s, n, &t);
    bool ok = reference_traceparent(s, n);
    FUZZ_CHECK(r == (ok ? 0 : EINVAL));
    if (!ok) {
        FUZZ_CHECK(memcmp(&t, &untouched, sizeof t) == 0);
        free(s);
        return false;
    }
    FUZZ_CHECK(memcmp(t.span_id, t.parent_id, 8) == 0);
    FUZZ_CHECK(t.state_len == 0 && t.state[0] == '\0');

    char text[CCTX_TRACEPARENT_SIZE];
    FUZZ_CHECK(cctx_traceparent_format(&t, text) == 0);
    FUZZ_CHECK(strlen(text) == 55);
    FUZZ_CHECK(memcmp(text, "00", 2) == 0);
    /* Only the version changes, and the flags: 00's reserved bits are
     * cleared, and a later version keeps "sampled" alone. */
    FUZZ_CHECK(memcmp(text + 2, s + 2, 51) == 0);
    int flags = hexval(s[53]) * 16 + hexval(s[54]);
    int kept =
        memcmp(s, "00", 2) == 0 ? CCTX_TRACE_SAMPLED | CCTX_TRACE_RANDOM : CCTX_TRACE_SAMPLED;
    FUZZ_CHECK(t.flags == (flags & kept));
    FUZZ_CHECK(hexval(text[53]) * 16 + hexval(text[54]) == t.flags);
    cctx_trace_t back;
    FUZZ_CHECK(cctx_traceparent_parse(text, 55, &back) == 0);
    FUZZ_CHECK(memcmp(back.trace_id, t.trace_id, 16) == 0);
    FUZZ_CHECK(memcmp(back.parent_id, t.parent_id, 8) == 0);
    FUZZ_CHECK(memcmp(back.span_id, t.span_id, 8) == 0);
    FUZZ_CHECK(back.flags == t.flags);

    char id[CCTX_TRACE_ID_HEX_SIZE], span[CCTX_SPAN_ID_HEX_SIZE];
    cctx_trace_id_hex(&t, id);
    cctx_span_id_hex(t.parent_id, span);
    FUZZ_CHECK(memcmp(id, s + 3, 32) == 0 && id[32] == '\0');
    FUZZ_CHECK(memcmp(span, s + 36, 16) == 0 && span[16] == '\0');
    free(s);
    *out = t;
    return true;
}

static void check_tracestate(const uint8_t *p, size_t n, cctx_trace_t *t)
{
    char *s = copy(p, n);
    cctx_trace_t before = *t;
    int want;
    bool ok = reference_tracestate(s, n, &want);
    int r = cctx_tracestate_parse(s, n, t);
    FUZZ_CHECK(r == want);
    FUZZ_CHECK(memcmp(t->trace_id, before.trace_id, 16) == 0);
    FUZZ_CHECK(memcmp(t->span_id, before.span_id, 8) == 0);
    FUZZ_CHECK(memcmp(t->parent_id, before.parent_id, 8) == 0);
    FUZZ_CHECK(t->flags == before.flags);
    if (ok) {
        FUZZ_CHECK(t->state_len == n);
        FUZZ_CHECK(memcmp(t->state, s, n) == 0 && t->state[n] == '\0');
    } else {
        FUZZ_CHECK(t->state_len == 0 && t->state[0] == '\0');
    }
    free(s);
}

static void check_child(const cctx_trace_t *t)
{
    cctx_trace_t c;
    FUZZ_CHECK(cctx_trace_child(t, &c) == 0);
    FUZZ_CHECK(memcmp(c.trace_id, t->trace_id, 16) == 0);
    FUZZ_CHECK(memcmp(c.parent_id, t->span_id, 8) == 0);
    static const uint8_t zero[8];
    FUZZ_CHECK(memcmp(c.span_id, zero, 8) != 0);
    FUZZ_CHECK(c.flags == t->flags);
    FUZZ_CHECK(c.state_len == t->state_len);
    FUZZ_CHECK(memcmp(c.state, t->state, t->state_len + 1u) == 0);

    cctx_t *ctx = cctx_with_trace(cctx_background(), t);
    FUZZ_CHECK(ctx);
    const cctx_trace_t *got = cctx_trace_of(ctx);
    FUZZ_CHECK(got && got != t && memcmp(got, t, sizeof *t) == 0);
    cctx_release(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cctx_trace_t t;
    check_traceparent(data, size, &t);

    const uint8_t *nl = memchr(data, '\n', size);
    size_t first = nl ? (size_t)(nl - data) : size;
    bool valid = check_traceparent(data, first, &t);
    if (!nl)
        return 0;
    /* The state of an invalid traceparent is never read; a fixed trace
     * stands in, so that every input exercises the tracestate parser. */
    if (!valid)
        FUZZ_CHECK(cctx_traceparent_parse(
                       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 55, &t) == 0);
    check_tracestate(nl + 1, size - first - 1, &t);
    if (valid)
        check_child(&t);
    return 0;
}
