/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets share: reading the fuzzer's bytes as typed fields,
 * and checking cctx_dump's output in every format.
 */
#ifndef CCTX_FUZZ_COMMON_H
#define CCTX_FUZZ_COMMON_H

#include <cctx.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed check: says what and where, then aborts, which libFuzzer reports
 * as a crash and saves the input that caused it. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* The fuzzer's bytes, consumed front to back; past the end every read is 0,
 * so any prefix of an input is an input too. */
struct input {
    const uint8_t *p;
    size_t n;
};

uint8_t in_u8(struct input *in);
uint16_t in_u16(struct input *in);
uint32_t in_u32(struct input *in);
uint64_t in_u64(struct input *in);
/* A time or duration, biased towards the values where arithmetic breaks:
 * 0, +-1, INT64_MIN, INT64_MAX and their neighbours, small values, raw bits. */
int64_t in_time(struct input *in);
/* A NUL-terminated string of at most max bytes (buf has max + 1), its bytes
 * taken as they are (a NUL ends it early); NULL if the fuzzer says so. */
const char *in_string(struct input *in, char *buf, size_t max);

/* Writes cctx_dump(root, format) to memory and checks it: the call returns 0,
 * JSON is valid JSON, HTML is valid UTF-8 whose data element holds valid JSON
 * that nothing closes early. Returns the output (free it) and its length. */
char *dump_checked(cctx_t *root, int format, size_t *len);

/* Checks the HTML page's embedded JSON (exposed for the trace target too). */
void check_html_page(const char *html, size_t len);

#endif
