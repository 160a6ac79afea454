/* SPDX-License-Identifier: MIT */
/*
 * The debugging switches: CCTX_DEBUG (registry, leaks, checks) and the
 * start-up of CCTX_TRACE (trace.c), read once, before main.
 *
 * Nothing here runs unless a switch is on. The hot paths test one global
 * word (cctx__debug), loaded relaxed and branched on as unlikely, in the two
 * places where a context is born and freed; every other check rides on a
 * branch the code takes anyway (a context whose kind is FREED takes the
 * "not what I expected" path of whatever looks at it).
 *
 * The registry is a hash set of every live context, keyed by address, in 64
 * shards each with its own mutex, so that threads creating and freeing
 * contexts rarely meet. It is what lets cctx_dump(NULL) find every tree and
 * the leak report find every context; a context's own memory has no room
 * for it, and keeping one always would put a lock on deriving from a root.
 *
 * With `checks`, a freed context is not returned to malloc: it becomes a
 * tombstone (kind FREED, no references, its error forwarded so cctx_err
 * takes its slow path) that remembers where it was released, so a later
 * touch is reported with both sites instead of reading reused memory. The
 * most recent QUARANTINE tombstones are kept; older ones are freed.
 *
 * Lock order: a shard lock nests inside nothing (and no context lock is held
 * while one is taken); the quarantine lock is taken alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "testhooks.h"

_Atomic unsigned cctx__debug;

/* ---- The registry ------------------------------------------------------------- */

struct registry_entry {
    struct cctx *ctx;
    struct registry_entry *next; /* in its bucket */
    uint64_t seq;       /* creation order */
    /* A tombstone's release site (rel_file != NULL once released). */
    const char *rel_file, *rel_func;
    int rel_line;
    uint8_t mark; /* the switches' own (laggy.c: reported) */
};

#define REGISTRY_SHARDS 64
/* __extension__: the range designator is GNU C, and a parent project that
 * builds cctx in with -Wpedantic -Werror must still build it. */
__extension__ static struct registry_shard {
    pthread_mutex_t lock;
    struct registry_entry **b;
    size_t nb, n;
} shards[REGISTRY_SHARDS] = {[0 ... REGISTRY_SHARDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}};
static _Atomic uint64_t next_seq;

static size_t hash_ptr(const void *p)
{
    uint64_t x = (uintptr_t)p >> 4;
    x ^= x >> 29;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    return (size_t)(x ^ (x >> 32));
}

static struct registry_shard *shard_of(const void *p)
{
    return &shards[hash_ptr(p) % REGISTRY_SHARDS];
}

/* The slot that holds c's entry, or the empty slot at the end of its chain. */
static struct registry_entry **slot_in(struct registry_shard *s, const struct cctx *c)
{
    struct registry_entry **pp = &s->b[(hash_ptr(c) / REGISTRY_SHARDS) & (s->nb - 1)];
    while (*pp && (*pp)->ctx != c)
        pp = &(*pp)->next;
    return pp;
}

/* Doubles the bucket array (shard lock held); on failure the chains just
 * grow longer. */
static void grow(struct registry_shard *s)
{
    size_t nb = s->nb ? s->nb * 2 : 64;
    struct registry_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < s->nb; i++) {
        for (struct registry_entry *e = s->b[i], *next; e; e = next) {
            next = e->next;
            struct registry_entry **pp = &b[(hash_ptr(e->ctx) / REGISTRY_SHARDS) & (nb - 1)];
            e->next = *pp;
            *pp = e;
        }
    }
    free(s->b);
    s->b = b;
    s->nb = nb;
}

