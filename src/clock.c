/* SPDX-License-Identifier: MIT */
/*
 * The library's clock: CLOCK_MONOTONIC, or the fake clock of <cctx/testing.h>.
 */
#include <cctx/testing.h>
#include <inttypes.h>
#include <stdio.h>

#include "internal.h"

_Atomic int cctx__fake_on;
_Atomic int64_t cctx__fake_now;

int64_t cctx_now(void)
{
    if (cctx__unlikely(cctx__atomic_load_relaxed(&cctx__fake_on)))
        return cctx__atomic_load_acquire(&cctx__fake_now);
    return cctx__os_now();
}

int64_t cctx__sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

int64_t cctx__sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Go's way of writing a duration, in whole units: 5s, 250ms, 10us, 7ns. */
void cctx__format_duration(char *out, size_t n, int64_t d)
{
    static const struct {
        int64_t ns;
        const char *unit;
    } units[] = {{CCTX_SEC(1), "s"}, {CCTX_MSEC(1), "ms"}, {CCTX_USEC(1), "us"}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (d != 0 && d % units[i].ns == 0) {
            snprintf(out, n, "%" PRId64 "%s", d / units[i].ns, units[i].unit);
            return;
        }
    }
    snprintf(out, n, "%" PRId64 "ns", d);
}

void cctx_fake_clock_start(int64_t now)
{
    cctx__timer_set_fake(1, now, 0);
}

void cctx_fake_clock_advance(int64_t d)
{
    if (d <= 0 || !cctx__atomic_load_seq_cst(&cctx__fake_on))
        return;
    cctx__timer_set_fake(1, 0, d);
}

void cctx_fake_clock_stop(void)
{
    cctx__timer_set_fake(0, 0, 0);
}
