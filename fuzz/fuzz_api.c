/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api: the input is a program of API calls over a small pool of
 * contexts, after-function registrations and done descriptors, run on the
 * fake clock. The target keeps a model of what it made (each context's
 * ancestors, values, name, error so far) and after every step checks what
 * must hold whatever the program did:
 *  - a context whose ancestor is done is done (without_cancel and a grace
 *    context cut the line); a grace context has no deadline while its
 *    parent is active;
 *  - an error never changes once set, and cctx_cause agrees with cctx_err;
 *  - cctx_remaining is never more than an ancestor's, and is the deadline
 *    minus now; an active context's deadline is still ahead;
 *  - a cancellation reaches every active descendant with its own cause; one
 *    that comes second changes nothing;
 *  - an after-function runs once, as soon as its context is done, unless
 *    cctx_after_stop stopped it first, and stop's answer says which happened;
 *    one may advance the fake clock, or start it anew, from inside: an
 *    advance it extends ends no earlier, and leaves nothing due unfired;
 *  - the done descriptor is readable exactly when the context is done, and
 *    cctx_wait(ctx, 0) gives the context's error;
 *  - cctx_cancel_and_wait(cancel, 0) gives 0 exactly when nothing but the
 *    caller holds the context (no other reference, no live context derived
 *    from it), and writes its report exactly when it gives ETIMEDOUT;
 *  - value look-ups find the nearest value of that key;
 *  - every JSON dump, and the JSON inside every HTML dump, is valid;
 * and at the end of each input, with everything released, that the library
 * holds no block, no armed deadline and no descriptor, and every value was
 * destroyed once.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <dirent.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h" /* cctx__debug_enable: the registry, for cctx_dump(NULL) */
#include "testhooks.h"

enum { NSLOT = 8, NAFTER = 8, NKEY = 3, MAXHELD = 4, MAXSTEPS = 256, NAMEMAX = 64 };
enum { MAXLINE = 64 };
enum { K_CANCEL, K_DEADLINE, K_VALUE, K_DETACHED, K_GRACE };

static const char keys[NKEY];
static int value_tokens[4];

struct slot {
    cctx_t *ctx;            /* NULL: empty */
    cctx_cancel_t *cancel;  /* NULL if none was asked for or the kind has none */
    int held;               /* references the target owns */
    unsigned gen;           /* bumped whenever the slot empties */
    int kind;
    bool never_ends;        /* nothing can ever end it */
    struct {
        int slot;
        unsigned gen;
    } anc[NSLOT];           /* ancestors whose end and deadline reach it */
    int nanc;
    /* A grace context, or one derived from it: its deadline may come after
     * it was derived, while a context derived from it before keeps its own,
     * so remaining times are not compared with its ancestors'. */
    bool under_grace;
    int gp_slot; /* a grace context's parent, -1 for a root */
    unsigned gp_gen;
    /* Every context it holds a reference on, each by its serial: the parent
     * of any kind, and that one's, up to MAXLINE; line_full past that. */
    unsigned serial;
    unsigned line[MAXLINE];
    int nline;
    bool line_full;
    void *vals[NKEY];       /* what cctx_value must find for each key */
    int last_err;
    int fd;                 /* -1: not asked for */
    bool named;
    char name[NAMEMAX + 1];
};

enum { A_IDLE, A_REG, A_STOPPED, A_RAN };
struct after {
    cctx_after_t reg;
    int state;
    int slot;       /* -1: registered on a root */
    unsigned gen;
    bool never;     /* registered on a context that can never end */
    int runs;
    /* What fn does besides counting: 0 nothing, 1 stop another, 2 cancel a
     * slot, 3 move the fake clock (advance by `by`, or start it anew at `by`
     * when target is 1), which the fake clock allows from inside. */
    int action;
    int target;
    int64_t by;
};

/* FUZZ_VERBOSE=1 in the environment: each step is said on stderr, to read
 * what a reproducer does. */
static bool verbose;
#define SAY(...)                                \
    do {                                        \
        if (verbose)                            \
            fprintf(stderr, __VA_ARGS__);       \
    } while (0)

static struct slot slots[NSLOT];
static struct after afters[NAFTER];
static long values_made, values_destroyed;
/* An after-function advanced the clock (1) or started it anew (2). */
static int clock_moved;
static unsigned next_serial;

