/* SPDX-License-Identifier: MIT */
/*
 * fuzz_grpc_timeout: the input is a grpc-timeout header value, and its bytes
 * also make a duration to format (biased towards the unit boundaries, every
 * magnitude, and the edges of int64_t). Checked:
 *  - the parser accepts exactly 1 to 8 ASCII digits and one of H M S m u n,
 *    and gives the value a 128-bit reference computes (saturated to
 *    CCTX_NO_DEADLINE); on failure its output is untouched;
 *  - a positive duration formats as 2 to 9 characters that parse back to no
 *    less than it and less than one unit more (or CCTX_NO_DEADLINE when
 *    rounding up passes INT64_MAX), formatting that again gives the same
 *    text, and no smaller unit could have held it in 8 digits;
 *  - a duration <= 0 is ETIMEDOUT with "" written, never "0n".
 * The parser reads a heap copy of exactly the input's length, so a read past
 * the length is an AddressSanitizer finding.
 */
#include <cctx.h>
#include <cctx/propagate.h>
#include <string.h>

#include "fuzz_common.h"

static const char unit_chars[] = "numSMH";
static const int64_t unit_ns[] = {1, 1000, 1000000, 1000000000, INT64_C(60000000000),
                                  INT64_C(3600000000000)};

static int unit_index(char c)
{
    const char *p = c ? strchr(unit_chars, c) : NULL;
    return p ? (int)(p - unit_chars) : -1;
}

/* What the parser must answer, computed another way. */
static bool reference_parse(const char *s, size_t n, int64_t *out)
{
    if (n < 2 || n > 9)
        return false;
    __int128 v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    int u = unit_index(s[n - 1]);
    if (u < 0)
        return false;
    v *= unit_ns[u];
    *out = v > INT64_MAX ? CCTX_NO_DEADLINE : (int64_t)v;
    return true;
}

static void check_format(int64_t d)
{
    char out[CCTX_GRPC_TIMEOUT_SIZE];
    memset(out, 'x', sizeof out);
    int r = cctx_grpc_timeout_format(d, out);
    if (d <= 0) {
        FUZZ_CHECK(r == ETIMEDOUT);
        FUZZ_CHECK(out[0] == '\0');
        return;
    }
    FUZZ_CHECK(r == 0);
    size_t n = strnlen(out, sizeof out);
    FUZZ_CHECK(n >= 2 && n <= 9);
    int u = unit_index(out[n - 1]);
    FUZZ_CHECK(u >= 0);
    int64_t back = -1;
    FUZZ_CHECK(cctx_grpc_timeout_parse(out, n, &back) == 0);
    FUZZ_CHECK(back >= d);
    FUZZ_CHECK(back == CCTX_NO_DEADLINE || back - d < unit_ns[u]);
    /* The smallest unit that holds it: the one below would need 9 digits. */
    if (u > 0) {
        int64_t below = d / unit_ns[u - 1] + (d % unit_ns[u - 1] != 0);
        FUZZ_CHECK(below > 99999999);
    }
    char again[CCTX_GRPC_TIMEOUT_SIZE];
    FUZZ_CHECK(cctx_grpc_timeout_format(back, again) == 0);
    FUZZ_CHECK(strcmp(out, again) == 0);
    int64_t back2 = -1;
    FUZZ_CHECK(cctx_grpc_timeout_parse(again, strlen(again), &back2) == 0);
    FUZZ_CHECK(back2 == back);
}

/* Where the formatter changes its mind: 99999999 of a unit, give or take a
 * little; or any magnitude; or the edges of int64_t. */
static int64_t duration(struct input *in)
{
    uint8_t sel = in_u8(in);
    switch (sel % 4) {
    case 0: {
        int u = in_u8(in) % 5; /* 99999999H does not fit */
        return 99999999 * unit_ns[u] + (int8_t)in_u8(in);
    }
    case 1:
        return (int64_t)(in_u64(in) >> (in_u8(in) % 64));
    case 2:
        return (int64_t)in_u64(in);
    default:
        return in_time(in);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);

    const int64_t untouched = INT64_C(-0x5a5a5a5a5a5a5a5a);
    int64_t v = untouched, want = 0;
    int r = cctx_grpc_timeout_parse(text, size, &v);
    bool ok = reference_parse(text, size, &want);
    FUZZ_CHECK(r == (ok ? 0 : EINVAL));
    if (ok) {
        FUZZ_CHECK(v == want);
        check_format(v);
    } else {
        FUZZ_CHECK(v == untouched);
    }
    free(text);

    struct input in = {data, size};
    check_format(duration(&in));
    return 0;
}
