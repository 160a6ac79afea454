/* SPDX-License-Identifier: MIT */
/*
 * The validator's own test: a checker that accepted too much would hide the
 * very bugs the fuzzers look for, so each rule of RFC 8259 and of UTF-8 it
 * enforces has a case that must be refused, beside cases that must pass.
 * fuzz/run.sh runs it before any fuzzing.
 */
#include <stdio.h>
#include <string.h>

#include "json_check.h"

static int failures;

static void expect(const char *text, bool valid)
{
    struct json_error err;
    if (json_check(text, strlen(text), &err) != valid) {
        printf("json_check wrongly %s: %s%s%s\n", valid ? "refused" : "accepted", text,
               valid ? " -- " : "", valid ? err.what : "");
        failures++;
    }
}

int main(void)
{
    /* Valid. */
    expect("{}", true);
    expect("[]", true);
    expect("1", true);
    expect("\"\\/\"", true);
    expect(" [1, 2.5e-3, -0, true, false, null, \"a\\u00e9\\ud83d\\ude00\"] ", true);
    expect("{\"a\":{\"b\":[[],{}]},\"c\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", true);
    expect("[1e5, 1E+5, 0.0e-0]", true);
    /* Grammar. */
    expect("", false);
    expect("]", false);
    expect("[[[", false);
    expect("[1,]", false);
    expect("[,1]", false);
    expect("{\"a\":1,}", false);
    expect("{\"a\" 1}", false);
    expect("{1:2}", false);
    expect("{\"a\":}", false);
    expect("[1] [2]", false);
    expect("[tru]", false);
    expect("[\"a]", false);
    expect("\xef\xbb\xbf[]", false); /* a byte order mark is not whitespace */
    /* Numbers. */
    expect("[01]", false);
    expect("[1.]", false);
    expect("[.5]", false);
    expect("[+1]", false);
    expect("[-]", false);
    expect("[1e]", false);
    /* Strings: controls, escapes, surrogates. */
    expect("[\"\x01\"]", false);
    expect("[\"\\x\"]", false);
    expect("[\"\\ud800\"]", false);
    expect("[\"\\udc00\"]", false);
    /* UTF-8: overlong, surrogate, past U+10FFFF, cut, stray continuation. */
    expect("[\"\xc0\xaf\"]", false);
    expect("[\"\xe0\x80\xaf\"]", false);
    expect("[\"\xed\xa0\x80\"]", false);
    expect("[\"\xf4\x90\x80\x80\"]", false);
    expect("[\"\xe2\x82\"]", false);
    expect("[\"\x80\"]", false);
    expect("[\"\xff\"]", false);
    if (!utf8_valid("\xf0\x9f\x98\x80", 4) || utf8_valid("\xf0\x9f\x98", 3)) {
        printf("utf8_valid is wrong\n");
        failures++;
    }
    printf("json_check: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