/* ---- the model ------------------------------------------------------------- */

static bool anc_live(const struct slot *s, int i)
{
    const struct slot *a = &slots[s->anc[i].slot];
    return a->ctx && a->gen == s->anc[i].gen;
}

static void value_destroy(void *v)
{
    (void)v;
    values_destroyed++;
}

static void check_cause_ok(cctx_t *c, int err)
{
    cctx_cause_t cause;
    memset(&cause, 0x5a, sizeof cause);
    FUZZ_CHECK(cctx_cause(c, &cause) == err);
    FUZZ_CHECK(cause.err == err);
    if (err) {
        FUZZ_CHECK(cause.msg != NULL);
    } else {
        FUZZ_CHECK(cause.msg == NULL && cause.file == NULL && cause.func == NULL);
        FUZZ_CHECK(cause.code == 0 && cause.line == 0 && cause.when == 0);
    }
}

static bool same_cause(const cctx_cause_t *a, const cctx_cause_t *b)
{
    return a->err == b->err && a->code == b->code && a->line == b->line && a->when == b->when &&
           strcmp(a->msg, b->msg) == 0 &&
           strcmp(a->file ? a->file : "", b->file ? b->file : "") == 0 &&
           strcmp(a->func ? a->func : "", b->func ? b->func : "") == 0;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static void check_slot(struct slot *s)
{
    cctx_t *c = s->ctx;
    int e = cctx_err(c);
    FUZZ_CHECK(e == 0 || e == ECANCELED || e == ETIMEDOUT);
    if (s->last_err)
        FUZZ_CHECK(e == s->last_err); /* never goes back, never changes */
    s->last_err = e;
    check_cause_ok(c, e);
    if (s->never_ends)
        FUZZ_CHECK(e == 0);

    int64_t now = cctx_now(), d = 0;
    bool has_d = cctx_deadline(c, &d);
    int64_t rem = cctx_remaining(c);
    if (!has_d)
        FUZZ_CHECK(rem == CCTX_NO_DEADLINE);
    else
        FUZZ_CHECK(rem == sat_sub(d, now));
    if (e == 0 && has_d)
        FUZZ_CHECK(d > now); /* a deadline now due has fired */
    if (s->kind == K_DETACHED)
        FUZZ_CHECK(!has_d);
    if (s->kind == K_GRACE && e == 0) {
        /* No deadline until the parent ends; then the grace period's end,
         * which may be past the end of time: no deadline either. */
        cctx_t *gp = s->gp_slot < 0 ? NULL : slots[s->gp_slot].ctx;
        if (s->gp_slot < 0 || (gp && slots[s->gp_slot].gen == s->gp_gen && cctx_err(gp) == 0))
            FUZZ_CHECK(!has_d);
    }

    for (int i = 0; i < s->nanc; i++) {
        if (!anc_live(s, i))
            continue;
        cctx_t *a = slots[s->anc[i].slot].ctx;
        if (cctx_err(a))
            FUZZ_CHECK(e != 0);
        if (s->under_grace)
            continue;
        FUZZ_CHECK(rem <= cctx_remaining(a));
        int64_t ad;
        if (cctx_deadline(a, &ad))
            FUZZ_CHECK(has_d && d <= ad);
    }
    for (int k = 0; k < NKEY; k++)
        FUZZ_CHECK(cctx_value(c, &keys[k]) == s->vals[k]);
    if (s->named)
        FUZZ_CHECK(cctx_name(c) && strcmp(cctx_name(c), s->name) == 0);
    else
        FUZZ_CHECK(cctx_name(c) == NULL);
    if (s->fd >= 0) {
        FUZZ_CHECK(cctx_done_fd(c) == s->fd); /* made once, then the same */
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        int n;
        /* libFuzzer's SIGALRM (its -timeout watchdog) can interrupt even a
         * poll that would not wait. */
        while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
            ;
        FUZZ_CHECK(n == (e != 0));
        FUZZ_CHECK(!(p.revents & POLLNVAL)); /* the descriptor is still open */
    }
}

static void check_all(void)
{
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].ctx)
            check_slot(&slots[i]);
    for (int i = 0; i < NAFTER; i++) {
        struct after *a = &afters[i];
        FUZZ_CHECK(a->runs <= 1);
        if (a->state != A_REG || a->slot < 0)
            continue;
        struct slot *s = &slots[a->slot];
        if (s->ctx && s->gen == a->gen && cctx_err(s->ctx) != 0) {
            fprintf(stderr, "after-function %d: its context is done and it has not run\n", i);
            FUZZ_CHECK(false);
        }
    }
}

