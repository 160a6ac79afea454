/* SPDX-License-Identifier: MIT */
/*
 * The version macros agree with each other and with the library.
 */
#include <cctx.h>

#include <stdio.h>

#include "harness.h"

TEST(version_macros_and_library_agree)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CCTX_VERSION_MAJOR, CCTX_VERSION_MINOR,
             CCTX_VERSION_PATCH);
    CHECK_STR(CCTX_VERSION_STRING, want);
    CHECK_STR(cctx_version(), want);
    CHECK_EQ(CCTX_VERSION,
             CCTX_VERSION_MAJOR * 10000 + CCTX_VERSION_MINOR * 100 + CCTX_VERSION_PATCH);
}
