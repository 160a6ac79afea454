/* SPDX-License-Identifier: MIT */
/*
 * Scenarios where contexts end while other threads change the tree: a
 * parent canceled while its children are released, two cancellations and a
 * deadline at once, the last release against a cancellation through the
 * handle, derivations from a parent being canceled, leaves canceled through
 * their handles while their parent is, a chain canceled while its lower
 * links are freed.
 */
#define _GNU_SOURCE
#include <cctx/testing.h>
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "stress.h"
#include "testhooks.h"

/* An after-function that counts its runs and, if ctx is set, keeps the cause
 * it saw. Only where the test holds a reference on ctx until the function has
 * run: nothing keeps a context alive for its after-functions, and another
 * thread's last release may free it while one runs. The next round registers
 * the same storage again as soon as `finished` is set, without a stop, while
 * a runner may not yet have returned from the function: the library must not
 * touch the storage after that. */
struct seen {
    cctx_after_t reg;
    const cctx_t *ctx;
    atomic_int runs, finished;
    int err, code, line;
    int64_t when;
    char msg[32];
};

static void seen_fn(void *arg)
{
    struct seen *s = arg;
    STRESS_CHECK(atomic_fetch_add(&s->runs, 1) == 0); /* exactly once */
    if (s->ctx) {
        cctx_cause_t c;
        s->err = cctx_cause(s->ctx, &c);
        STRESS_CHECK(s->err != 0); /* done when it runs */
        s->code = c.code;
        s->line = c.line;
        s->when = c.when;
        snprintf(s->msg, sizeof s->msg, "%s", c.msg);
    }
    atomic_store(&s->finished, 1);
}

/* A deadline fired on the real clock has its after-functions run by a runner
 * thread, which no cancel call waits for: wait for one to finish,
 * boundedly. */
static void wait_finished(struct seen *s)
{
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&s->finished) && real_now() < until)
        sched_yield();
    STRESS_CHECK(atomic_load(&s->finished));
}

static void seen_on(struct seen *s, cctx_t *c, bool read_cause)
{
    memset(s, 0, sizeof *s);
    s->ctx = read_cause ? c : NULL;
    STRESS_CHECK(cctx_after_func(c, &s->reg, seen_fn, s) == 0);
}

static bool same_cause(const cctx_cause_t *a, const cctx_cause_t *b)
{
    return a->err == b->err && a->code == b->code && a->line == b->line &&
           a->when == b->when && strcmp(a->msg, b->msg) == 0;
}

static void check_seen_cause(struct seen *s, const cctx_cause_t *c)
{
    wait_finished(s);
    STRESS_CHECK(atomic_load(&s->runs) == 1);
    if (!(s->err == c->err && s->code == c->code && s->line == c->line && s->when == c->when &&
          strcmp(s->msg, c->msg) == 0))
        fprintf(stderr, "the after-function saw err %d code %d line %d when %lld msg \"%s\"; "
                        "the context has err %d code %d line %d when %lld msg \"%s\"\n",
                s->err, s->code, s->line, (long long)s->when, s->msg, c->err, c->code, c->line,
                (long long)c->when, c->msg);
    STRESS_CHECK(s->err == c->err && s->code == c->code && s->line == c->line &&
                 s->when == c->when && strcmp(s->msg, c->msg) == 0);
}

/* ---- parent cancel vs child release ---------------------------------------------- */

enum { KIDS = 24 };

struct family {
    cctx_cancel_t *pc;
    cctx_t *kids[KIDS], *grandkids[KIDS];
    struct seen seen[KIDS];
    unsigned stagger[3];
};

static void cancel_parent(void *arg)
{
    struct family *f = arg;
    spin(f->stagger[0]);
    cctx_cancel_cause(f->pc, 1, "parent canceled");
}

static void release_even(void *arg)
{
    struct family *f = arg;
    spin(f->stagger[1]);
    for (int i = 0; i < KIDS; i += 2) {
        cctx_release(f->grandkids[i]);
        cctx_release(f->kids[i]);
    }
}

