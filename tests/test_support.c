/* SPDX-License-Identifier: MIT */
/*
 * The test support itself, where a mistake in it would hang or fool the
 * tests that lean on it.
 */
#include <stdint.h>

#include "harness.h"
#include "support.h"

/* A sleep of a second or more: all of it in tv_nsec made nanosleep refuse
 * it with EINVAL, and the retry loop spun for ever. */
TEST(support_real_sleep_ms_sleeps_a_second_and_more)
{
    int64_t t0 = real_now();
    real_sleep_ms(1100);
    int64_t took = real_now() - t0;
    CHECK(took >= 1100 * INT64_C(1000000));
    CHECK(took < 10 * INT64_C(1000000000)); /* generous: a loaded machine */
}
