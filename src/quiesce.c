/* SPDX-License-Identifier: MIT */
/*
 * cctx_cancel_and_wait: cancel, then wait until nothing else holds the
 * context or any descendant, and say who still does when time runs out.
 *
 * Waiting. Every descendant holds a reference on its parent, so "nothing
 * else holds it or any descendant" is "its count is 1, the caller's". The
 * waiter sets REFS_WAITED (bit 31) in the count and sleeps on the count's
 * word (cctx__os_wait: a futex on Linux, the striped condition variables
 * elsewhere). A release that finds the bit set (the signed comparison of
 * the ordinary release sends it to cctx__release_waited) wakes the word when
 * it leaves the count at 1: the wake costs only releases of a context that
 * is waited on, and the ordinary release is unchanged. A waiter clears the
 * bit as it leaves and wakes the word once more, so that another waiter on
 * the same context (if any) sets it again. Under the fake clock the timeout
 * is an after-function (fake_timeout), which clears the bit too before it
 * wakes: whoever wakes a waiter changes the word first (see there).
 *
 * Reporting. Once a context is canceled its children are in no list (they
 * were handed to the cancellation), so the waiter looks before it cancels:
 * with a report wanted and someone else holding the context, it walks the
 * subtree (one context lock at a time, as cctx_dump does) and puts each
 * cancelable descendant in the watch set, which holds it weakly: the
 * context gets WORD_WATCHED, so its death calls cctx__debug_dying, which
 * takes it out of the set (cctx__watch_forget). At the timeout the waiter
 * takes a reference on each one still in the set (under the set's lock, so
 * none is freed meanwhile) and prints them outside every lock.
 *
 * Lock order: the watch lock nests inside nothing; no context lock is held
 * while it is taken (it is taken by a dying context, with none held).
 *
 * The walk's and the report's references are the library's, taken only to
 * look, as a dump's. The report's are dropped on a runner
 * (cctx__runner_release), so that the after-functions and destructors that
 * ending and freeing a context run never hold up the caller, whose timeout
 * bounds the call. A walk's reference that turns out to be a context's last
 * (its owner let go during the walk) is kept until the cancellation is done
 * and then dropped by the caller (watch_let_go): the context is done then,
 * so no after-function runs, and the look at the count that follows does
 * not count a reference that only the library holds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cctx/testing.h>

#include "internal.h"
#include "testhooks.h"

_Atomic unsigned cctx__watching;

/* ---- The watch set -------------------------------------------------------------- */

struct watch {
    struct cctx *ctx;          /* NULL once it died */
    struct watch *next;        /* in its bucket */
    struct watch *next_of_his; /* in its waiter's list */
    struct watch **pprev;      /* the pointer to it in its bucket; NULL: out */
    int depth;                 /* below the waited context */
};

#define WATCH_BUCKETS 1024
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct watch *buckets[WATCH_BUCKETS];

static struct watch **bucket_of(const struct cctx *c)
{
    return &buckets[((uintptr_t)c >> 4) % WATCH_BUCKETS];
}

void cctx__watch_forget(struct cctx *c)
{
    pthread_mutex_lock(&watch_lock);
    for (struct watch *w = *bucket_of(c), *next; w; w = next) {
        next = w->next;
        if (w->ctx != c)
            continue;
        *w->pprev = w->next;
        if (w->next)
            w->next->pprev = w->pprev;
        w->pprev = NULL;
        w->ctx = NULL;
    }
    pthread_mutex_unlock(&watch_lock);
}

/* fork() while a thread holds the watch lock would leave it held in the
 * child, where a dying context would wait for it forever. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&watch_lock);
}

static void fork_done(void)
{
    pthread_mutex_unlock(&watch_lock);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void watch_fork(void)
{
    pthread_atfork(fork_prepare, fork_done, fork_done);
}

/* A waiter's list of watches, in the order of the walk (reversed). */
struct waiter {
    struct watch *mine;
    /* References of the walk that turned out to be the last ones (their
     * owners let go during the walk), kept until the cancellation is done
     * (watch_let_go). */
    struct cctx **kept;
    size_t nkept, capkept;
    bool truncated; /* out of memory: some descendants are not watched */
};

static void watch_add(struct waiter *me, struct cctx *c, int depth)
{
    struct watch *w = malloc(sizeof *w);
    if (!w) {
        me->truncated = true;
        return;
    }
    w->ctx = c;
    w->depth = depth;
    pthread_mutex_lock(&watch_lock);
    struct watch **b = bucket_of(c);
    w->next = *b;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = b;
    *b = w;
    pthread_mutex_unlock(&watch_lock);
    w->next_of_his = me->mine;
    me->mine = w;
    /* From now on its death is heard; set while we hold it (it cannot be
     * dying), relaxed like the other bits set on a live context. */
    cctx__atomic_fetch_or_relaxed(&c->word, WORD_WATCHED);
}

