/* SPDX-License-Identifier: MIT */
/*
 * Names: cctx_set_name and cctx_name.
 *
 * Names live in a side table keyed by the context's address, so that no
 * context pays for a name it does not have; a context with a name has the
 * NAMED bit set, and only those consult the table when freed. A context's
 * entry keeps every name it was given (see below). The table's lock nests
 * inside nothing.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testhooks.h"

/* A string handed out by cctx_name stays valid until its context is freed,
 * whatever other thread renames the context meanwhile (a dump reads names
 * while the program runs): so every name a context has had is kept, newest
 * first, and all go when it is freed. Setting a name the context already had
 * makes that one current again without a copy, so a loop that sets the same
 * few names does not grow. */
struct name_text {
    struct name_text *older;
    char text[];
};

struct name {
    const struct cctx *ctx;
    struct name *next;       /* in its bucket */
    struct name_text *texts; /* newest (the current one) first */
    bool cleared;            /* set to NULL since: no current name */
};

/* The table grows with the contexts named (it doubles past one per
 * bucket): a fixed one made every name, free and dump line walk a chain as
 * long as a 256th of the named contexts, under the one lock, so a server
 * that names each request slowed down quadratically, and the dump of 200,000
 * named contexts outlasted cctx-inspect's patience. A table that cannot grow
 * (out of memory) stays as it is, slower but right. */
static struct name *first_buckets[256];
static struct name **names = first_buckets;
static size_t name_buckets = 256, names_count; /* a power of two */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t name_bucket(const struct cctx *c, size_t buckets)
{
    /* Fibonacci hashing: the address's low bits are the allocator's
     * alignment, the same for every context. */
    uint64_t h = (uint64_t)(uintptr_t)c * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 32) & (buckets - 1);
}

static struct name **name_slot(const struct cctx *c)
{
    struct name **pp = &names[name_bucket(c, name_buckets)];
    while (*pp && (*pp)->ctx != c)
        pp = &(*pp)->next;
    return pp;
}

/* One more named context (names_lock held): the table doubles when it
 * would hold more than one per bucket. */
static void names_grow(void)
{
    if (++names_count <= name_buckets || name_buckets > SIZE_MAX / 2 / sizeof *names)
        return;
    size_t buckets = name_buckets * 2;
    struct name **table = calloc(buckets, sizeof *table);
    if (!table)
        return;
    for (size_t i = 0; i < name_buckets; i++)
        for (struct name *n = names[i], *next; n; n = next) {
            next = n->next;
            struct name **head = &table[name_bucket(n->ctx, buckets)];
            n->next = *head;
            *head = n;
        }
    if (names != first_buckets)
        free(names);
    names = table;
    name_buckets = buckets;
}

size_t cctx__test_names_longest_chain(void)
{
    size_t longest = 0;
    pthread_mutex_lock(&names_lock);
    for (size_t i = 0; i < name_buckets; i++) {
        size_t n = 0;
        for (const struct name *p = names[i]; p; p = p->next)
            n++;
        longest = n > longest ? n : longest;
    }
    pthread_mutex_unlock(&names_lock);
    return longest;
}

/* Makes `name` n's current name if n ever had it (names_lock held). */
static bool name_reuse(struct name *n, const char *name)
{
    for (struct name_text **pp = &n->texts; *pp; pp = &(*pp)->older) {
        struct name_text *t = *pp;
        if (strcmp(t->text, name) != 0)
            continue;
        *pp = t->older;
        t->older = n->texts;
        n->texts = t;
        n->cleared = false;
        return true;
    }
    return false;
}

/* A fork while another thread holds the table's lock would leave it held
 * in the child for good: every name, and the free of every named context,
 * would hang there. The lock nests inside nothing, so taking it before a
 * fork cannot deadlock. Every use of the table follows a cctx_set_name. */
static void names_lock_take(void)
{
    pthread_mutex_lock(&names_lock);
}

static void names_lock_give(void)
{
    pthread_mutex_unlock(&names_lock);
}

static pthread_once_t names_fork_once = PTHREAD_ONCE_INIT;

static void names_hold_over_fork(void)
{
    pthread_atfork(names_lock_take, names_lock_give, names_lock_give);
}

void cctx__test_hold_names_lock(bool hold)
{
    if (hold)
        pthread_mutex_lock(&names_lock);
    else
        pthread_mutex_unlock(&names_lock);
}

int cctx_set_name(cctx_t *ctx, const char *name)
{
    if (!ctx || cctx__kind(ctx) == KIND_ROOT)
        return EINVAL;
    pthread_once(&names_fork_once, names_hold_over_fork);
    cctx__check_live(ctx, "cctx_set_name", NULL, 0, NULL);
    pthread_mutex_lock(&names_lock);
    struct name *n = *name_slot(ctx);
    bool done = name ? n && name_reuse(n, name) : true;
    if (!name && n)
        n->cleared = true;
    pthread_mutex_unlock(&names_lock);
    if (done)
        return 0;

    /* A new name, copied outside the lock: it may be megabytes long. */
    size_t len = strlen(name) + 1;
    struct name_text *t = cctx__alloc(sizeof *t + len);
    struct name *fresh = cctx__alloc(sizeof *fresh); /* in case ctx still has none then */
    if (!t || !fresh) {
        cctx__free(t);
        cctx__free(fresh);
        return ENOMEM;
    }
    memcpy(t->text, name, len);
    pthread_mutex_lock(&names_lock);
    /* Another thread may have named ctx meanwhile, this name included. */
    struct name **pp = name_slot(ctx);
    if (*pp && name_reuse(*pp, name)) {
        pthread_mutex_unlock(&names_lock);
        cctx__free(t);
        cctx__free(fresh);
        return 0;
    }
    bool added = !*pp;
    if (added) {
        *fresh = (struct name){.ctx = ctx};
        *pp = fresh;
        fresh = NULL;
        cctx__atomic_fetch_or_release(&ctx->word, WORD_NAMED);
    }
    t->older = (*pp)->texts;
    (*pp)->texts = t;
    (*pp)->cleared = false;
    if (added)
        names_grow(); /* last: it moves the entries, pp with them */
    pthread_mutex_unlock(&names_lock);
    cctx__free(fresh);
    return 0;
}

const char *cctx_name(const cctx_t *ctx)
{
    if (!ctx) {
        errno = EINVAL;
        return NULL;
    }
    if (cctx__kind(ctx) == KIND_ROOT)
        return ctx == cctx_background() ? "background" : "todo";
    cctx__check_live(ctx, "cctx_name", NULL, 0, NULL);
    if (!(cctx__atomic_load_acquire(&((struct cctx *)ctx)->word) & WORD_NAMED))
        return NULL;
    pthread_mutex_lock(&names_lock);
    struct name *n = *name_slot(ctx);
    const char *text = n && !n->cleared ? n->texts->text : NULL;
    pthread_mutex_unlock(&names_lock);
    return text;
}

void cctx__name_forget(struct cctx *c)
{
    pthread_mutex_lock(&names_lock);
    struct name **pp = name_slot(c), *old = *pp;
    if (old) {
        *pp = old->next;
        names_count--;
    }
    pthread_mutex_unlock(&names_lock);
    if (!old)
        return;
    for (struct name_text *t = old->texts, *older; t; t = older) {
        older = t->older;
        cctx__free(t);
    }
    cctx__free(old);
}