/* ---- after-functions ----------------------------------------------------------- */

static bool stop_checked(int i);

static void after_fn(void *arg)
{
    struct after *a = arg;
    a->runs++;
    FUZZ_CHECK(a->runs == 1);
    FUZZ_CHECK(a->state == A_REG); /* never after a stop that said it would not */
    a->state = A_RAN;
    if (a->action == 1) {
        stop_checked(a->target); /* a stop from inside another after-function */
    } else if (a->action == 2) {
        struct slot *s = &slots[a->target];
        if (s->ctx && s->cancel)
            cctx_cancel_cause(s->cancel, 77, "canceled by an after-function");
    } else if (a->action == 3) {
        SAY("after-function %d: clock %s %" PRId64 " (now %" PRId64 ")\n", (int)(a - afters),
            a->target ? "start" : "advance", a->by, cctx_now());
        if (a->target) {
            clock_moved |= 2;
            cctx_fake_clock_start(a->by);
        } else {
            clock_moved |= 1;
            cctx_fake_clock_advance(a->by);
        }
    }
}

/* cctx_after_stop, and what its answer says about the registration. */
static bool stop_checked(int i)
{
    struct after *a = &afters[i];
    int state = a->state;
    bool stopped = cctx_after_stop(&a->reg);
    if (stopped) {
        FUZZ_CHECK(state == A_REG);
        FUZZ_CHECK(a->runs == 0);
        a->state = A_STOPPED;
    } else {
        /* It ran (or is running on this thread, in an outer frame), was
         * stopped already, or was never registered. */
        FUZZ_CHECK(state != A_REG);
    }
    return stopped;
}

/* ---- steps ------------------------------------------------------------------------ */

static cctx_t *pick_parent(struct input *in, int *slot)
{
    uint8_t b = in_u8(in) % (NSLOT + 2);
    *slot = -1;
    if (b == NSLOT)
        return cctx_background();
    if (b == NSLOT + 1)
        return cctx_todo();
    if (!slots[b].ctx)
        return cctx_background();
    *slot = b;
    return slots[b].ctx;
}

static const char *fuzz_text(struct input *in, char *buf, size_t max)
{
    return in_string(in, buf, max);
}

static int free_slot(void)
{
    for (int i = 0; i < NSLOT; i++)
        if (!slots[i].ctx)
            return i;
    return -1;
}