static void watch_drop_all(struct waiter *me)
{
    pthread_mutex_lock(&watch_lock);
    for (struct watch *w = me->mine; w; w = w->next_of_his) {
        if (!w->pprev)
            continue;
        *w->pprev = w->next;
        if (w->next)
            w->next->pprev = w->pprev;
    }
    pthread_mutex_unlock(&watch_lock);
    for (struct watch *w = me->mine, *next; w; w = next) {
        next = w->next_of_his;
        free(w);
    }
    me->mine = NULL;
}

struct item {
    struct cctx *ctx;
    int depth;
};

/* Test hook: called by the walk with each context it watches, before it
 * lets go of its reference. */
_Atomic(cctx__ctx_hook_fn) cctx__quiesce_walk_hook;

/* Lets go of the walk's reference to x, with no lock held. When it is the
 * last one (x's owner let go meanwhile), dropping it now could run x's
 * after-functions here, and a runner dropping it would hold c, through x's
 * parents, until that runner gets to it: a look at c's count with timeout 0
 * would count it as held. So it is kept until the cancellation has ended x,
 * whose release then runs no after-function (watch_release_kept). */
static void watch_let_go(struct waiter *me, struct cctx *x)
{
    cctx__ctx_hook_fn hook = cctx__atomic_load_relaxed(&cctx__quiesce_walk_hook);
    if (cctx__unlikely(hook != NULL))
        hook(x);
    struct cctx *left = cctx__release_quietly(x, CCTX__SITE);
    if (!left)
        return;
    if (me->nkept == me->capkept) {
        size_t want = me->capkept ? 2 * me->capkept : 16;
        struct cctx **k = realloc(me->kept, want * sizeof *k);
        if (!k) { /* out of memory: a runner, which may still hold c at the look */
            cctx__runner_release(left, CCTX__SITE);
            return;
        }
        me->kept = k;
        me->capkept = want;
    }
    me->kept[me->nkept++] = left;
}

/* After the cancellation: every kept context is done, its after-functions
 * run, so its release is made here, before the look. */
static void watch_release_kept(struct waiter *me)
{
    for (size_t i = 0; i < me->nkept; i++)
        cctx_release_at(me->kept[i], CCTX__SITE);
    free(me->kept);
    me->kept = NULL;
    me->nkept = me->capkept = 0;
}

/* Watches every cancelable descendant of c that is alive now: a walk with
 * a stack of referenced contexts, one context lock at a time; a reference
 * is dropped only with no lock held (it may be the last one). */
static void watch_subtree(struct waiter *me, struct cctx__cancelable *c)
{
    struct item *stack = NULL;
    size_t n = 0, cap = 0;
    struct cctx__cancelable *x = c;
    int depth = 0;
    for (;;) {
        cctx__lock(&x->head);
        if (!(cctx__atomic_load_relaxed(&x->head.state) & STATE_ERR)) {
            for (struct cctx__node *node = x->children; node; node = node->next) {
                if (node->pprev & NODE_AFTER)
                    continue;
                if (n == cap) {
                    size_t want = cap ? cap * 2 : 64;
                    struct item *s = realloc(stack, want * sizeof *s);
                    if (!s) {
                        me->truncated = true;
                        break;
                    }
                    stack = s;
                    cap = want;
                }
                struct cctx__cancelable *child =
                    container_of(node, struct cctx__cancelable, link);
                if (cctx__try_ref(&child->head))
                    stack[n++] = (struct item){&child->head, depth + 1};
            }
        }
        cctx__unlock(&x->head);
        if (x != c) {
            watch_add(me, &x->head, depth);
            watch_let_go(me, &x->head);
        }
        if (n == 0)
            break;
        n--;
        x = (struct cctx__cancelable *)stack[n].ctx;
        depth = stack[n].depth;
    }
    free(stack);
}

/* The descendants still held, then the lines: c first, each watched one
 * under it in the order of the walk. */
