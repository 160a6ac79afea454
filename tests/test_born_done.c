/* SPDX-License-Identifier: MIT */
/*
 * Born-done contexts: cctx_with_cancel under a source that has already ended
 * makes the context head alone (no list, no cause of its own), which defers
 * to that source for everything but its error. Each answer it gives is the
 * one a full cancel context would give, its handle is a harmless no-op, and
 * cctx_cancel_and_wait through it still waits for its descendants.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "internal.h" /* struct cctx, the kinds */
#include "support.h"

static const char key;

TEST(born_done_child_of_an_ended_source_is_the_head_alone)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel(pc);
    cctx_cancel_t *h;
    cctx_t *c = cctx_with_cancel(p, &h);
    CHECK(c != NULL && h != NULL);
    CHECK_EQ((int)cctx__kind(c), (int)KIND_BORN_DONE);
    /* One allocation of the head: smaller than any cancelable context. */
    CHECK(malloc_usable_size(c) >= sizeof(struct cctx));
    CHECK(malloc_usable_size(c) < sizeof(struct cctx__cancelable));
    /* Through a value context too, and for the grandchildren. */
    int x = 1;
    cctx_t *v = cctx_with_value(p, &key, &x, NULL);
    cctx_t *g = cctx_with_cancel(v, NULL);
    cctx_t *gg = cctx_with_cancel(g, NULL);
    CHECK_EQ((int)cctx__kind(g), (int)KIND_BORN_DONE);
    CHECK_EQ((int)cctx__kind(gg), (int)KIND_BORN_DONE);
    CHECK(cctx_value(gg, &key) == &x);
    cctx_release(gg);
    cctx_release(g);
    cctx_release(v);
    cctx_release(c);
    cctx_release(p);
}

TEST(born_done_child_answers_as_its_ended_source_does)
{
    cctx_fake_clock_start(CCTX_SEC(100));
    cctx_cancel_t *tc;
    int64_t deadline = CCTX_SEC(160);
    cctx_t *t = cctx_with_deadline(cctx_background(), deadline, &tc);
    int line = __LINE__ + 1;
    cctx_cancel_cause(tc, 7, "shed");
    cctx_t *c = cctx_with_cancel(t, NULL);
    CHECK_EQ((int)cctx__kind(c), (int)KIND_BORN_DONE);
    /* The error: inline, from the library, and from a wait of any length. */
    CHECK_EQ(cctx_err(c), ECANCELED);
    CHECK_EQ((cctx_err)(c), ECANCELED);
    CHECK_EQ(cctx_wait(c, 0), ECANCELED);
    CHECK_EQ(cctx_wait(c, -1), ECANCELED);
    /* The cause: its source's record, site and all. */
    check_cause(c, ECANCELED, 7, "shed", line, __func__);
    check_same_cause(c, t);
    /* The deadline that governs its source. */
    int64_t d = 0;
    CHECK(cctx_deadline(c, &d));
    CHECK_EQ(d, deadline);
    /* A done descriptor that is readable at once. */
    int fd = cctx_done_fd(c);
    CHECK(fd >= 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 0), 1);
    /* An after-function runs at once, on this thread. */
    struct rec r;
    rec_on(&r, c);
    CHECK_EQ(atomic_load(&r.runs), 1);
    cctx_release(c);
    cctx_release(t);
    cctx_fake_clock_stop();
}

TEST(born_done_handle_cancels_nothing_and_cancel_and_wait_waits_for_descendants)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    int line = __LINE__ + 1;
    cctx_cancel(pc);
    cctx_cancel_t *h;
    cctx_t *c = cctx_with_cancel(p, &h);
    cctx_cancel_cause(h, 9, "too late");
    check_cause(c, ECANCELED, 0, "context canceled", line, __func__);
    /* Nothing else holds it: at once. */
    cctx_t *mine = cctx_ref(c);
    CHECK_EQ(cctx_cancel_and_wait(h, 0, NULL), ETIMEDOUT); /* `mine` is held */
    cctx_release(mine);
    CHECK_EQ(cctx_cancel_and_wait(h, 0, NULL), 0);
    /* A descendant holds it: a timeout, and a report that names it a cancel
     * context, made on this line. */
    cctx_t *g = cctx_with_cancel(c, NULL);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK(out != NULL);
    CHECK_EQ(cctx_cancel_and_wait(h, CCTX_MSEC(1), out), ETIMEDOUT);
    fclose(out);
    CHECK(text && strncmp(text, "cancel ", 7) == 0);
    free(text);
    cctx_release(g);
    CHECK_EQ(cctx_cancel_and_wait(h, CCTX_MSEC(1), NULL), 0);
    cctx_release(c);
    cctx_release(p);
}
