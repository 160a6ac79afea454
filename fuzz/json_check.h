/* SPDX-License-Identifier: MIT */
/*
 * A strict RFC 8259 JSON validator, for the fuzz targets and the bad-input
 * tests: everything the library writes as JSON (cctx_dump's JSON, the JSON
 * inside its HTML page, CCTX_TRACE's file) must be accepted by any reader,
 * so this one accepts only what the RFC's grammar allows, and refuses
 * strings that are not valid UTF-8 (overlong forms, surrogates, code points
 * past U+10FFFF, cut sequences) or hold unpaired \u surrogate escapes.
 * Nesting is tracked on a heap stack, so a deep dump cannot overflow the C
 * stack of the checker itself.
 */
#ifndef CCTX_FUZZ_JSON_CHECK_H
#define CCTX_FUZZ_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

struct json_error {
    size_t offset;    /* byte offset of the first offending byte */
    const char *what; /* a static description */
};

/* true if text[0..len) is exactly one JSON value, optionally surrounded by
 * whitespace. On false, err (if given) says where and why. */
bool json_check(const char *text, size_t len, struct json_error *err);

/* true if s[0..len) is valid UTF-8 (RFC 3629). */
bool utf8_valid(const char *s, size_t len);

/* Prints a failure with some context around the offset to stderr. */
void json_report(const char *what, const char *text, size_t len, const struct json_error *err);

#endif
