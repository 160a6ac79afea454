/* SPDX-License-Identifier: MIT */
/*
 * Strings from the outside world (names, cause messages, file names, thread
 * names) written where a reader expects well-formed text: the one JSON string
 * writer of cctx_dump, its HTML page and CCTX_TRACE, and the UTF-8 decoder
 * that the dump's text and DOT writers share with it. Internal.
 */
#ifndef CCTX_JSON_H
#define CCTX_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The length (1 to 4) of the well-formed UTF-8 sequence that starts at s,
 * with its code point in *cp; 0 when the byte at s starts none (a stray
 * continuation byte, an overlong form, a surrogate, a code point above
 * U+10FFFF, a sequence cut short, by the end of the string included). A NUL
 * byte is a sequence of length 1. */
size_t cctx__utf8_char(const unsigned char *s, uint32_t *cp);

/* Writes s as the body of a JSON string (no quotes): each byte that starts
 * no well-formed UTF-8 sequence becomes U+FFFD, and ", \, the control
 * characters and '<' are escaped, the last so that the JSON can sit inside an
 * HTML <script> element without a string like "</script>" ending it. NULL
 * writes nothing. */
void cctx__json_body(FILE *out, const char *s);

/* The same between quotes; NULL is written as "". */
void cctx__json_str(FILE *out, const char *s);

#endif