static void release_odd(void *arg)
{
    struct family *f = arg;
    spin(f->stagger[2]);
    for (int i = KIDS - 1; i > 0; i -= 2) {
        cctx_release(f->kids[i]); /* the grandchild still holds it */
        cctx_release(f->grandkids[i]);
    }
}

static int parent_cancel_vs_child_release(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        static struct family f;
        cctx_t *p = cctx_with_cancel(cctx_background(), &f.pc);
        for (int i = 0; i < KIDS; i++) {
            f.kids[i] = i % 3 ? cctx_with_cancel(p, NULL)
                              : cctx_with_timeout(p, CCTX_SEC(3600), NULL);
            f.grandkids[i] = cctx_with_cancel(f.kids[i], NULL);
            STRESS_CHECK(f.kids[i] && f.grandkids[i]);
            seen_on(&f.seen[i], f.kids[i], false); /* released by another thread */
        }
        for (int i = 0; i < 3; i++)
            f.stagger[i] = rnd_below(r, 20000);
        struct team t;
        team_init(&t, 3);
        team_add(&t, cancel_parent, &f);
        team_add(&t, release_even, &f);
        team_add(&t, release_odd, &f);
        team_join(&t);
        /* Each child ended once: by its parent, or by its own last release. */
        STRESS_CHECK(cctx_err(p) == ECANCELED);
        for (int i = 0; i < KIDS; i++)
            STRESS_CHECK(atomic_load(&f.seen[i].runs) == 1);
        cctx_release(p);
    }
    blocks_end();
    return 0;
}

/* ---- two cancels and a deadline at the same moment --------------------------------- */

struct trio {
    cctx_cancel_t *cancel;
    unsigned stagger[3];
    bool fake;
};

static void first_cancel(void *arg)
{
    struct trio *t = arg;
    spin(t->stagger[0]);
    cctx_cancel_cause(t->cancel, 1, "first");
}

static void second_cancel(void *arg)
{
    struct trio *t = arg;
    spin(t->stagger[1]);
    cctx_cancel_cause(t->cancel, 2, "second");
}

static void clock_moves(void *arg)
{
    struct trio *t = arg;
    spin(t->stagger[2]);
    cctx_fake_clock_advance(100);
}

static int two_cancels_and_a_deadline(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        struct trio t = {.fake = r->rounds % 2 == 0};
        /* On the fake clock a third thread makes the deadline fire; on the
         * real one the timer thread does, some microseconds from now. */
        if (t.fake)
            cctx_fake_clock_start(CCTX_SEC(1));
        int64_t deadline = cctx_now() + (t.fake ? 100 : CCTX_USEC(rnd_below(r, 100)));
        cctx_t *c = cctx_with_deadline_cause(cctx_background(), deadline, 3, "deadline",
                                             &t.cancel);
        cctx_t *d1 = cctx_with_cancel(c, NULL);
        cctx_t *v = cctx_with_value(c, &t, &t, NULL);
        cctx_t *d2 = cctx_with_timeout(v, CCTX_SEC(3600), NULL);
        cctx_t *d3 = cctx_with_cancel(d2, NULL);
        STRESS_CHECK(c && d1 && v && d2 && d3);
        static struct seen s[4];
        seen_on(&s[0], c, true);
        seen_on(&s[1], d1, true);
        seen_on(&s[2], d2, true);
        seen_on(&s[3], v, true);
        for (int i = 0; i < 3; i++)
            t.stagger[i] = rnd_below(r, 5000);
        struct team team;
        team_init(&team, t.fake ? 3 : 2);
        team_add(&team, first_cancel, &t);
        team_add(&team, second_cancel, &t);
        if (t.fake)
            team_add(&team, clock_moves, &t);
        team_join(&team);

        /* One cause won, and everyone sees that one. */
        cctx_cause_t cc;
        int err = cctx_cause(c, &cc);
        STRESS_CHECK(err != 0);
        STRESS_CHECK(cc.code >= 1 && cc.code <= 3);
        STRESS_CHECK(err == (cc.code == 3 ? ETIMEDOUT : ECANCELED));
        STRESS_CHECK(strcmp(cc.msg, cc.code == 1 ? "first" : cc.code == 2 ? "second"
                                                                           : "deadline") == 0);
        cctx_t *all[] = {d1, v, d2, d3};
        for (int i = 0; i < 4; i++) {
            cctx_cause_t dc;
            STRESS_CHECK(cctx_cause(all[i], &dc) == err);
            STRESS_CHECK(same_cause(&dc, &cc));
        }
        for (int i = 0; i < 4; i++)
            check_seen_cause(&s[i], &cc);
        cctx_release(d3);
        cctx_release(d2);
        cctx_release(v);
        cctx_release(d1);
        cctx_release(c);
        if (t.fake)
            cctx_fake_clock_stop();
    }
    blocks_end();
    return 0;
}