static void report_held(FILE *out, struct cctx *c, struct waiter *me)
{
    size_t n = 0;
    for (struct watch *w = me->mine; w; w = w->next_of_his)
        n++;
    struct item *held = n ? malloc(n * sizeof *held) : NULL;
    /* Each entry's count of children, then a stack of entries (below). */
    size_t *aux = n ? calloc(2 * n, sizeof *aux) : NULL;
    if (!aux) {
        free(held);
        held = NULL;
    }
    size_t k = 0;
    pthread_mutex_lock(&watch_lock);
    for (struct watch *w = me->mine; held && w; w = w->next_of_his)
        if (w->ctx && cctx__try_ref(w->ctx))
            held[k++] = (struct item){w->ctx, w->depth};
    pthread_mutex_unlock(&watch_lock);

    /* The list is newest first: reversed, it is in walk order (depth
     * first), where an entry's parent is the nearest entry before it that
     * is one level up with none as shallow as it in between. One pass finds
     * them all, with a stack of entries of strictly increasing depth (a scan
     * after each entry for its children took time quadratic in their
     * number). */
    for (size_t i = 0; i < k / 2; i++) {
        struct item t = held[i];
        held[i] = held[k - 1 - i];
        held[k - 1 - i] = t;
    }
    size_t *children = aux, *open = aux ? aux + n : NULL, sp = 0, top = 0;
    for (size_t j = 0; j < k; j++) {
        while (sp > 0 && held[open[sp - 1]].depth >= held[j].depth)
            sp--;
        if (sp > 0 && held[open[sp - 1]].depth == held[j].depth - 1)
            children[open[sp - 1]]++;
        open[sp++] = j;
        top += held[j].depth == 1;
    }
    cctx__dump_text_line(out, c, NULL, 0, 0, top);
    for (size_t i = 0; i < k; i++) {
        struct cctx *x = held[i].ctx;
        cctx__dump_text_line(out, x, &cctx__source(x->parent)->head, held[i].depth, 1, children[i]);
    }
    if (me->truncated || (n && !held))
        fputs("(out of memory: some descendants may be missing)\n", out);
    fflush(out);
    for (size_t i = 0; i < k; i++)
        cctx__runner_release(held[i].ctx, CCTX__SITE);
    free(held);
    free(aux);
}

/* A line of report_registered: the snapshot's entry `at`. */
struct line {
    size_t at;
    int depth;
    size_t children;
};

/* With the registry on (CCTX_DEBUG=trees and the switches that imply it),
 * every live descendant is known, whatever its kind and whenever it was
 * canceled: each one under its own parent, children oldest first. The
 * snapshot is sorted as cctx_dump(NULL) sorts it, by parent, so an entry's
 * children are found by a binary search: n live contexts take O(n log n).
 * Out of memory for the registry's snapshot, c alone, and a line that says
 * why. False when the registry is off. */
static bool report_registered(FILE *out, struct cctx *c)
{
    struct cctx__registered *all;
    size_t n;
    /* Counted before any reference is taken (debug.h). */
    bool counted = cctx__dump_began();
    int err = counted ? cctx__registry_snapshot(&all, &n) : EBUSY;
    if (err == ENOMEM || err == EBUSY) {
        cctx__dump_text_line(out, c, NULL, 0, 0, 0);
        fputs(err == EBUSY ? "(the process is exiting: descendants not listed)\n"
                           : "(out of memory: descendants not listed)\n",
              out);
        fflush(out);
        if (counted)
            cctx__dump_ended();
        return true;
    }
    if (err != 0) {
        cctx__dump_ended();
        return false;
    }
    cctx__registered_by_parent(all, n);
    /* The lines, in order, found before any is written (a depth-first walk
     * with an explicit stack; each entry is pushed once at most), so that
     * what is not c's is let go first: a stream that blocks then holds up
     * only what it lists. c's own entry is counted out of its line. */
    struct line *lines = malloc((n ? n : 1) * sizeof *lines);
    struct line *stack = malloc((n ? n : 1) * sizeof *stack);
    bool *listed = calloc(n ? n : 1, sizeof *listed);
    size_t k = 0, top = 0;
    if (lines && stack && listed) {
        size_t sp = 0, lo, hi = cctx__registered_children(all, n, c, &lo);
        top = hi - lo;
        for (size_t i = hi; i-- > lo;) /* popped oldest first */
            stack[sp++] = (struct line){i, 1, 0};
        while (sp > 0) {
            struct line x = stack[--sp];
            hi = cctx__registered_children(all, n, all[x.at].ctx, &lo);
            x.children = hi - lo;
            for (size_t i = hi; i-- > lo;)
                stack[sp++] = (struct line){i, x.depth + 1, 0};
            listed[x.at] = true;
            lines[k++] = x;
        }
        for (size_t i = 0; i < n; i++)
            if (!listed[i] && all[i].ctx != c) {
                cctx__runner_release(all[i].ctx, CCTX__SITE);
                all[i].ctx = NULL;
            }
    }
    cctx__dump_text_line(out, c, NULL, 0, 1, top);
    for (size_t i = 0; i < k; i++) {
        struct cctx *x = all[lines[i].at].ctx;
        cctx__dump_text_line(out, x, x->parent, lines[i].depth, 1, lines[i].children);
    }
    if (n && (!lines || !stack || !listed))
        fputs("(out of memory: descendants not listed)\n", out);
    fflush(out);
    free(lines);
    free(stack);
    free(listed);
    for (size_t i = 0; i < n; i++)
        if (all[i].ctx)
            cctx__runner_release(all[i].ctx, CCTX__SITE);
    free(all);
    cctx__dump_ended();
    return true;
}