static void registry_add(struct cctx *c)
{
    struct registry_entry *e = malloc(sizeof *e);
    if (!e) {
        /* Debugging aid only: the context works, it is just not listed. */
        static _Atomic int warned;
        if (!cctx__atomic_exchange_seq_cst(&warned, 1)) {
            /* A cancellation point, inside a derivation that must finish. */
            int state;
            pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
            fputs("cctx: debug: out of memory, some contexts are not registered\n", stderr);
            pthread_setcancelstate(state, NULL);
        }
        return;
    }
    *e = (struct registry_entry){.ctx = c, .seq = cctx__atomic_fetch_add_seq_cst(&next_seq, 1)};
    struct registry_shard *s = shard_of(c);
    pthread_mutex_lock(&s->lock);
    if (s->n >= s->nb)
        grow(s);
    if (s->nb) {
        struct registry_entry **pp = slot_in(s, c);
        e->next = *pp;
        *pp = e;
        s->n++;
        e = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    free(e);
}

/* Removes c's entry and returns it (the caller frees it), or NULL. */
static struct registry_entry *registry_take(const struct cctx *c)
{
    struct registry_shard *s = shard_of(c);
    pthread_mutex_lock(&s->lock);
    struct registry_entry *e = NULL;
    if (s->nb) {
        struct registry_entry **pp = slot_in(s, c);
        if ((e = *pp) != NULL) {
            *pp = e->next;
            s->n--;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return e;
}

/* Calls fn on every entry, one shard at a time under its lock. */
static void registry_each(void (*fn)(struct registry_entry *e, void *arg), void *arg)
{
    for (int i = 0; i < REGISTRY_SHARDS; i++) {
        struct registry_shard *s = &shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->nb; j++)
            for (struct registry_entry *e = s->b[j]; e; e = e->next)
                fn(e, arg);
        pthread_mutex_unlock(&s->lock);
    }
}

struct visit {
    void (*fn)(struct cctx *c, uint8_t *mark, void *arg);
    void *arg;
};

static void visit_one(struct registry_entry *e, void *arg)
{
    struct visit *v = arg;
    if (!e->rel_file)
        v->fn(e->ctx, &e->mark, v->arg);
}

void cctx__registry_visit(void (*fn)(struct cctx *c, uint8_t *mark, void *arg), void *arg)
{
    struct visit v = {fn, arg};
    registry_each(visit_one, &v);
}

bool cctx__registry_mark(const struct cctx *c)
{
    struct registry_shard *s = shard_of(c);
    pthread_mutex_lock(&s->lock);
    struct registry_entry *e = s->nb ? *slot_in(s, c) : NULL;
    bool was = e && e->mark;
    if (e)
        e->mark = 1;
    pthread_mutex_unlock(&s->lock);
    return was;
}

/* How a snapshot grows (realloc, unless a test makes it fail: testhooks.h). */
_Atomic(cctx__realloc_fn) cctx__registry_snapshot_realloc = realloc;

struct snapshot {
    struct cctx__registered *v;
    size_t n, cap;
    int err;
};

static void snap_one(struct registry_entry *e, void *arg)
{
    struct snapshot *s = arg;
    if (s->err || e->rel_file)
        return;
    /* Room first: a reference taken here must never be dropped under the
     * shard lock, since it could be the last (and freeing takes the lock). */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        void *v =
            cctx__atomic_load_relaxed(&cctx__registry_snapshot_realloc)(s->v, cap * sizeof *s->v);
        if (!v) {
            s->err = ENOMEM;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    if (!cctx__try_ref(e->ctx))
        return;
    s->v[s->n++] = (struct cctx__registered){e->ctx, e->seq};
}

int cctx__registry_snapshot(struct cctx__registered **out, size_t *n)
{
    if (!(cctx__atomic_load_seq_cst(&cctx__debug) & CCTX__DEBUG_REGISTRY))
        return ENOTSUP;
    struct snapshot s = {0};
    registry_each(snap_one, &s);
    if (s.err) {
        for (size_t i = 0; i < s.n; i++)
            cctx__runner_release(s.v[i].ctx, __FILE__, __LINE__, "cctx_dump");
        free(s.v);
        return s.err;
    }
    *out = s.v;
    *n = s.n;
    return 0;
}

/* ---- Births, deaths and tombstones -------------------------------------------- */

#define QUARANTINE 65536
static pthread_mutex_t quarantine_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cctx *quarantine[QUARANTINE];
static size_t quarantine_next;

void cctx__debug_born(struct cctx *c)
{
    unsigned d = cctx__atomic_load_relaxed(&cctx__debug);
    cctx__atomic_fetch_or_relaxed(&c->word, WORD_WATCHED);
    if (d & CCTX__DEBUG_REGISTRY)
        registry_add(c);
    if (d & CCTX__DEBUG_TRACE)
        cctx__trace_born(c);
}

bool cctx__debug_dying(struct cctx *c, struct cctx *parent, const char *file, int line,
                       const char *func)
{
    /* Acquire: pairs with the waiter's count, raised before it watched c. */
    if (cctx__atomic_load_acquire(&cctx__watching))
        cctx__watch_forget(c);
    unsigned d = cctx__atomic_load_relaxed(&cctx__debug);
    if (d & CCTX__DEBUG_TRACE)
        cctx__trace_freed(c, parent, file, line, func);
    if (!(d & CCTX__DEBUG_REGISTRY))
        return false;
    if (!(d & CCTX__DEBUG_CHECKS)) {
        free(registry_take(c));
        return false;
    }
    /* Its last reference gone while a child still holds one: some release
     * was one too many. Said here, at that release, rather than later at a
     * child's, when the tombstone is all that is left. */
    if (cctx__cancelable_kind(cctx__kind(c))) {
        struct cctx__cancelable *cc = (struct cctx__cancelable *)c;
        bool children = false;
        cctx__lock(c);
        if (!(cctx__atomic_load_relaxed(&c->state) & STATE_ERR))
            for (struct cctx__node *n = cc->children; n && !children; n = n->next)
                children = !(n->pprev & NODE_AFTER);
        cctx__unlock(c);
        if (children)
            cctx__misuse("cctx_release of a context whose children still hold it (over-release)",
                         c, file, line, func, NULL);
    }
    /* Keep the memory as a tombstone that remembers this release. */
    struct registry_shard *s = shard_of(c);
    pthread_mutex_lock(&s->lock);
    struct registry_entry *e = s->nb ? *slot_in(s, c) : NULL;
    if (e) {
        e->rel_file = file ? file : "?";
        e->rel_line = line;
        e->rel_func = func ? func : "?";
    }
    pthread_mutex_unlock(&s->lock);
    uint32_t w = cctx__atomic_load_relaxed(&c->word);
    w = (w & ~(7u << WORD_KIND_SHIFT)) | (uint32_t)KIND_FREED << WORD_KIND_SHIFT;
    cctx__atomic_store_relaxed(&c->word, w & ~(WORD_NAMED | WORD_LINKED));
    cctx__atomic_store_release(&c->state, STATE_FORWARD);
    c->parent = NULL;

    pthread_mutex_lock(&quarantine_lock);
    struct cctx *old = quarantine[quarantine_next];
    quarantine[quarantine_next] = c;
    quarantine_next = (quarantine_next + 1) % QUARANTINE;
    pthread_mutex_unlock(&quarantine_lock);
    if (old) {
        free(registry_take(old));
        cctx__free(old);
    }
    return true;
}

/* ---- Misuse ----------------------------------------------------------------------- */

static const char *kind_word(enum cctx__kind k)
{
    switch (k) {
    case KIND_ROOT: return "root";
    case KIND_CANCEL:
    case KIND_BORN_DONE:
        return "cancel";
    case KIND_TIMER: return "deadline";
    case KIND_VALUE: return "value";
    case KIND_DETACHED: return "without_cancel";
    default: return "released";
    }
}

_Noreturn void cctx__misuse(const char *what, const struct cctx *c, const char *file, int line,
                            const char *func, const void *caller)
{
    /* The writes to stderr are cancellation points: a thread with a
     * pthread_cancel pending unwound from the first one, the program went on
     * past its misuse, and a registry shard's lock could stay held. Never
     * turned back on: the call ends in abort. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    if (file) {
        fprintf(stderr, "cctx: misuse: %s, at %s:%d in %s\n", what, file, line,
                func ? func : "?");
    } else {
        /* A call without a recorded site: name the code that called the
         * library, as an object and offset addr2line understands. */
        Dl_info info;
        if (caller && dladdr(caller, &info) && info.dli_fname)
            fprintf(stderr, "cctx: misuse: %s (called from %s+%#lx)\n", what, info.dli_fname,
                    (unsigned long)((const char *)caller - (const char *)info.dli_fbase));
        else
            fprintf(stderr, "cctx: misuse: %s (called from %p)\n", what, caller);
    }
    if (c) {
        fprintf(stderr, "cctx:   the context %p was made at %s:%d in %s\n", (const void *)c,
                c->file ? c->file : "?", cctx__line(c), c->func ? c->func : "?");
        struct registry_shard *s = shard_of(c);
        pthread_mutex_lock(&s->lock);
        struct registry_entry *e = s->nb ? *slot_in(s, c) : NULL;
        if (e && e->rel_file)
            fprintf(stderr, "cctx:   and released (its last reference dropped) at %s:%d in %s\n",
                    e->rel_file, e->rel_line, e->rel_func);
        pthread_mutex_unlock(&s->lock);
    }
    fflush(stderr);
    abort();
}

void cctx__check_live_slow(const struct cctx *c, const char *what, const char *file, int line,
                           const char *func, const void *caller)
{
    if (cctx__kind(c) == KIND_FREED) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s on a context already released (use after free)", what);
        cctx__misuse(msg, c, file, line, func, caller);
    }
}

/* ---- Leaks at exit ---------------------------------------------------------------- */

struct leak {
    struct cctx *ctx;
    uint64_t seq;
};

struct leaks {
    struct leak *v;
    size_t n, cap;
};

_Atomic(cctx__ctx_hook_fn) cctx__leak_walk_hook;

/* Each listed context is held (threads may still be running at exit), as
 * in snap_one: room first, since that reference must not be dropped under
 * the shard lock. */
static void leak_one(struct registry_entry *e, void *arg)
{
    struct leaks *l = arg;
    if (e->rel_file)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        void *v = realloc(l->v, cap * sizeof *l->v);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    if (!cctx__try_ref(e->ctx))
        return;
    cctx__ctx_hook_fn hook = cctx__atomic_load_relaxed(&cctx__leak_walk_hook);
    if (hook)
        hook(e->ctx);
    l->v[l->n++] = (struct leak){e->ctx, e->seq};
}

/* Dumps under way (cctx__dump_began): a program that exits while one runs,
 * for instance while its inspect thread serves a request, would have every
 * context it released reported as leaked, held by the dump's reference.
 * The exiting thread's own dumps (exit() from a dump's stream) never end,
 * and neither do other threads' in a child of fork(), which has only the
 * forking thread: neither is waited for. */
static _Atomic uint32_t dumps_running;
static _Thread_local uint32_t my_dumps;
static pthread_once_t dumps_fork_once = PTHREAD_ONCE_INIT;

/* Only the forking thread goes on in the child: its dumps are all that run. */
static void dumps_in_child(void)
{
    cctx__atomic_store_seq_cst(&dumps_running, my_dumps);
}

static void watch_dumps_across_fork(void)
{
    pthread_atfork(NULL, NULL, dumps_in_child);
}

/* Set by the leak report at exit as it begins: from then on a dump takes
 * no reference (cctx__dump_began says no), so the report, which waits only
 * for dumps that began before it, cannot count one of theirs as a leak. */
static _Atomic uint32_t leak_report_began;

bool cctx__dump_began(void)
{
    pthread_once(&dumps_fork_once, watch_dumps_across_fork);
    my_dumps++;
    cctx__atomic_fetch_add_seq_cst(&dumps_running, 1);
    /* Both seq_cst: either the report sees this dump counted (and waits
     * for it), or this dump sees the report begun. */
    if (cctx__atomic_load_seq_cst(&leak_report_began)) {
        cctx__dump_ended();
        return false;
    }
    return true;
}

void cctx__dump_ended(void)
{
    my_dumps--;
    /* Every end wakes: the exiting thread waits for the count to come down
     * to its own dumps, which only it knows. Dumps are rare. */
    cctx__atomic_fetch_sub_seq_cst(&dumps_running, 1);
    cctx__os_wake(&dumps_running);
}

/* A reference a dump handed to a runner is still the dump's: until the
 * runner drops it, the context it holds would be reported as leaked. No
 * thread owns it, so it is counted in dumps_running alone. */
void cctx__dump_release_queued(void)
{
    pthread_once(&dumps_fork_once, watch_dumps_across_fork);
    cctx__atomic_fetch_add_seq_cst(&dumps_running, 1);
}

void cctx__dump_release_dropped(void)
{
    /* In a child of fork() the count was reset without the parent's queued
     * releases, whose copies may still run there: never below zero. */
    uint32_t n = cctx__atomic_load_seq_cst(&dumps_running);
    while (n > 0 && !cctx__atomic_cas_weak_acq_rel(&dumps_running, &n, n - 1))
        ;
    cctx__os_wake(&dumps_running);
}

_Atomic int64_t cctx__leak_report_dump_wait = CCTX_SEC(1);

/* Waits, at most a second (a test may make it longer), for the other
 * threads' dumps under way to end. */
static void await_dumps(void)
{
    int64_t until = cctx__os_now() + cctx__atomic_load_relaxed(&cctx__leak_report_dump_wait);
    for (uint32_t n; (n = cctx__atomic_load_seq_cst(&dumps_running)) > my_dumps;)
        if (cctx__os_wait(&dumps_running, n, until) == ETIMEDOUT)
            break;
}

static int site_cmp(const struct cctx *a, const struct cctx *b)
{
    int r = strcmp(a->file ? a->file : "", b->file ? b->file : "");
    if (!r)
        r = cctx__line(a) - cctx__line(b);
    if (!r)
        r = strcmp(a->func ? a->func : "", b->func ? b->func : "");
    if (!r)
        r = (int)cctx__kind(a) - (int)cctx__kind(b);
    return r;
}

static int leak_cmp(const void *pa, const void *pb)
{
    const struct leak *a = pa, *b = pb;
    int r = site_cmp(a->ctx, b->ctx);
    return r ? r : (a->seq > b->seq) - (a->seq < b->seq);
}

/* A child is made after its parent, so it has the greater seq. */
static int newest_first(const void *pa, const void *pb)
{
    const struct leak *a = pa, *b = pb;
    return (a->seq < b->seq) - (a->seq > b->seq);
}

struct group {
    size_t first, n;
};

static int group_cmp(const void *pa, const void *pb)
{
    const struct group *a = pa, *b = pb;
    if (a->n != b->n)
        return a->n < b->n ? 1 : -1;
    return (a->first > b->first) - (a->first < b->first);
}

#define SITES_SHOWN 10
#define CONTEXTS_SHOWN 5

/* Prints every context still alive, grouped by creation site, biggest
 * sites first; returns how many there were. */
static size_t report_leaks(FILE *out)
{
    struct leaks l = {0};
    cctx__atomic_store_seq_cst(&leak_report_began, 1);
    await_dumps();
    registry_each(leak_one, &l);
    /* A count of 1, ours: released by a thread still running at exit since
     * the walk took it, so not a leak (and ours is the last reference).
     * Looked at once the walk is over, not as it takes each context: the
     * walk goes on meanwhile, and so do those threads. Newest first, so
     * that a child is let go before its parent is looked at: a parent the
     * program released is held by its child alone, until ours goes. What
     * else our last release lets go of, the after-functions it runs, may be
     * newer: so a pass that let go of something is made again, a few times
     * at most, since threads still running at exit let go of contexts too,
     * and following them would hold the exit up for as long as they run.
     * (For a tree, newest first, the first pass does it.) */
    if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, newest_first);
    for (size_t pass = 0, before = SIZE_MAX; pass < CCTX__LEAK_PASSES && l.n < before; pass++) {
        before = l.n;
        size_t kept = 0;
        for (size_t i = 0; i < l.n; i++) {
            if (cctx__refs(l.v[i].ctx) == 1)
                cctx_release_at(l.v[i].ctx, __FILE__, __LINE__, "cctx leak report");
            else
                l.v[kept++] = l.v[i];
        }
        l.n = kept;
    }
    if (l.n == 0) {
        free(l.v);
        return 0;
    }
    qsort(l.v, l.n, sizeof *l.v, leak_cmp);
    struct group *g = malloc(l.n * sizeof *g);
    size_t ng = 0;
    for (size_t i = 0; g && i < l.n; i++) {
        if (ng && site_cmp(l.v[g[ng - 1].first].ctx, l.v[i].ctx) == 0)
            g[ng - 1].n++;
        else
            g[ng++] = (struct group){i, 1};
    }
    fprintf(out, "cctx: %zu context%s never released (CCTX_DEBUG=leaks), at %zu site%s:\n", l.n,
            l.n == 1 ? "" : "s", ng, ng == 1 ? "" : "s");
    if (g)
        qsort(g, ng, sizeof *g, group_cmp);
    for (size_t i = 0; g && i < ng && i < SITES_SHOWN; i++) {
        const struct cctx *c = l.v[g[i].first].ctx;
        /* Names and sites escaped as cctx_dump's text form escapes them:
         * one line per context, whatever their bytes. */
        fprintf(out, "cctx: %6zu x %s made at ", g[i].n, kind_word(cctx__kind(c)));
        cctx__dump_put_text(out, c->file ? c->file : "?");
        fprintf(out, ":%d in ", cctx__line(c));
        cctx__dump_put_text(out, c->func ? c->func : "?");
        fputc('\n', out);
        for (size_t j = 0; j < g[i].n && j < CONTEXTS_SHOWN; j++) {
            struct cctx *x = l.v[g[i].first + j].ctx;
            const char *name = cctx_name(x);
            int err = cctx_err(x);
            fprintf(out, "cctx:            %p", (void *)x);
            if (name) {
                fputs(" \"", out);
                cctx__dump_put_text(out, name);
                fputc('"', out);
            }
            fprintf(out, ", %s, refs %u\n",
                    err == ECANCELED   ? "canceled"
                    : err == ETIMEDOUT ? "deadline exceeded"
                                       : "active",
                    cctx__refs(x) - 1);
        }
        if (g[i].n > CONTEXTS_SHOWN)
            fprintf(out, "cctx:            ... and %zu more\n", g[i].n - CONTEXTS_SHOWN);
    }
    if (ng > SITES_SHOWN) {
        size_t rest = 0;
        for (size_t i = SITES_SHOWN; i < ng; i++)
            rest += g[i].n;
        fprintf(out, "cctx: ... and %zu more at %zu other sites\n", rest, ng - SITES_SHOWN);
    }
    free(g);
    for (size_t i = 0; i < l.n; i++)
        cctx_release_at(l.v[i].ctx, __FILE__, __LINE__, "cctx leak report");
    free(l.v);
    return l.n;
}

