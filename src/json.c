/* SPDX-License-Identifier: MIT */
/*
 * The JSON string writer and its UTF-8 decoder (json.h).
 *
 * RFC 8259 requires a JSON text to be UTF-8, and strict readers (Python's
 * json, Perfetto, JSON.parse on a page decoded as UTF-8) reject or garble
 * anything else, so one bad byte in a name would make a whole dump or trace
 * unreadable. Each byte that starts no well-formed sequence (RFC 3629's
 * table: no overlongs, no surrogates, nothing above U+10FFFF) is written as
 * U+FFFD, one per byte, and the well-formed parts pass through unchanged.
 */
#include "json.h"

#include <string.h>

size_t cctx__utf8_char(const unsigned char *s, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    /* The range the second byte must be in narrows for E0 (overlong), ED
     * (surrogates), F0 (overlong) and F4 (above U+10FFFF); NUL is never a
     * continuation byte, so the end of the string cuts a sequence short. */
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    uint32_t c;
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2;
        c = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        c = b & 0x0f;
        if (b == 0xe0)
            lo = 0xa0;
        else if (b == 0xed)
            hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        c = b & 0x07;
        if (b == 0xf0)
            lo = 0x90;
        else if (b == 0xf4)
            hi = 0x8f;
    } else {
        return 0; /* 80-C1: continuation or overlong lead; F5-FF: never */
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    c = c << 6 | (s[1] & 0x3f);
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    *cp = c;
    return len;
}

void cctx__json_body(FILE *out, const char *str)
{
    if (!str)
        return;
    const unsigned char *s = (const unsigned char *)str;
    /* Runs that need no escape go out in one fwrite: a name can be a
     * megabyte long. */
    const unsigned char *run = s;
    while (*s) {
        unsigned char b = *s;
        uint32_t cp;
        size_t len = 1;
        if (b >= 0x20 && b != '"' && b != '\\' && b != '<' &&
            (b < 0x80 || (len = cctx__utf8_char(s, &cp)) != 0)) {
            s += len;
            continue;
        }
        fwrite(run, 1, (size_t)(s - run), out);
        if (b == '"' || b == '\\')
            fprintf(out, "\\%c", b);
        else if (b < 0x80)
            fprintf(out, "\\u%04x", b);
        else
            fputs("\\ufffd", out);
        run = ++s;
    }
    fwrite(run, 1, (size_t)(s - run), out);
}

void cctx__json_str(FILE *out, const char *s)
{
    fputc('"', out);
    cctx__json_body(out, s);
    fputc('"', out);
}