/* ---- Waiting -------------------------------------------------------------------- */

void cctx__release_waited(struct cctx *c, uint32_t old, const char *file, int line,
                          const char *func)
{
    uint32_t n = old & ~REFS_WAITED;
    /* The waiter holds one: a count that drops from 1 lost the waiter's. */
    if (cctx__unlikely(n <= 1))
        cctx__misuse("cctx_release of the reference a cctx_cancel_and_wait caller holds "
                     "(over-release)", c, file, line, func, NULL);
    if (n == 2)
        cctx__os_wake(&c->refs);
}

struct fake_wake {
    _Atomic uint32_t *word;
    _Atomic uint32_t fired;
};

/* Under the fake clock, the timeout is a deadline whose after-function ends
 * the wait: it sets `fired`, then clears REFS_WAITED, then wakes the word.
 *
 * A wake alone is not enough. The waiter reads `fired` and then sleeps with
 * cctx__os_wait(word, r), which sleeps only while the word still holds r:
 * the futex compares it in the kernel, and the portable build compares it
 * under the stripe's lock, the one the wake broadcasts under. A wake that
 * comes between the waiter's read of `fired` and that compare finds nobody
 * asleep, and with the word unchanged the waiter would then sleep until a
 * holder let go, which is just what does not happen when a timeout is
 * needed. So the word changes before the wake, as for any waker of
 * cctx__os_wait: the waiter sleeps only with the bit set in r, and a word
 * with the bit cleared no longer matches, so the compare fails (on both
 * paths) and the waiter goes round its loop, sets the bit again and reads
 * `fired` again. That read sees 1: the waiter's load or compare-and-swap of
 * the count reads the value this fetch_and wrote or a later one (while the
 * waiter holds its reference, every change of the count is a
 * read-modify-write), so it synchronizes with it.
 *
 * Another waiter on the same context loses the bit too, and only goes round
 * its loop and sets it again. If it does so before this waiter's compare,
 * with the count as it was, the word holds r again and this waiter would
 * sleep on until the word is woken once more (the other waiter leaving, or
 * the last other holder letting go). No change to the shared word can tell
 * the two waiters apart, and a word of the waiter's own would need a sleep
 * on two words at once; so under the fake clock a waiter sleeps at most
 * FAKE_LOOK_NS of the real clock at a time, and reads `fired` again. The wake
 * above still ends the wait at once in every other case.
 *
 * The waiter holds c, and its cctx_after_stop waits for this function to
 * return, so c and *f outlive it. */
static void fake_timeout(void *arg)
{
    struct fake_wake *f = arg;
    cctx__atomic_store_release(&f->fired, 1);
    cctx__atomic_fetch_and_acq_rel(f->word, ~REFS_WAITED);
    cctx__os_wake(f->word);
}

/* The longest a waiter under the fake clock sleeps before it reads its
 * timeout's `fired` again (fake_timeout: a wake two waiters can lose). */
enum { FAKE_LOOK_NS = 10 * 1000 * 1000 };

static bool held_by_others(struct cctx *c)
{
    /* Acquire: every access of the holders that let go happens before the
     * caller goes on (their releases are acq_rel). */
    return (cctx__atomic_load_acquire(&c->refs) & ~REFS_WAITED) > 1;
}

/* Sleeps on c's count until it reaches 1 or the wait ends; ETIMEDOUT then.
 * With timeout 0 it answers from the count as it is now: the cancellation
 * may have run after-functions that let the last other holder go. */