/* ---- Start-up and exit -------------------------------------------------------------- */

/* The strict exit ends with _exit, so the streams are flushed here. But
 * fflush(NULL) takes each stream's lock, and a thread blocked in
 * fgets(stdin) holds stdin's for as long as it waits: the exit would wait
 * with it, for ever, where exit() itself flushes without waiting for a lock
 * (glibc tries each twice and goes on). So stdout and stderr are flushed
 * first if their locks are free, then every stream on a library thread,
 * for at most STRICT_FLUSH_WAIT_NS: a stream held that long is left, as a
 * plain exit would leave it. */
#define STRICT_FLUSH_WAIT_NS 1000000000

static _Atomic uint32_t streams_flushed;

static void flush_if_free(FILE *f)
{
    if (ftrylockfile(f) == 0) {
        fflush_unlocked(f);
        funlockfile(f);
    }
}

static void *flush_streams(void *arg)
{
    (void)arg;
    fflush(NULL);
    cctx__atomic_store_release(&streams_flushed, 1);
    cctx__os_wake(&streams_flushed);
    return NULL;
}

static void flush_streams_for_a_while(void)
{
    flush_if_free(stdout);
    flush_if_free(stderr);
    if (cctx__os_thread_start(flush_streams, NULL) != 0)
        return;
    int64_t until = cctx__os_now() + STRICT_FLUSH_WAIT_NS;
    while (cctx__atomic_load_acquire(&streams_flushed) == 0 &&
           cctx__os_wait(&streams_flushed, 0, until) != ETIMEDOUT)
        ;
}