/* ---- the last release vs a cancellation through the handle -------------------------- */

struct pair {
    cctx_t *c, *child;
    cctx_cancel_t *cancel;
    unsigned stagger[3];
};

static void cancel_then_release(void *arg)
{
    struct pair *p = arg;
    spin(p->stagger[0]);
    /* The handle is valid while this thread holds its reference. */
    cctx_cancel_cause(p->cancel, 5, "through the handle");
    cctx_release(p->c);
}

static void release_only(void *arg)
{
    struct pair *p = arg;
    spin(p->stagger[1]);
    cctx_release(p->c);
}

static void release_child(void *arg)
{
    struct pair *p = arg;
    spin(p->stagger[2]);
    cctx_release(p->child);
}

static int last_release_vs_handle_cancel(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        struct pair p;
        p.c = cctx_with_cancel(cctx_background(), &p.cancel);
        STRESS_CHECK(p.c && cctx_ref(p.c) == p.c); /* two references, one per thread */
        p.child = cctx_with_cancel(p.c, NULL);
        STRESS_CHECK(p.child != NULL);
        static struct seen sc, sd;
        seen_on(&sc, p.c, true); /* run by the cancel, under its thread's reference */
        seen_on(&sd, p.child, false); /* may be released while it runs */
        for (int i = 0; i < 3; i++)
            p.stagger[i] = rnd_below(r, 5000);
        struct team t;
        team_init(&t, 3);
        team_add(&t, cancel_then_release, &p);
        team_add(&t, release_only, &p);
        team_add(&t, release_child, &p);
        team_join(&t);
        /* Every release comes after the cancellation or is not the last, so
         * the context ended by the handle; the child ended by it or by its
         * own last release. Both exactly once. */
        STRESS_CHECK(atomic_load(&sc.runs) == 1);
        STRESS_CHECK(sc.code == 5 && strcmp(sc.msg, "through the handle") == 0);
        STRESS_CHECK(atomic_load(&sd.runs) == 1);
    }
    blocks_end();
    return 0;
}

/* ---- derivations from a parent being canceled ---------------------------------------- */

enum { DERIVERS = 3, PER_DERIVER = 48 };

struct deriver {
    cctx_t *parent;
    cctx_t *kids[PER_DERIVER];
    bool detached[PER_DERIVER];
    struct seen seen[PER_DERIVER];
    int n;
    unsigned stagger;
};

