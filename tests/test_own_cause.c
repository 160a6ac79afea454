/* SPDX-License-Identifier: MIT */
/*
 * A cause kept in its origin. cctx_cancel and cctx_cancel_cause (the
 * macros) pass the address of a static record of their call site; a cancel
 * context canceled that way, once out of every list, keeps that address and
 * the time where its link was, and the code and the marking in its slot: no
 * allocation, and the context costs no byte more for having a handle. These
 * tests pin where that applies (a leaf in its parent's list, which leaves
 * it at once when the cancel gives a code; a context whose parent can never
 * end, with or without children), where it does not (children still in the
 * list, a message, a site given by hand), and that every reader of a cause
 * reads it the same. A leaf in its parent's list canceled without a code
 * keeps its cause where it stands instead (a placed cause: the time in its
 * slot, the site where its deadline's pointer was) and stays in the list
 * until its release: those tests come last.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "internal.h" /* the slot, the list, the count of live allocations */
#include "support.h"
#include "testhooks.h"

static bool in_list_of(cctx_t *parent, cctx_t *child)
{
    struct cctx__cancelable *p = (struct cctx__cancelable *)parent;
    bool found = false;
    cctx__lock(parent);
    for (struct cctx__node *n = p->children; n; n = n->next)
        if (n == &((struct cctx__cancelable *)child)->link)
            found = true;
    cctx__unlock(parent);
    return found;
}

static struct cctx__cancelable *cancelable(cctx_t *c)
{
    return (struct cctx__cancelable *)c;
}

/* A descendant of an origin reads the origin's cause, canceled at `line`,
 * and its marking is complete: a later cancel of the descendant does not
 * wait. */
static void check_handed_on(cctx_t *origin, cctx_t *descendant, int line)
{
    struct cctx__cause_at at = cctx__cause_at(cancelable(descendant));
    CHECK(cctx__cause_origin(at) == origin);
    CHECK(atomic_load(cctx__cause_marking(at)) & CAUSE_MARKED);
    cctx_cause_t mine, theirs;
    CHECK_EQ(cctx_cause(origin, &mine), ECANCELED);
    CHECK_EQ(cctx_cause(descendant, &theirs), ECANCELED);
    CHECK_EQ(theirs.line, line);
    CHECK(memcmp(&mine, &theirs, sizeof mine) == 0);
}

/* As Go's benchmark of a shared parent does: a leaf made with a handle under
 * a parent that can end, canceled by the macro. */
TEST(own_cause_a_leaf_leaves_its_parents_list_and_allocates_nothing)
{
    cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(parent, &cancel);
    CHECK(in_list_of(parent, c));
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    int64_t t0 = cctx_now();
    int line = __LINE__ + 1;
    cctx_cancel_cause(cancel, 7, NULL);
    int64_t t1 = cctx_now();
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
    CHECK(!in_list_of(parent, c));
    CHECK(cctx__cause_is_own(cancelable(c)));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.code, 7);
    CHECK_EQ(cause.line, line);
    CHECK_STR(cause.file, __FILE__);
    CHECK_STR(cause.func, __func__);
    CHECK_STR(cause.msg, "context canceled");
    CHECK(cause.when >= t0 && cause.when <= t1);
    /* The parent is untouched, and ending it later finds nothing to do. */
    CHECK_EQ(cctx_err(parent), 0);
    cctx_release(c);
    cctx_release(parent);
}

/* Its parent can never end, so it was never in a list: its children are
 * reached the ordinary way and point at its own cause. */
TEST(own_cause_an_unlinked_context_with_children_keeps_it_and_hands_it_on)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *k = cctx_with_value(c, "k", NULL, NULL);
    cctx_t *child = cctx_with_cancel(k, NULL);
    cctx_t *grandchild = cctx_with_cancel(child, NULL);
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
    CHECK(cctx__cause_is_own(cancelable(c)));
    CHECK_EQ(atomic_load(&cancelable(child)->cause), (uintptr_t)c | SLOT_REF_OWN);
    check_handed_on(c, grandchild, line);
    cctx_release(grandchild);
    cctx_release(child);
    cctx_release(k);
    cctx_release(c);
}