static void at_exit(void)
{
    unsigned d = cctx__atomic_load_seq_cst(&cctx__debug);
    if (d & CCTX__DEBUG_TRACE) {
        cctx__trace_drain();
        cctx_trace_flush();
    }
    if (!(d & CCTX__DEBUG_LEAKS))
        return;
    size_t n = report_leaks(stderr);
    if (n && (d & CCTX__DEBUG_STRICT)) {
        flush_streams_for_a_while();
        _exit(CCTX__LEAK_EXIT_STATUS);
    }
}

/* A duration as 200ms, 1s, 500us or 1000ns; -1 if it is none. */
static int64_t parse_duration(const char *s, size_t len)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000}};
    char *end;
    char buf[32];
    if (len == 0 || len >= sizeof buf || s[0] < '0' || s[0] > '9') /* no space, no sign */
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    long long n = strtoll(buf, &end, 10);
    if (end == buf || errno == ERANGE)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcmp(end, units[i].unit) == 0)
            /* Past 2^63 - 1 ns is a typo, not "never": refused too. */
            return n > INT64_MAX / units[i].ns ? -1 : n * units[i].ns;
    return -1;
}

static int64_t laggy_after = CCTX_SEC(1); /* CCTX_DEBUG=laggy=DURATION */

/* One line on stderr about a part of CCTX_DEBUG left out. The part is
 * quoted with every byte outside printable ASCII as \xNN: the environment
 * is anybody's, and its bytes must not reach a terminal as controls. */