static void step_derive(struct input *in)
{
    int to = free_slot();
    uint8_t kind = in_u8(in) % 7, fail = in_u8(in);
    int ps;
    cctx_t *parent = pick_parent(in, &ps);
    if (to < 0)
        return;
    struct slot *p = ps >= 0 ? &slots[ps] : NULL;
    char msg[NAMEMAX + 1];
    int code = (int)(int8_t)in_u8(in);
    const char *m = NULL;
    int64_t t = 0, deadline = CCTX_NO_DEADLINE;
    int parent_err = cctx_err(parent);
    cctx_cause_t pcause;
    cctx_cause(parent, &pcause);
    int key = 0;
    void *val = NULL;
    bool with_destroy = false;
    uint8_t want = in_u8(in);
    bool want_cancel = want & 1, grace = kind == 6 && (want & 2);
    cctx_cancel_t *cancel = NULL;
    cctx_t *c = NULL;
    int64_t now = cctx_now();

    /* Sometimes make one of the derivation's allocations fail: it must then
     * give ENOMEM and change nothing. */
    if (fail < 24)
        cctx__test_fail_alloc(1 + fail % 3);
    errno = 0;
    switch (kind) {
    case 0:
        c = cctx_with_cancel(parent, want_cancel ? &cancel : NULL);
        break;
    case 1:
        deadline = in_u8(in) & 1 ? in_time(in) : cctx__sat_add(now, in_time(in));
        c = cctx_with_deadline(parent, deadline, want_cancel ? &cancel : NULL);
        break;
    case 2:
        t = in_time(in);
        deadline = cctx__sat_add(now, t);
        c = cctx_with_timeout(parent, t, want_cancel ? &cancel : NULL);
        break;
    case 3:
        deadline = in_time(in);
        m = fuzz_text(in, msg, NAMEMAX);
        c = cctx_with_deadline_cause(parent, deadline, code, m, want_cancel ? &cancel : NULL);
        break;
    case 4:
        t = in_time(in);
        deadline = cctx__sat_add(now, t);
        m = fuzz_text(in, msg, NAMEMAX);
        c = cctx_with_timeout_cause(parent, t, code, m, want_cancel ? &cancel : NULL);
        break;
    case 5:
        key = in_u8(in) % NKEY;
        val = in_u8(in) & 1 ? &value_tokens[in_u8(in) % 4] : NULL;
        with_destroy = in_u8(in) & 1;
        if (with_destroy)
            values_made++;
        c = cctx_with_value(parent, &keys[key], val, with_destroy ? value_destroy : NULL);
        break;
    default:
        /* The bit above want_cancel's: without_cancel or grace. */
        if (grace) {
            t = in_time(in);
            c = cctx_with_grace(parent, t, want_cancel ? &cancel : NULL);
        } else {
            c = cctx_without_cancel(parent);
        }
        break;
    }
    int err = errno;
    cctx__test_fail_alloc(0);
    SAY("derive kind %d%s from slot %d into %d: deadline %" PRId64 " (now %" PRId64
        "), code %d, msg %s, alloc failure %d: %p, err %d\n",
        kind, grace ? " (grace)" : "", ps, to, grace ? t : deadline, now, code, m ? m : "(null)",
        fail < 24 ? 1 + fail % 3 : 0, (void *)c, c ? cctx_err(c) : err);
    if (!c) {
        FUZZ_CHECK(fail < 24);
        FUZZ_CHECK(err == ENOMEM);
        FUZZ_CHECK(cctx_err(parent) == parent_err);
        return;
    }

    struct slot *s = &slots[to];
    s->ctx = c;
    s->cancel = kind <= 4 || grace ? cancel : NULL;
    if ((kind <= 4 || grace) && want_cancel)
        FUZZ_CHECK(cancel != NULL);
    s->held = 1;
    s->kind = kind == 0   ? K_CANCEL
              : kind <= 4 ? K_DEADLINE
              : kind == 5 ? K_VALUE
              : grace     ? K_GRACE
                          : K_DETACHED;
    /* A grace context ends at the latest when released, as any cancelable
     * one: under a parent that never ends it is a plain cancelable context. */
    s->never_ends = s->kind == K_DETACHED || (s->kind == K_VALUE && (!p || p->never_ends));
    s->under_grace = s->kind == K_GRACE || (p && p->under_grace);
    s->gp_slot = ps;
    s->gp_gen = p ? p->gen : 0;
    s->serial = ++next_serial;
    s->nline = 0;
    s->line_full = p && p->line_full;
    if (p) {
        if (p->nline + 1 > MAXLINE) {
            s->line_full = true;
        } else {
            memcpy(s->line, p->line, p->nline * sizeof p->line[0]);
            s->nline = p->nline;
            s->line[s->nline++] = p->serial;
        }
    }
    s->nanc = 0;
    if (p && s->kind != K_DETACHED && s->kind != K_GRACE) {
        for (int i = 0; i < p->nanc; i++)
            if (anc_live(p, i))
                s->anc[s->nanc++] = p->anc[i];
        s->anc[s->nanc].slot = ps;
        s->anc[s->nanc++].gen = p->gen;
    }
    for (int k = 0; k < NKEY; k++)
        s->vals[k] = p ? p->vals[k] : NULL;
    if (s->kind == K_VALUE)
        s->vals[key] = val;
    s->last_err = 0;
    s->fd = -1;
    s->named = false;

    /* Born done: from a done parent, with its error and cause... */
    int e = cctx_err(c);
    if (s->kind == K_GRACE) {
        /* Born done only by the end of a parent already done, with no grace
         * left; its own deadline otherwise. */
        FUZZ_CHECK(e == 0 || e == ETIMEDOUT);
        if (!parent_err)
            FUZZ_CHECK(e == 0);
        else if (t > 0 && now < INT64_MAX)
            FUZZ_CHECK(e == 0);
    } else if (parent_err && s->kind != K_DETACHED) {
        FUZZ_CHECK(e == parent_err);
        cctx_cause_t cause;
        cctx_cause(c, &cause);
        FUZZ_CHECK(same_cause(&cause, &pcause));
    } else if (s->kind == K_DEADLINE && deadline <= now) {
        /* ... or from a deadline already due, with the cause it was given. */
        FUZZ_CHECK(e == ETIMEDOUT);
        cctx_cause_t cause;
        cctx_cause(c, &cause);
        FUZZ_CHECK(cause.code == (kind >= 3 ? code : 0));
        FUZZ_CHECK(strcmp(cause.msg, m ? m : "context deadline exceeded") == 0);
    } else if (s->kind != K_DETACHED) {
        FUZZ_CHECK(e == 0);
    }
}