/* A deadline context derived from a context that ended with an own cause
 * is born done with a reference to it, not a copy of the slot. */
TEST(own_cause_a_child_born_done_refers_to_it)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    cctx_t *t = cctx_with_timeout(c, CCTX_SEC(60), NULL);
    CHECK(t);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(t, &cause), ECANCELED);
    CHECK_EQ(cause.line, line);
    CHECK_STR(cause.func, __func__);
    CHECK(cctx__cause_origin(cctx__cause_at(cancelable(t))) == c);
    cctx_release(t);
    cctx_release(c);
}

/* Children still in its list would leave a cancellation of its parent free
 * to return before they were marked, were it taken out: it takes a record,
 * and stays in the list until its release. */
TEST(own_cause_a_listed_context_with_children_takes_a_record)
{
    cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(parent, &cancel);
    cctx_t *child = cctx_with_cancel(c, NULL);
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    CHECK_EQ(cctx__test_live_allocs(), before + 1);
    CHECK(!cctx__cause_is_own(cancelable(c)));
    CHECK(in_list_of(parent, c));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(child, &cause), ECANCELED);
    CHECK_EQ(cause.line, line);
    cctx_release(child);
    cctx_release(c);
    CHECK_EQ(cctx__test_live_allocs(), before - 2);
    cctx__test_count_allocs(false);
    cctx_release(parent);
}

/* A message is copied into a record; a site given by hand has no static
 * record to point at. */
TEST(own_cause_not_with_a_message_nor_a_site_given_by_hand)
{
    cctx_cancel_t *a, *b;
    cctx_t *ca = cctx_with_cancel(cctx_background(), &a);
    cctx_t *cb = cctx_with_cancel(cctx_background(), &b);
    cctx_cancel_cause(a, 1, "gone");
    cctx_cancel_at(b, "binding.py", 12, "py_cancel");
    CHECK(!cctx__cause_is_own(cancelable(ca)));
    CHECK(!cctx__cause_is_own(cancelable(cb)));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(ca, &cause), ECANCELED);
    CHECK_STR(cause.msg, "gone");
    CHECK_EQ(cctx_cause(cb, &cause), ECANCELED);
    CHECK_STR(cause.file, "binding.py");
    CHECK_EQ(cause.line, 12);
    cctx_release(ca);
    cctx_release(cb);
}

/* The entry point the macros call, given no site, still cancels. */
TEST(own_cause_the_site_entry_without_a_site_cancels_with_an_unknown_one)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx__cancel_at_site(cancel, 0, NULL, NULL);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_STR(cause.file, "?");
    cctx__cancel_at_site(NULL, 0, NULL, NULL); /* nothing to cancel */
    cctx_release(c);
}

/* A leaf whose cause is its own is in no list: its last release frees it
 * without its parent's lock, which another thread may hold. (With a code:
 * without one, the leaf keeps a placed cause and stays listed, below.) */
static cctx_t *own_leaf;

static void release_own_leaf(void)
{
    cctx_release(own_leaf);
}

TEST(own_cause_the_release_of_such_a_leaf_takes_no_lock)
{
    cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
    cctx_cancel_t *cancel;
    own_leaf = cctx_with_cancel(parent, &cancel);
    cctx_cancel_cause(cancel, 1, NULL);
    cctx__lock(parent); /* a release that took it would hang here */
    run_with_watchdog(release_own_leaf, 10);
    cctx__unlock(parent);
    cctx_release(parent);
}

/* Both kinds of slot side by side: a context reached from an own cause and
 * one reached from a record answer from the right one. */