static void say_ignored(const char *what, const char *part, size_t len, const char *hint)
{
    char quoted[256];
    size_t n = 0, i = 0;
    for (; i < len && n + 5 < sizeof quoted; i++) { /* room for \xNN and the NUL */
        unsigned char c = (unsigned char)part[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            quoted[n++] = (char)c;
        else
            n += (size_t)snprintf(quoted + n, sizeof quoted - n, "\\x%02x", c);
    }
    fprintf(stderr, "cctx: CCTX_DEBUG: %s \"%.*s%s\" ignored%s%s\n", what, (int)n, quoted,
            i < len ? "..." : "", *hint ? " " : "", hint);
}

static unsigned parse_debug(const char *s)
{
    unsigned d = 0;
    while (s && *s) {
        size_t len = strcspn(s, ",");
        static const struct {
            const char *word;
            unsigned bits;
        } words[] = {
            {"leaks", CCTX__DEBUG_LEAKS | CCTX__DEBUG_REGISTRY},
            {"checks", CCTX__DEBUG_CHECKS | CCTX__DEBUG_REGISTRY},
            {"strict", CCTX__DEBUG_STRICT},
            {"trees", CCTX__DEBUG_REGISTRY},
            {"laggy", CCTX__DEBUG_LAGGY | CCTX__DEBUG_REGISTRY},
            {"inspect", CCTX__DEBUG_INSPECT | CCTX__DEBUG_REGISTRY},
        };
        size_t word = strcspn(s, ",=");
        size_t i;
        for (i = 0; i < sizeof words / sizeof *words; i++)
            if (strlen(words[i].word) == word && strncmp(s, words[i].word, word) == 0)
                break;
        int64_t after = 0;
        if (i < sizeof words / sizeof *words && word < len) {
            /* Only laggy takes a value. */
            bool takes = words[i].bits & CCTX__DEBUG_LAGGY;
            after = takes ? parse_duration(s + word + 1, len - word - 1) : -1;
            if (after < 0) {
                say_ignored(takes ? "bad value in" : "a value for a switch that takes none in", s,
                            len, takes ? "(laggy=DURATION, as laggy=200ms)" : "");
                s += len + (s[len] == ',');
                continue;
            }
            laggy_after = after;
        }
        if (i < sizeof words / sizeof *words)
            d |= words[i].bits;
        else if (len)
            say_ignored("unknown switch", s, len,
                        "(known: leaks, checks, strict, trees, laggy[=DURATION], inspect)");
        s += len + (s[len] == ',');
    }
    return d;
}

/* fork() while another thread holds a registry lock would leave it held
 * forever in the child: hold them all across the fork. */
static void fork_prepare(void)
{
    for (int i = 0; i < REGISTRY_SHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
    pthread_mutex_lock(&quarantine_lock);
}

static void fork_done(void)
{
    pthread_mutex_unlock(&quarantine_lock);
    for (int i = REGISTRY_SHARDS; i-- > 0;)
        pthread_mutex_unlock(&shards[i].lock);
}

void cctx__debug_enable(unsigned bits)
{
    static _Atomic int registered, forking;
    if ((bits & (CCTX__DEBUG_LEAKS | CCTX__DEBUG_TRACE)) &&
        !cctx__atomic_exchange_seq_cst(&registered, 1))
        atexit(at_exit);
    if ((bits & CCTX__DEBUG_REGISTRY) && !cctx__atomic_exchange_seq_cst(&forking, 1))
        pthread_atfork(fork_prepare, fork_done, fork_done);
    cctx__atomic_fetch_or_seq_cst(&cctx__debug, bits);
}

__attribute__((constructor)) static void read_switches(void)
{
    /* Not in a set-user-ID program: a caller could otherwise have it
     * write a file of its choice with its privileges. */
    unsigned d = parse_debug(cctx__os_getenv_unprivileged("CCTX_DEBUG"));
    const char *trace = cctx__os_getenv_unprivileged("CCTX_TRACE");
    if (trace && *trace && cctx__trace_start(trace) == 0)
        d |= CCTX__DEBUG_TRACE;
    if (d)
        cctx__debug_enable(d);
    if (d & CCTX__DEBUG_LAGGY)
        cctx__laggy_start(laggy_after);
    if (d & CCTX__DEBUG_INSPECT)
        cctx__inspect_start();
}