/* cctx_cancel_and_wait(cancel, 0) gives 0 exactly when only the caller's
 * one reference holds the context: no other of the target's, and no live
 * context derived from it (each holds its parent), whatever its kind. */
static void cancel_and_wait_checked(struct slot *s, bool with_report)
{
    bool others = s->held > 1, known = true;
    char *buf = NULL;
    size_t len = 0;
    FILE *report = NULL;
    if (with_report) {
        report = open_memstream(&buf, &len);
        FUZZ_CHECK(report != NULL);
    }
    int r = cctx_cancel_and_wait(s->cancel, 0, report);
    /* No after-function derives or releases: the slots are as before. */
    for (int i = 0; i < NSLOT; i++) {
        const struct slot *d = &slots[i];
        if (!d->ctx || d == s)
            continue;
        known &= !d->line_full;
        for (int j = 0; j < d->nline; j++)
            others |= d->line[j] == s->serial;
    }
    SAY("cancel_and_wait slot %d (held %d, report %d): %d, others %d\n", (int)(s - slots), s->held,
        with_report, r, others);
    if (report) {
        FUZZ_CHECK(fclose(report) == 0);
        /* Written only when it timed out: the context itself heads it. */
        FUZZ_CHECK((len > 0) == (r == ETIMEDOUT));
        free(buf);
    }
    if (others)
        FUZZ_CHECK(r == ETIMEDOUT);
    else if (known)
        FUZZ_CHECK(r == 0);
}

static void step_cancel(struct input *in)
{
    struct slot *s = &slots[in_u8(in) % NSLOT];
    uint8_t how = in_u8(in);
    char msg[NAMEMAX + 1];
    int code = (int)in_u32(in);
    const char *m = how & 1 ? fuzz_text(in, msg, NAMEMAX) : NULL;
    if (!s->ctx || !s->cancel)
        return;
    /* Which contexts were active, and the cause of this one if it was done. */
    bool active[NSLOT];
    for (int i = 0; i < NSLOT; i++)
        active[i] = slots[i].ctx && cctx_err(slots[i].ctx) == 0;
    cctx_cause_t before, after;
    int was = cctx_cause(s->ctx, &before);
    SAY("cancel slot %d (%s, code %d, msg %s), was %d\n", (int)(s - slots),
        how & 1 ? "cause" : "plain", code, m ? m : "(null)", was);
    if ((how & 6) == 6) {
        cancel_and_wait_checked(s, how & 8);
        how &= ~1; /* as cctx_cancel */
    } else if (how & 1) {
        cctx_cancel_cause(s->cancel, code, m);
    } else {
        cctx_cancel(s->cancel);
    }
    FUZZ_CHECK(cctx_cause(s->ctx, &after) != 0);
    if (was) {
        FUZZ_CHECK(same_cause(&before, &after)); /* the first one won */
        return;
    }
    FUZZ_CHECK(after.err == ECANCELED);
    if (how & 1) {
        FUZZ_CHECK(after.code == code);
        FUZZ_CHECK(strcmp(after.msg, m ? m : "context canceled") == 0);
    }
    /* Every descendant that was active now has this cause (an after-function
     * may have canceled others since, but not these: they were done first). */
    int self = (int)(s - slots);
    for (int i = 0; i < NSLOT; i++) {
        struct slot *d = &slots[i];
        if (!d->ctx || !active[i] || i == self)
            continue;
        for (int j = 0; j < d->nanc; j++) {
            if (d->anc[j].slot == self && d->anc[j].gen == s->gen) {
                cctx_cause_t dc;
                FUZZ_CHECK(cctx_cause(d->ctx, &dc) == ECANCELED);
                FUZZ_CHECK(same_cause(&dc, &after));
            }
        }
    }
}