TEST(own_cause_and_a_record_are_told_apart_by_the_slot)
{
    cctx_cancel_t *a, *b;
    cctx_t *ra = cctx_with_cancel(cctx_background(), &a);
    cctx_t *rb = cctx_with_cancel(cctx_background(), &b);
    cctx_t *ka = cctx_with_cancel(ra, NULL);
    cctx_t *kb = cctx_with_cancel(rb, NULL);
    cctx_cancel_cause(a, 11, NULL);
    cctx_cancel_cause(b, 22, "by hand");
    cctx_cause_t x, y;
    CHECK_EQ(cctx_cause(ka, &x), ECANCELED);
    CHECK_EQ(cctx_cause(kb, &y), ECANCELED);
    CHECK_EQ(x.code, 11);
    CHECK_EQ(y.code, 22);
    CHECK_STR(y.msg, "by hand");
    CHECK(cctx__cause_owner(cancelable(ka)) == cancelable(ra));
    CHECK(cctx__cause_owner(cancelable(kb)) == NULL);
    CHECK(cctx__cause_origin(cctx__cause_at(cancelable(kb))) == rb);
    cctx_release(ka);
    cctx_release(kb);
    cctx_release(ra);
    cctx_release(rb);
}

/* ---- Placed causes ---------------------------------------------------------- */

static cctx_cancel_t *placed_cancel;
static int placed_line;

static void cancel_placed(void)
{
    placed_line = __LINE__ + 1;
    cctx_cancel(placed_cancel);
}

/* As Go's benchmark of a shared parent does: a leaf under a parent that can
 * end, canceled by the macro with no code. Its cause is kept where it
 * stands; the parent's lock, held here by the test, is not taken. */
TEST(own_cause_a_leaf_canceled_without_a_code_stays_listed_and_takes_no_lock_of_its_parent)
{
    cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *c = cctx_with_cancel(parent, &placed_cancel);
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    int64_t t0 = cctx_now();
    cctx__lock(parent); /* a cancel that took it would hang here */
    run_with_watchdog(cancel_placed, 10);
    cctx__unlock(parent);
    int64_t t1 = cctx_now();
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
    CHECK(in_list_of(parent, c));
    CHECK(cctx__cause_at(cancelable(c)).placed == cancelable(c));
    CHECK(!cctx__cause_is_own(cancelable(c)));
    CHECK(atomic_load(cctx__cause_marking(cctx__cause_at(cancelable(c)))) & CAUSE_MARKED);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.code, 0);
    CHECK_EQ(cause.line, placed_line);
    CHECK_STR(cause.file, __FILE__);
    CHECK_STR(cause.func, "cancel_placed");
    CHECK_STR(cause.msg, "context canceled");
    CHECK(cause.when >= t0 && cause.when <= t1);
    CHECK_EQ(cctx_err(parent), 0);
    /* A second cancel finds it done and changes nothing. */
    cctx_cancel(placed_cancel);
    cctx_cause_t again;
    CHECK_EQ(cctx_cause(c, &again), ECANCELED);
    CHECK(memcmp(&cause, &again, sizeof cause) == 0);
    cctx_release(c);
    CHECK(cancelable(parent)->children == NULL); /* the release unlinked it */
    cctx_release(parent);
}

/* Its deadline is its parent's, read past the site that now holds the
 * field, and a deadline context derived from it is born done with a
 * reference to the placed cause. */
TEST(own_cause_a_placed_leaf_keeps_its_deadline_and_hands_its_cause_on)
{
    cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(parent, &cancel);
    int64_t want, got;
    CHECK(cctx_deadline(c, &want));
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    CHECK(cctx__cause_at(cancelable(c)).placed == cancelable(c));
    CHECK(cctx_deadline(c, &got));
    CHECK_EQ(got, want);
    cctx_t *value = cctx_with_value(c, "k", NULL, NULL);
    CHECK(cctx_deadline(value, &got));
    CHECK_EQ(got, want);
    cctx_t *t = cctx_with_timeout(c, CCTX_SEC(60), NULL);
    CHECK(t);
    CHECK_EQ(cctx_err(t), ECANCELED);
    CHECK(cctx__cause_owner(cancelable(t)) == cancelable(c)); /* c | SLOT_REF_OWN */
    check_handed_on(c, t, line);
    cctx_release(t);
    cctx_release(value);
    cctx_release(c);
    cctx_release(parent);
}

