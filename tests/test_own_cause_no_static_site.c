/* SPDX-License-Identifier: MIT */
/*
 * The cancel macros without static site records (CCTX_NO_STATIC_SITE, as
 * with a compiler that has no statement expressions): they call the _at
 * functions, whose site is given by value, so the cause takes a record,
 * and names the same site.
 */
#define _GNU_SOURCE
#define CCTX_NO_STATIC_SITE
#include <cctx.h>
#include <errno.h>

#include "harness.h"
#include "internal.h" /* the slot */
#include "testhooks.h"

TEST(own_cause_without_static_sites_the_macros_take_a_record)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    int line = __LINE__ + 1;
    cctx_cancel_cause(cancel, 5, NULL);
    CHECK_EQ(cctx__test_live_allocs(), before + 1);
    cctx__test_count_allocs(false);
    CHECK(!cctx__cause_is_own((struct cctx__cancelable *)c));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.code, 5);
    CHECK_EQ(cause.line, line);
    CHECK_STR(cause.file, __FILE__);
    CHECK_STR(cause.func, __func__);
    cctx_release(c);
}