static int wait_alone(struct cctx *c, int64_t timeout, const char *file, int line,
                      const char *func)
{
    if (timeout == 0)
        return held_by_others(c) ? ETIMEDOUT : 0;
    cctx__child_restart();
    struct fake_wake fake = {.word = &c->refs};
    cctx_t *until = NULL;
    cctx_after_t reg = {{0}};
    int64_t deadline = CCTX_NO_DEADLINE;
    if (timeout > 0 && cctx__atomic_load_relaxed(&cctx__fake_on)) {
        until = cctx_with_timeout_cause_at(cctx_background(), timeout, 0, NULL, NULL, file, line,
                                           func);
        if (!until)
            return ENOMEM;
        cctx__after_func_first(until, &reg, fake_timeout, &fake, file, line, func);
    } else if (timeout > 0) {
        deadline = cctx__sat_add(cctx__os_now(), timeout);
    }
    int err = 0;
    for (;;) {
        uint32_t r = cctx__atomic_load_acquire(&c->refs);
        if ((r & ~REFS_WAITED) <= 1)
            break;
        if (!(r & REFS_WAITED)) {
            /* acq_rel: the mark is seen by every release that follows. */
            if (!cctx__atomic_cas_weak_acq_rel(&c->refs, &r, r | REFS_WAITED))
                continue;
            r |= REFS_WAITED;
        }
        if (until && !cctx__atomic_load_acquire(&fake.fired)) {
            cctx__os_wait(&c->refs, r, cctx__sat_add(cctx__os_now(), FAKE_LOOK_NS));
            continue;
        }
        if (until) {
            err = held_by_others(c) ? ETIMEDOUT : 0;
            break;
        }
        /* In a child of fork() whose restart failed, a holder may be let go
         * only by a deadline's after-function, which needs the timer thread
         * and a runner; asleep, this call would start neither. */
        int64_t slice_end = cctx__child_slice(deadline);
        if (cctx__os_wait(&c->refs, r, slice_end) == ETIMEDOUT) {
            if (slice_end == deadline) {
                err = held_by_others(c) ? ETIMEDOUT : 0;
                break;
            }
            cctx__child_restart();
        }
    }
    if (cctx__atomic_fetch_and_acq_rel(&c->refs, ~REFS_WAITED) & REFS_WAITED)
        cctx__os_wake(&c->refs); /* another waiter, if any, marks it again */
    if (until) {
        cctx_after_stop_at(&reg, file, line, func);
        cctx_release_at(until, file, line, func);
    }
    return err;
}

int cctx_cancel_and_wait_at(cctx_cancel_t *cancel, int64_t timeout, FILE *report,
                            const char *file, int line, const char *func)
{
    struct cctx *c = (struct cctx *)cancel;
    if (cctx__unlikely(!c))
        return EINVAL;
    enum cctx__kind kind = cctx__kind(c);
    if (cctx__unlikely(!cctx__cancelable_kind(kind) && kind != KIND_BORN_DONE)) {
        /* A stale handle is reported (CCTX_DEBUG=checks) by the cancel. */
        cctx_cancel_cause_at(cancel, 0, NULL, file, line, func);
        return EINVAL;
    }
    /* A born-done context has nothing to cancel, and no list to walk: its
     * descendants, born done too, are only waited for. */
    bool born_done = kind == KIND_BORN_DONE;
    /* Nothing holds it but the caller, and so no descendant is alive: there
     * is nothing to walk, and the cancellation is all there is to do, unless
     * an after-function it runs takes a reference (then it is waited for,
     * and reported, as any other). */
    bool held = held_by_others(c);
    struct waiter me = {0};
    /* The registry, when on, knows every descendant: no walk then. */
    bool walk = held && report && !born_done && !cctx__debug_on(CCTX__DEBUG_REGISTRY);
    if (walk) {
        pthread_once(&fork_once, watch_fork);
        cctx__atomic_fetch_add_seq_cst(&cctx__watching, 1);
        watch_subtree(&me, (struct cctx__cancelable *)c);
    }
    if (!born_done)
        cctx__cancel((struct cctx__cancelable *)c, ECANCELED, 0, NULL, file, line, func);
    if (walk)
        watch_release_kept(&me);
    if (!held && !held_by_others(c))
        return 0;
    int err = wait_alone(c, timeout, file, line, func);
    if (report && err == ETIMEDOUT) {
        /* The report's writes are cancellation points, made holding the
         * contexts it lists (and the walk's watches): a thread with a
         * pthread_cancel pending died in one and left them held for good.
         * It is written with cancellation off, as cctx_dump is. */
        int state;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
        if (!report_registered(report, c))
            report_held(report, c, &me);
        pthread_setcancelstate(state, NULL);
    }
    if (walk) {
        watch_drop_all(&me);
        cctx__atomic_fetch_sub_release(&cctx__watching, 1);
    }
    return err;
}