/* Its parent's cancellation meets it done in the list, leaves its cause
 * alone, and does not wait for it; its release afterwards frees it. */
TEST(own_cause_a_placed_leaf_is_left_alone_by_its_parents_cancellation)
{
    cctx_cancel_t *up, *cancel, *other;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &up);
    cctx_t *c = cctx_with_cancel(parent, &cancel);
    cctx_t *sibling = cctx_with_cancel(parent, &other);
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    CHECK(cctx__cause_at(cancelable(c)).placed == cancelable(c));
    cctx_cancel_cause(up, 9, NULL);
    CHECK(cctx__cause_at(cancelable(c)).placed == cancelable(c));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.line, line);
    CHECK_EQ(cause.code, 0);
    CHECK_EQ(cctx_cause(sibling, &cause), ECANCELED);
    CHECK_EQ(cause.code, 9);
    cctx_release(c);
    cctx_release(sibling);
    CHECK_EQ(cctx__test_live_allocs(), before - 2);
    cctx__test_count_allocs(false);
    cctx_release(parent);
}

/* The time must fit the slot past its tags: one that does not (a fake
 * clock set far out) goes the ordinary way, out of the list; one before the
 * clock's zero fits, and reads back exactly. */
TEST(own_cause_a_placed_cause_keeps_any_time_that_fits_and_only_that)
{
    static const int64_t times[] = {-CCTX_SEC(5) - 3, INT64_MAX / 8, INT64_MIN / 8,
                                    INT64_MAX / 8 + 1, INT64_MIN / 8 - 1};
    static const bool placed[] = {true, true, true, false, false};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        cctx_fake_clock_start(times[i]);
        cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(parent, &cancel);
        cctx_cancel(cancel);
        CHECK_EQ(cctx__cause_at(cancelable(c)).placed != NULL, placed[i]);
        CHECK_EQ(in_list_of(parent, c), placed[i]);
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        CHECK_EQ(cause.when, times[i]);
        cctx_release(c);
        cctx_release(parent);
        cctx_fake_clock_stop();
    }
}

/* cctx_dump shows such a leaf, done and with its cause, under its active
 * parent until it is released, and not after. */
TEST(own_cause_a_placed_leaf_shows_in_its_parents_dump_until_released)
{
    cctx_t *parent = cctx_with_cancel(cctx_background(), NULL);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(parent, &cancel);
    cctx_set_name(c, "placed leaf");
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    CHECK(cctx__cause_at(cancelable(c)).placed == cancelable(c));
    char want[64];
    snprintf(want, sizeof want, ":%d", line);
    char *text;
    size_t len;
    FILE *out = open_memstream(&text, &len);
    CHECK_EQ(cctx_dump(parent, out, CCTX_DUMP_TEXT), 0);
    fclose(out);
    const char *leaf = strstr(text, "\"placed leaf\"");
    CHECK(leaf != NULL);
    const char *end = strchr(leaf, '\n');
    CHECK(end != NULL);
    const char *site = strstr(leaf, want);
    CHECK(site != NULL && site < end); /* the cancel's site, on its line */
    free(text);
    cctx_release(c);
    out = open_memstream(&text, &len);
    CHECK_EQ(cctx_dump(parent, out, CCTX_DUMP_TEXT), 0);
    fclose(out);
    CHECK(strstr(text, "placed leaf") == NULL);
    free(text);
    cctx_release(parent);
}