/* The model forgets the context before the last release: that release
 * cancels it, and an after-function it runs must not find it in a slot. */
static void slot_drop(struct slot *s)
{
    cctx_t *c = s->ctx;
    if (--s->held == 0) {
        s->ctx = NULL;
        s->cancel = NULL;
        s->fd = -1;
        s->gen++;
    }
    cctx_release(c);
}

static void step_after(struct input *in)
{
    int i = in_u8(in) % NAFTER;
    uint8_t what = in_u8(in);
    int ps;
    cctx_t *c = pick_parent(in, &ps);
    struct after *a = &afters[i];
    SAY("after %d: %s on slot %d\n", i, what & 1 ? "stop" : "register", ps);
    if (what & 1) {
        stop_checked(i);
        return;
    }
    if (a->state == A_REG)
        return; /* still registered: the storage must not be reused */
    memset(&a->reg, 0, sizeof a->reg);
    a->runs = 0;
    a->state = A_REG;
    a->slot = ps;
    a->gen = ps >= 0 ? slots[ps].gen : 0;
    a->never = ps < 0 || slots[ps].never_ends;
    a->action = (what >> 1) % 4;
    a->target = (what >> 3) % (a->action == 1 ? NAFTER : a->action == 3 ? 2 : NSLOT);
    a->by = a->action == 3 ? in_time(in) : 0;
    bool done = cctx_err(c) != 0;
    FUZZ_CHECK(cctx_after_func(c, &a->reg, after_fn, a) == 0);
    if (done)
        FUZZ_CHECK(a->runs == 1); /* ran before cctx_after_func returned */
}

static void step_read(struct input *in)
{
    uint8_t what = in_u8(in);
    struct slot *s = &slots[in_u8(in) % NSLOT];
    struct slot *o = &slots[in_u8(in) % NSLOT];
    if (!s->ctx)
        return;
    int e = cctx_err(s->ctx);
    SAY("read %d on slot %d (err %d, now %" PRId64 ")\n", what % 5, (int)(s - slots), e,
        cctx_now());
    switch (what % 5) {
    case 0:
        if (s->fd < 0) {
            s->fd = cctx_done_fd(s->ctx);
            FUZZ_CHECK(s->fd >= 0);
        }
        break;
    case 1:
        FUZZ_CHECK(cctx_wait(s->ctx, 0) == e);
        break;
    case 2:
        FUZZ_CHECK(cctx_sleep(s->ctx, 0) == e);
        break;
    case 3:
        if (o->ctx) {
            cctx_t *arr[2] = {s->ctx, o->ctx};
            errno = 0;
            int r = cctx_wait_any(arr, 2, 0);
            int want = e ? 0 : cctx_err(o->ctx) ? 1 : -1;
            FUZZ_CHECK(r == want);
            if (r < 0)
                FUZZ_CHECK(errno == ETIMEDOUT);
        }
        break;
    default:
        if (s->held < MAXHELD) {
            FUZZ_CHECK(cctx_ref(s->ctx) == s->ctx);
            s->held++;
        }
    }
}

static void step_name(struct input *in)
{
    struct slot *s = &slots[in_u8(in) % NSLOT];
    char buf[NAMEMAX + 1];
    const char *name = fuzz_text(in, buf, NAMEMAX);
    uint8_t root = in_u8(in);
    if (root % 8 == 0) {
        FUZZ_CHECK(cctx_set_name(root & 8 ? cctx_todo() : cctx_background(), name) == EINVAL);
        return;
    }
    if (!s->ctx)
        return;
    SAY("name slot %d\n", (int)(s - slots));
    FUZZ_CHECK(cctx_set_name(s->ctx, name) == 0);
    s->named = name != NULL;
    if (name)
        memcpy(s->name, name, strlen(name) + 1);
}

