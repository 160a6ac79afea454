/* SPDX-License-Identifier: MIT */
/* A strict RFC 8259 validator: see json_check.h. */
#include "json_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The length of the UTF-8 sequence at s[i] (RFC 3629's table), 0 if it is
 * not a well-formed one. */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t i)
{
    unsigned char c = s[i];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0; /* a continuation byte, an overlong lead (C0, C1), or past U+10FFFF */
    if (c == 0xe0)
        lo = 0xa0; /* overlong three-byte forms */
    else if (c == 0xed)
        hi = 0x9f; /* UTF-16 surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong four-byte forms */
    else if (c == 0xf4)
        hi = 0x8f; /* past U+10FFFF */
    if (len - i < n)
        return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((s[i + k] & 0xc0) != 0x80)
            return 0;
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(u, len, i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

struct parser {
    const unsigned char *s;
    size_t len, pos;
    const char *what;
};

static bool fail(struct parser *p, const char *what)
{
    p->what = what;
    return false;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits after "\u" at p->pos; -1 if malformed. */
static long read_u4(struct parser *p)
{
    if (p->len - p->pos < 4)
        return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex(p->s[p->pos + (size_t)k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    p->pos += 4;
    return v;
}

static bool string(struct parser *p)
{
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return fail(p, "expected a string");
    p->pos++;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return true;
        }
        if (c < 0x20)
            return fail(p, "unescaped control character in a string");
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len)
                return fail(p, "unterminated escape");
            c = p->s[p->pos++];
            switch (c) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                continue;
            case 'u': {
                long u = read_u4(p);
                if (u < 0)
                    return fail(p, "bad \\u escape");
                if (u >= 0xdc00 && u <= 0xdfff)
                    return fail(p, "unpaired low surrogate escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                        return fail(p, "unpaired high surrogate escape");
                    p->pos += 2;
                    long lo = read_u4(p);
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(p, "high surrogate escape not followed by a low one");
                }
                continue;
            }
            default:
                p->pos--;
                return fail(p, "unknown escape");
            }
        }
        size_t n = utf8_seq(p->s, p->len, p->pos);
        if (n == 0)
            return fail(p, "invalid UTF-8 in a string");
        p->pos += n;
    }
}

static bool digits(struct parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number(struct parser *p)
{
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len)
        return fail(p, "truncated number");
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else if (!digits(p)) {
        return fail(p, "expected a digit");
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!digits(p))
            return fail(p, "expected a digit after the decimal point");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!digits(p))
            return fail(p, "expected a digit in the exponent");
    }
    return true;
}

static bool literal(struct parser *p, const char *word)
{
    for (size_t k = 0; word[k]; k++, p->pos++)
        if (p->pos >= p->len || p->s[p->pos] != (unsigned char)word[k])
            return fail(p, "bad literal");
    return true;
}

/* A key, the colon after it, and the whitespace around them. */
static bool member_key(struct parser *p)
{
    skip_ws(p);
    if (!string(p))
        return false;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
        return fail(p, "expected ':'");
    p->pos++;
    return true;
}

static bool parse(struct parser *p)
{
    char *stack = NULL; /* '{' or '[' per open container */
    size_t depth = 0, cap = 0;
    bool ok = false;
    skip_ws(p);
    for (;;) {
        /* A value. */
        skip_ws(p);
        if (p->pos >= p->len) {
            fail(p, "expected a value");
            goto out;
        }
        unsigned char c = p->s[p->pos];
        bool opened = false;
        if (c == '{' || c == '[') {
            if (depth == cap) {
                cap = cap ? cap * 2 : 64;
                char *g = realloc(stack, cap);
                if (!g) {
                    fail(p, "out of memory");
                    goto out;
                }
                stack = g;
            }
            stack[depth++] = (char)c;
            p->pos++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (c == '{' ? '}' : ']')) {
                p->pos++;
                depth--; /* empty: closed at once */
            } else if (c == '{') {
                if (!member_key(p))
                    goto out;
                continue;
            } else {
                continue;
            }
            opened = true;
        }
        if (!opened) {
            bool r;
            if (c == '"')
                r = string(p);
            else if (c == '-' || (c >= '0' && c <= '9'))
                r = number(p);
            else if (c == 't')
                r = literal(p, "true");
            else if (c == 'f')
                r = literal(p, "false");
            else if (c == 'n')
                r = literal(p, "null");
            else
                r = fail(p, "expected a value");
            if (!r)
                goto out;
        }
        /* After a value: a separator, a closer, or the end. */
        for (;;) {
            skip_ws(p);
            if (depth == 0) {
                if (p->pos != p->len) {
                    fail(p, "text after the value");
                    goto out;
                }
                ok = true;
                goto out;
            }
            if (p->pos >= p->len) {
                fail(p, "unterminated container");
                goto out;
            }
            char top = stack[depth - 1];
            c = p->s[p->pos];
            if (c == ',') {
                p->pos++;
                if (top == '{' && !member_key(p))
                    goto out;
                break; /* the next value */
            }
            if (c == (top == '{' ? '}' : ']')) {
                p->pos++;
                depth--;
                continue;
            }
            fail(p, top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
            goto out;
        }
    }
out:
    free(stack);
    return ok;
}

bool json_check(const char *text, size_t len, struct json_error *err)
{
    struct parser p = {(const unsigned char *)text, len, 0, NULL};
    bool ok = parse(&p);
    if (!ok && err) {
        err->offset = p.pos;
        err->what = p.what;
    }
    return ok;
}

void json_report(const char *what, const char *text, size_t len, const struct json_error *err)
{
    size_t from = err->offset > 120 ? err->offset - 120 : 0;
    size_t to = err->offset + 120 < len ? err->offset + 120 : len;
    fprintf(stderr, "%s: invalid JSON at byte %zu of %zu: %s\ncontext (escaped):\n", what,
            err->offset, len, err->what);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)text[i];
        if (i == err->offset)
            fputs(">>>", stderr);
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}
