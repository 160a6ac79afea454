/* SPDX-License-Identifier: MIT */
/*
 * <cctx.h> with CCTX_NO_INLINE: no inline fast path, every cctx_err and
 * cctx_wait is a call into the library, with the same answers.
 */
#define CCTX_NO_INLINE
#include <cctx.h>
#include <errno.h>

#include "harness.h"

TEST(inline_off_calls_the_library)
{
#ifdef cctx_err
    CHECK(!"CCTX_NO_INLINE left cctx_err a macro");
#endif
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c);
    CHECK_EQ(cctx_err(c), 0);
    CHECK_EQ(cctx_wait(c, 0), 0);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(c), ECANCELED);
    CHECK_EQ(cctx_wait(c, 0), ECANCELED);
    CHECK_EQ(cctx_err(NULL), EINVAL);
    cctx_release(c);
}