static void derive_many(void *arg)
{
    struct deriver *d = arg;
    spin(d->stagger);
    for (d->n = 0; d->n < PER_DERIVER; d->n++) {
        cctx_t *c;
        int k = d->n % 5;
        switch (k) {
        case 0: c = cctx_with_cancel(d->parent, NULL); break;
        case 1: c = cctx_with_timeout(d->parent, CCTX_SEC(3600), NULL); break;
        case 2: c = cctx_with_value(d->parent, d, d, NULL); break;
        case 3:
            c = cctx_with_deadline_cause(d->parent, cctx_now() + CCTX_SEC(3600), 9, "d", NULL);
            break;
        default: c = cctx_without_cancel(d->parent); break;
        }
        STRESS_CHECK(c != NULL);
        d->kids[d->n] = c;
        d->detached[d->n] = k == 4;
        if (k != 4)
            seen_on(&d->seen[d->n], c, true); /* held until the round's checks */
    }
}

/* Two cancellers race each other and the derivers, and each finds the
 * parent done when its cancel returns, whichever won. Every other round they
 * give no message, so the parent keeps its cause in itself: in no list, the
 * winner may find a child that got in after it looked at the flags and
 * before it took the lock; under a cancelable grandparent (half of those
 * rounds), the winner takes it out of the grandparent's list while it has no
 * child yet, and the loser cannot. */
struct canceller {
    cctx_t *parent;
    cctx_cancel_t *cancel;
    unsigned stagger;
    int code;
    const char *msg;
};

static void cancel_it(void *arg)
{
    struct canceller *c = arg;
    spin(c->stagger);
    cctx_cancel_cause(c->cancel, c->code, c->msg);
    STRESS_CHECK(cctx_err(c->parent) == ECANCELED);
}

static int derive_during_cancel(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        static struct deriver d[DERIVERS];
        struct canceller cl[2];
        const char *msg = r->rounds % 2 ? "parent gone" : NULL;
        cctx_cancel_t *grand_cancel = NULL, *cancel;
        cctx_t *grand = r->rounds % 4 >= 2 ? cctx_with_cancel(cctx_background(), &grand_cancel)
                                           : cctx_background();
        cctx_t *p = cctx_with_cancel(grand, &cancel);
        STRESS_CHECK(grand && p);
        for (int i = 0; i < 2; i++)
            cl[i] = (struct canceller){p, cancel, rnd_below(r, 40000), 4 + i, msg};
        if (rnd_below(r, 2)) /* at times at the same moment */
            cl[1].stagger = cl[0].stagger;
        struct team t;
        team_init(&t, DERIVERS + 2);
        for (int i = 0; i < DERIVERS; i++) {
            d[i].parent = p;
            d[i].stagger = rnd_below(r, 4000);
            team_add(&t, derive_many, &d[i]);
        }
        team_add(&t, cancel_it, &cl[0]);
        team_add(&t, cancel_it, &cl[1]);
        team_join(&t);
        /* Every child was born done or was canceled: none was missed, and no
         * deadline among them is left in the timer's heap (one canceled
         * between its attach and its arm is disarmed by its derivation). */
        STRESS_CHECK(cctx__test_armed_timers() == 0);
        cctx_cause_t pc;
        STRESS_CHECK(cctx_cause(p, &pc) == ECANCELED);
        STRESS_CHECK(pc.code == 4 || pc.code == 5);
        STRESS_CHECK(strcmp(pc.msg, msg ? msg : "context canceled") == 0);
        for (int i = 0; i < DERIVERS; i++) {
            for (int k = 0; k < d[i].n; k++) {
                cctx_t *c = d[i].kids[k];
                if (d[i].detached[k]) {
                    STRESS_CHECK(cctx_err(c) == 0);
                } else {
                    cctx_cause_t cc;
                    STRESS_CHECK(cctx_cause(c, &cc) == ECANCELED);
                    STRESS_CHECK(same_cause(&cc, &pc));
                    check_seen_cause(&d[i].seen[k], &pc);
                }
                cctx_release(c);
            }
        }
        cctx_release(p);
        STRESS_CHECK(cctx_err(grand) == 0); /* a child's cancel never reaches up */
        if (grand_cancel)
            cctx_cancel(grand_cancel);
        cctx_release(grand);
    }
    blocks_end();
    return 0;
}

/* ---- leaves canceled through their handles while their parent is ------------------- */