static void step_dump(struct input *in)
{
    uint8_t what = in_u8(in);
    int format = what % 4;
    int ps;
    cctx_t *root = pick_parent(in, &ps);
    if (what & 4)
        root = NULL; /* every live context, from the registry */
    SAY("dump %p in format %d\n", (void *)root, format);
    free(dump_checked(root, format, NULL));
}

static void step_clock(struct input *in)
{
    uint8_t what = in_u8(in);
    int64_t v = in_time(in);
    SAY("clock %s %" PRId64 " (now %" PRId64 ")\n", what % 4 ? "advance" : "start", v, cctx_now());
    if (what % 4 == 0) {
        cctx_fake_clock_start(v); /* may move the clock back: allowed, and must break nothing */
        return;
    }
    int64_t before = cctx_now();
    clock_moved = 0;
    cctx_fake_clock_advance(v);
    int64_t after = cctx_now();
    /* An after-function that advanced the clock further extends the advance;
     * one that started it anew ended it, anywhere. */
    if (clock_moved & 2)
        return;
    if (v <= 0)
        FUZZ_CHECK(after == before);
    else if (clock_moved)
        FUZZ_CHECK(after >= cctx__sat_add(before, v));
    else
        FUZZ_CHECK(after == cctx__sat_add(before, v));
}

static void step_release(struct input *in)
{
    struct slot *s = &slots[in_u8(in) % NSLOT];
    if (s->ctx) {
        SAY("release slot %d\n", (int)(s - slots));
        slot_drop(s);
    }
}

/* ---- one input --------------------------------------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    FUZZ_CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    /* cctx_dump(NULL) needs the registry, which is read from CCTX_DEBUG before
     * main; turning it on here, before any context exists, is the same. */
    cctx__debug_enable(CCTX__DEBUG_REGISTRY);
    cctx__test_count_allocs(true);
    cctx_fake_clock_start(0);
    /* Descriptors made once per process, which each input's count of open
     * descriptors must not see as a leak: the one shared by the contexts
     * that never end, and the timer thread's. */
    FUZZ_CHECK(cctx_done_fd(cctx_background()) >= 0);
    cctx_release(cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    long live0 = cctx__test_live_allocs();
    int fds0 = count_fds();
    memset(slots, 0, sizeof slots);
    memset(afters, 0, sizeof afters);
    values_made = values_destroyed = 0;
    next_serial = 0;
    cctx_fake_clock_start(in_time(&in));

    for (int step = 0; step < MAXSTEPS && in.n > 0; step++) {
        switch (in_u8(&in) % 10) {
        case 0: case 1: step_derive(&in); break;
        case 2: step_cancel(&in); break;
        case 3: step_release(&in); break;
        case 4: step_after(&in); break;
        case 5: step_read(&in); break;
        case 6: step_name(&in); break;
        case 7: step_dump(&in); break;
        case 8: step_clock(&in); break;
        default: {
            /* Look-ups with a key nothing was stored under, and with none. */
            struct slot *s = &slots[in_u8(&in) % NSLOT];
            static const char other_key;
            if (s->ctx) {
                FUZZ_CHECK(cctx_value(s->ctx, &other_key) == NULL);
                errno = 0;
                FUZZ_CHECK(cctx_value(s->ctx, NULL) == NULL && errno == EINVAL);
            }
        }
        }
        check_all();
    }

    /* Release everything, newest reference first in slot order. */
    for (int i = 0; i < NSLOT; i++)
        while (slots[i].ctx)
            slot_drop(&slots[i]);
    for (int i = 0; i < NAFTER; i++) {
        struct after *a = &afters[i];
        if (a->state != A_REG)
            continue;
        /* Every context that could end has been released, so has ended. */
        if (!a->never)
            fprintf(stderr, "after-function %d never ran: its context ended\n", i);
        FUZZ_CHECK(a->never);
        FUZZ_CHECK(cctx_after_stop(&a->reg));
        FUZZ_CHECK(a->runs == 0);
    }
    FUZZ_CHECK(values_destroyed == values_made);
    FUZZ_CHECK(cctx__test_armed_timers() == 0);
    if (cctx__test_live_allocs() != live0)
        fprintf(stderr, "library blocks: %ld live, %ld before\n", cctx__test_live_allocs(), live0);
    FUZZ_CHECK(cctx__test_live_allocs() == live0);
    FUZZ_CHECK(count_fds() == fds0);
    return 0;
}