/* As in Go's benchmark of a shared parent: threads make leaves under one
 * parent and cancel each through its handle, while another thread cancels
 * the parent. The first maker cancels without a code, so its leaves keep a
 * placed cause and stay in the list; the second gives one, which takes a
 * leaf out of the parent's list and keeps its cause in it. A leaf with a
 * child of its own takes a record and stays, with either. Whichever
 * cause a leaf ends with, the parent's cancel must not return while a
 * context it could reach is still active: each maker shows its latest leaf
 * (or that leaf's child), and the parent's canceller looks at those as soon
 * as its cancel returns. */
enum { LEAF_MAKERS = 2, LEAVES = 64, PARENT_CODE = 99 };

struct leaf_maker {
    cctx_t *parent;
    _Atomic(cctx_t *) shown; /* its latest leaf, with a reference for the looker */
    int code;
    unsigned stagger;
};

static void make_and_cancel_leaves(void *arg)
{
    struct leaf_maker *m = arg;
    spin(m->stagger);
    for (int i = 0; i < LEAVES; i++) {
        cctx_cancel_t *cancel;
        cctx_t *leaf = cctx_with_cancel(m->parent, &cancel);
        STRESS_CHECK(leaf != NULL);
        cctx_t *below = i % 4 == 3 ? cctx_with_cancel(leaf, NULL) : NULL;
        /* The deepest: a leaf taken out of the list with a child still
         * active below it would show there. */
        cctx_t *old = atomic_exchange(&m->shown, cctx_ref(below ? below : leaf));
        if (old)
            cctx_release(old);
        if (i % 2)
            spin(64);
        cctx_cancel_cause(cancel, m->code, NULL);
        cctx_cause_t c;
        STRESS_CHECK(cctx_cause(leaf, &c) == ECANCELED);
        STRESS_CHECK(c.code == m->code || c.code == PARENT_CODE);
        if (below) {
            cctx_cause_t b;
            STRESS_CHECK(cctx_cause(below, &b) == ECANCELED && same_cause(&b, &c));
            cctx_release(below);
        }
        cctx_release(leaf);
    }
}

struct parent_canceller {
    cctx_cancel_t *cancel;
    struct leaf_maker *makers;
    unsigned stagger;
};

static void cancel_parent_then_look(void *arg)
{
    struct parent_canceller *pc = arg;
    spin(pc->stagger);
    cctx_cancel_cause(pc->cancel, PARENT_CODE, NULL);
    for (int i = 0; i < LEAF_MAKERS; i++) {
        cctx_t *leaf = atomic_exchange(&pc->makers[i].shown, NULL);
        if (leaf) {
            STRESS_CHECK(cctx_err(leaf) == ECANCELED);
            cctx_release(leaf);
        }
    }
}

static int leaf_cancels_vs_parent_cancel(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        static struct leaf_maker m[LEAF_MAKERS];
        struct parent_canceller pc = {.makers = m, .stagger = rnd_below(r, 40000)};
        cctx_t *p = cctx_with_cancel(cctx_background(), &pc.cancel);
        STRESS_CHECK(p != NULL);
        struct team t;
        team_init(&t, LEAF_MAKERS + 1);
        for (int i = 0; i < LEAF_MAKERS; i++) {
            m[i].parent = p;
            atomic_store(&m[i].shown, NULL);
            m[i].code = i; /* 0: a placed cause */
            m[i].stagger = rnd_below(r, 4000);
            team_add(&t, make_and_cancel_leaves, &m[i]);
        }
        team_add(&t, cancel_parent_then_look, &pc);
        team_join(&t);
        for (int i = 0; i < LEAF_MAKERS; i++) {
            cctx_t *left = atomic_exchange(&m[i].shown, NULL);
            if (left)
                cctx_release(left);
        }
        cctx_cause_t c;
        STRESS_CHECK(cctx_cause(p, &c) == ECANCELED && c.code == PARENT_CODE);
        cctx_release(p);
    }
    blocks_end();
    return 0;
}

/* ---- a chain canceled while its lower links are freed ------------------------------ */

/* The cancellation walks a chain hand over hand, marking each link in place
 * with no reference of its own, while two threads release the links: the
 * lower part of the chain frees itself from the bottom as they do. Some
 * links have a done descriptor or a second child (a fork), where the walk
 * goes the ordinary way and starts again below. The links the test keeps
 * must all end, with the root's cause. */
enum { LINKS = 40, KEPT_ABOVE = 24 };

struct chain {
    struct canceller cl;
    cctx_t *links[LINKS], *sides[LINKS];
    unsigned stagger[2]; /* the releasers' */
};

static bool kept(int i)
{
    return i < KEPT_ABOVE && i % 4 == 0;
}

static void release_links_from_the_top(void *arg)
{
    struct chain *c = arg;
    spin(c->stagger[0]);
    for (int i = 0; i < LINKS; i += 2)
        if (!kept(i))
            cctx_release(c->links[i]);
}

static void release_links_from_the_bottom(void *arg)
{
    struct chain *c = arg;
    spin(c->stagger[1]);
    for (int i = LINKS - 1; i >= 0; i--) {
        if (c->sides[i])
            cctx_release(c->sides[i]);
        if (i % 2)
            cctx_release(c->links[i]);
    }
}

static int chain_cancel_vs_link_release(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        static struct chain c;
        cctx_cancel_t *cancel;
        cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
        STRESS_CHECK(root != NULL);
        c.cl = (struct canceller){root, cancel, rnd_below(r, 20000), 4, "parent gone"};
        cctx_t *up = root;
        for (int i = 0; i < LINKS; i++) {
            up = c.links[i] = cctx_with_cancel(up, NULL);
            STRESS_CHECK(up != NULL);
            unsigned odd = rnd_below(r, 16);
            c.sides[i] = odd == 0 ? cctx_with_cancel(up, NULL) : NULL;
            if (odd == 1)
                STRESS_CHECK(cctx_done_fd(up) >= 0);
        }
        for (int i = 0; i < 2; i++)
            c.stagger[i] = rnd_below(r, 20000);
        struct team t;
        team_init(&t, 3);
        team_add(&t, cancel_it, &c.cl);
        team_add(&t, release_links_from_the_top, &c);
        team_add(&t, release_links_from_the_bottom, &c);
        team_join(&t);
        cctx_cause_t rc;
        STRESS_CHECK(cctx_cause(root, &rc) == ECANCELED);
        for (int i = KEPT_ABOVE - 1; i >= 0; i--) {
            if (!kept(i))
                continue;
            cctx_cause_t lc;
            STRESS_CHECK(cctx_cause(c.links[i], &lc) == ECANCELED);
            STRESS_CHECK(same_cause(&lc, &rc));
            cctx_release(c.links[i]);
        }
        cctx_release(root);
    }
    blocks_end();
    return 0;
}

const struct scenario scenarios_cancel[] = {
    {"parent_cancel_vs_child_release", "each child ends once, by its parent or its release",
     parent_cancel_vs_child_release},
    {"two_cancels_and_a_deadline", "first wins: one cause, seen by every descendant",
     two_cancels_and_a_deadline},
    {"last_release_vs_handle_cancel", "the handle's cause wins; after-functions run once",
     last_release_vs_handle_cancel},
    {"derive_during_cancel", "a child is born done or canceled, never missed",
     derive_during_cancel},
    {"chain_cancel_vs_link_release", "every link ends with the root's cause; none is freed early",
     chain_cancel_vs_link_release},
    {"leaf_cancels_vs_parent_cancel", "the parent's cancel returns with every leaf ended",
     leaf_cancels_vs_parent_cancel},
};
const int n_scenarios_cancel = sizeof scenarios_cancel / sizeof *scenarios_cancel;
