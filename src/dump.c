/*
 * Seeing inside: names and cctx_dump.
 *
 * Names live in a side table keyed by the context's address, so that no
 * context pays for a name it does not have; a context with a name has the
 * NAMED bit set, and only those consult the table when freed. The table's
 * lock nests inside nothing.
 *
 * cctx_dump walks the tree iteratively with a growable stack of referenced
 * contexts: under each node's lock it takes a reference on every child still
 * alive, so the walk never touches a freed context, and prints it after
 * dropping the lock. A child linked under its source through value or
 * without-cancel contexts is shown with that chain ("via ...").
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"

/* ---- Names ------------------------------------------------------------------ */

struct name {
    const struct cctx *ctx;
    struct name *next;
    char text[];
};

#define NAME_BUCKETS 256
static struct name *names[NAME_BUCKETS];
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static struct name **name_slot(const struct cctx *c)
{
    struct name **pp = &names[((uintptr_t)c >> 4) % NAME_BUCKETS];
    while (*pp && (*pp)->ctx != c)
        pp = &(*pp)->next;
    return pp;
}

int cctx_set_name(cctx_t *ctx, const char *name)
{
    if (!ctx || cctx__kind(ctx) == KIND_ROOT)
        return EINVAL;
    cctx__check_live(ctx, "cctx_set_name", NULL, 0, NULL);
    struct name *n = NULL;
    if (name) {
        size_t len = strlen(name) + 1;
        n = cctx__alloc(sizeof *n + len);
        if (!n)
            return ENOMEM;
        n->ctx = ctx;
        memcpy(n->text, name, len);
    }
    pthread_mutex_lock(&names_lock);
    struct name **pp = name_slot(ctx), *old = *pp;
    if (old)
        *pp = old->next;
    if (n) {
        n->next = names[((uintptr_t)ctx >> 4) % NAME_BUCKETS];
        names[((uintptr_t)ctx >> 4) % NAME_BUCKETS] = n;
        atomic_fetch_or(&ctx->word, WORD_NAMED);
    }
    pthread_mutex_unlock(&names_lock);
    cctx__free(old);
    return 0;
}

const char *cctx_name(const cctx_t *ctx)
{
    if (!ctx)
        return NULL;
    if (cctx__kind(ctx) == KIND_ROOT)
        return ctx == cctx_background() ? "background" : "todo";
    cctx__check_live(ctx, "cctx_name", NULL, 0, NULL);
    if (!(atomic_load_explicit(&((struct cctx *)ctx)->word, memory_order_acquire) & WORD_NAMED))
        return NULL;
    pthread_mutex_lock(&names_lock);
    struct name *n = *name_slot(ctx);
    pthread_mutex_unlock(&names_lock);
    return n ? n->text : NULL;
}

void cctx__name_forget(struct cctx *c)
{
    pthread_mutex_lock(&names_lock);
    struct name **pp = name_slot(c), *old = *pp;
    if (old)
        *pp = old->next;
    pthread_mutex_unlock(&names_lock);
    cctx__free(old);
}

/* ---- Dump ------------------------------------------------------------------- */

static const char *kind_name(const struct cctx *c)
{
    switch (cctx__kind(c)) {
    case KIND_ROOT: return "root";
    case KIND_CANCEL: return "cancel";
    case KIND_TIMER: return "deadline";
    case KIND_VALUE: return "value";
    default: return "without_cancel";
    }
}

static const char *err_name(int err)
{
    return err == ECANCELED ? "ECANCELED" : err == ETIMEDOUT ? "ETIMEDOUT" : "0";
}

/* Writes s as the body of a DOT string (DOT escapes " and \ only). */
static void put_escaped(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else
            fputc(ch < 0x20 ? ' ' : ch, out);
    }
}

/* Writes s as the body of a JSON string. '<' is written as \u003c so that
 * the JSON can sit inside an HTML <script> element (CCTX_DUMP_HTML) without
 * a name like "</script>" ending it. */
static void put_json_escaped(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == '<')
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
}

struct frame {
    struct cctx *ctx;
    struct cctx *lister; /* the node whose list it was found in (NULL: the root) */
    int depth;
    int refd; /* we hold a reference to drop */
};

struct stack {
    struct frame *f;
    size_t n, cap;
};

static int push(struct stack *s, struct frame f)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct frame *g = realloc(s->f, cap * sizeof *g);
        if (!g)
            return ENOMEM;
        s->f = g;
        s->cap = cap;
    }
    s->f[s->n++] = f;
    return 0;
}

/* Whether c's chain of parents reaches `through` before its source. */
static int passes_through(const struct cctx *c, const struct cctx *through,
                          const struct cctx *src)
{
    for (const struct cctx *v = c->parent; v && v != src; v = v->parent)
        if (v == through)
            return 1;
    return 0;
}

/* Takes a reference on each live child of c and pushes it; the list is newest
 * first, so the walk pops (and prints) them oldest first. Counts them all. */
static int push_children(struct stack *s, struct cctx *c, int depth, size_t *count)
{
    *count = 0;
    /* A value context has no list: its cancelable descendants are linked
     * under its source, among those of its siblings. */
    struct cctx__cancelable *src = cctx__source(c);
    if (!src)
        return 0;
    int err = 0;
    cctx__lock(&src->head);
    /* A canceled context has handed its list over (see internal.h). */
    struct cctx__node *list =
        atomic_load_explicit(&src->head.state, memory_order_relaxed) & STATE_ERR ? NULL
                                                                               : src->children;
    for (struct cctx__node *n = list; n; n = n->next) {
        if (n->pprev & NODE_AFTER)
            continue;
        struct cctx *child = (struct cctx *)((char *)n - offsetof(struct cctx__cancelable, link));
        if (&src->head != c && !passes_through(child, c, &src->head))
            continue;
        (*count)++;
        if (err || !cctx__try_ref(child))
            continue;
        if ((err = push(s, (struct frame){child, c, depth + 1, 1})) != 0)
            cctx_release(child); /* not the last reference: c's list held it */
    }
    cctx__unlock(&src->head);
    return err;
}

static void print_node(FILE *out, int format, const struct frame *f, size_t children,
                       int first_sibling)
{
    struct cctx *c = f->ctx;
    cctx_cause_t cause;
    int err = cctx_cause(c, &cause);
    int64_t deadline = 0;
    bool has_deadline = cctx_deadline(c, &deadline);
    int64_t left = has_deadline ? cctx_remaining(c) : 0;
    const char *name = cctx_name(c);
    unsigned refs = cctx__kind(c) == KIND_ROOT ? 0 : atomic_load(&c->refs) - (unsigned)f->refd;

    if (format == CCTX_DUMP_TEXT) {
        fprintf(out, "%*s%s %p", f->depth * 2, "", kind_name(c), (void *)c);
        if (name)
            fprintf(out, " \"%s\"", name);
        fprintf(out, " made at %s:%d in %s", c->file, cctx__line(c), c->func);
        fprintf(out, ", %s", err ? err_name(err) : "active");
        if (err)
            fprintf(out, " (code %d, \"%s\", at %s:%d in %s, t=%" PRId64 ")", cause.code,
                    cause.msg, cause.file, cause.line, cause.func, cause.when);
        if (has_deadline)
            fprintf(out, ", deadline %" PRId64 " (%" PRId64 " ns left)", deadline, left);
        fprintf(out, ", refs %u, children %zu\n", refs, children);
        for (struct cctx *v = c->parent; f->lister && v && v != f->lister; v = v->parent) {
            const char *vname = cctx_name(v);
            fprintf(out, "%*s  via %s %p", f->depth * 2, "", kind_name(v), (void *)v);
            if (vname)
                fprintf(out, " \"%s\"", vname);
            fprintf(out, " made at %s:%d in %s\n", v->file, cctx__line(v), v->func);
        }
    } else if (format == CCTX_DUMP_JSON) {
        fprintf(out, "%s{\"id\":\"%p\",\"kind\":\"%s\",\"name\":", first_sibling ? "" : ",",
                (void *)c, kind_name(c));
        if (name) {
            fputc('"', out);
            put_json_escaped(out, name);
            fputc('"', out);
        } else {
            fputs("null", out);
        }
        fprintf(out, ",\"file\":\"");
        put_json_escaped(out, c->file);
        fprintf(out, "\",\"line\":%d,\"func\":\"", cctx__line(c));
        put_json_escaped(out, c->func);
        fprintf(out, "\",\"state\":\"%s\",\"err\":\"%s\"", err ? "done" : "active",
                err_name(err));
        if (err) {
            fprintf(out, ",\"cause\":{\"code\":%d,\"msg\":\"", cause.code);
            put_json_escaped(out, cause.msg);
            fprintf(out, "\",\"file\":\"");
            put_json_escaped(out, cause.file);
            fprintf(out, "\",\"line\":%d,\"func\":\"", cause.line);
            put_json_escaped(out, cause.func);
            fprintf(out, "\",\"when\":%" PRId64 "}", cause.when);
        }
        if (has_deadline)
            fprintf(out, ",\"deadline\":%" PRId64 ",\"remaining\":%" PRId64, deadline, left);
        fprintf(out, ",\"refs\":%u,\"child_count\":%zu,\"via\":[", refs, children);
        for (struct cctx *v = c->parent; f->lister && v && v != f->lister; v = v->parent) {
            fprintf(out, "%s{\"id\":\"%p\",\"kind\":\"%s\",\"name\":\"", v == c->parent ? "" : ",",
                    (void *)v, kind_name(v));
            put_json_escaped(out, cctx_name(v));
            fprintf(out, "\",\"file\":\"");
            put_json_escaped(out, v->file);
            fprintf(out, "\",\"line\":%d}", cctx__line(v));
        }
        fprintf(out, "],\"children\":[");
    } else {
        fprintf(out, "  \"%p\" [label=\"%s", (void *)c, kind_name(c));
        if (name) {
            fputs(" ", out);
            put_escaped(out, name);
        }
        fprintf(out, "\\n");
        put_escaped(out, c->file);
        fprintf(out, ":%d\\n%s\", color=%s];\n", cctx__line(c), err ? err_name(err) : "active",
                err ? "red" : "green");
        /* The chain through value contexts, as nodes of its own; `strict`
         * merges the edges that siblings under one value context share. */
        struct cctx *below = c;
        for (struct cctx *v = c->parent; f->lister && v && v != f->lister; v = v->parent) {
            fprintf(out, "  \"%p\" [label=\"%s ", (void *)v, kind_name(v));
            put_escaped(out, cctx_name(v));
            fprintf(out, "\\n");
            put_escaped(out, v->file);
            fprintf(out, ":%d\", style=dashed];\n  \"%p\" -> \"%p\";\n", cctx__line(v), (void *)v,
                    (void *)below);
            below = v;
        }
        if (f->lister)
            fprintf(out, "  \"%p\" -> \"%p\";\n", (void *)f->lister, (void *)below);
    }
}

/* ---- The whole process ----------------------------------------------------------- */

/* cctx_dump(NULL): every context of the registry (debug.c), each under its
 * own parent (values and without-cancel contexts are nodes, not "via"
 * lines), children oldest first. */
struct everything {
    struct cctx__registered *v; /* sorted by parent, then creation */
    size_t n;
};

static int by_parent(const void *pa, const void *pb)
{
    const struct cctx__registered *a = pa, *b = pb;
    uintptr_t x = (uintptr_t)a->ctx->parent, y = (uintptr_t)b->ctx->parent;
    if (x != y)
        return x < y ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* The entries whose parent is p: [*lo, return value). */
static size_t children_of(const struct everything *all, const struct cctx *p, size_t *lo)
{
    size_t l = 0, h = all->n;
    while (l < h) {
        size_t m = l + (h - l) / 2;
        if ((uintptr_t)all->v[m].ctx->parent < (uintptr_t)p)
            l = m + 1;
        else
            h = m;
    }
    *lo = l;
    while (h < all->n && all->v[h].ctx->parent == p)
        h++;
    return h > l ? h : l;
}

static int push_registered_children(struct stack *s, const struct everything *all,
                                    struct cctx *c, int depth, size_t *count)
{
    size_t lo, hi = children_of(all, c, &lo);
    *count = hi - lo;
    for (size_t i = hi; i-- > lo;) /* popped oldest first */
        if (push(s, (struct frame){all->v[i].ctx, c, depth + 1, 1}) != 0)
            return ENOMEM;
    return 0;
}

static int by_address(const void *pa, const void *pb)
{
    uintptr_t x = *(const uintptr_t *)pa, y = *(const uintptr_t *)pb;
    return (x > y) - (x < y);
}

/* The tops of every tree: the roots (todo only when it has children), then
 * any context whose parent is not listed (made before the registry was on). */
static int push_tops(struct stack *s, const struct everything *all)
{
    uintptr_t *listed = malloc((all->n ? all->n : 1) * sizeof *listed);
    if (!listed)
        return ENOMEM;
    for (size_t i = 0; i < all->n; i++)
        listed[i] = (uintptr_t)all->v[i].ctx;
    qsort(listed, all->n, sizeof *listed, by_address);
    int err = 0;
    for (size_t i = all->n; !err && i-- > 0;) {
        struct cctx *c = all->v[i].ctx;
        uintptr_t p = (uintptr_t)c->parent;
        if (cctx__kind(c->parent) != KIND_ROOT &&
            !bsearch(&p, listed, all->n, sizeof *listed, by_address))
            err = push(s, (struct frame){c, c->parent, 0, 1});
    }
    free(listed);
    size_t lo;
    if (!err && children_of(all, cctx_todo(), &lo) > lo)
        err = push(s, (struct frame){cctx_todo(), NULL, 0, 0});
    if (!err)
        err = push(s, (struct frame){cctx_background(), NULL, 0, 0});
    return err;
}

int cctx_dump(cctx_t *root, FILE *out, int format)
{
    if (!out || format < CCTX_DUMP_TEXT || format > CCTX_DUMP_HTML)
        return EINVAL;
    struct everything all = {0};
    if (!root) {
        int err = cctx__registry_snapshot(&all.v, &all.n);
        if (err)
            return err;
        qsort(all.v, all.n, sizeof *all.v, by_parent);
    } else {
        cctx__check_live(root, "cctx_dump", NULL, 0, NULL);
    }
    /* The HTML page is a viewer around the JSON dump (dump_html.c). */
    bool html = format == CCTX_DUMP_HTML;
    if (html) {
        cctx__html_begin(out, cctx_now());
        format = CCTX_DUMP_JSON;
    }
    struct stack s = {0};
    int err = root ? push(&s, (struct frame){root, NULL, 0, 0}) : push_tops(&s, &all);
    int open = 0; /* JSON: objects opened and not closed yet */
    if (format == CCTX_DUMP_JSON)
        fputc('[', out);
    else if (format == CCTX_DUMP_DOT)
        fprintf(out, "strict digraph cctx {\n  node [shape=box];\n");
    while (!err && s.n > 0) {
        struct frame f = s.f[--s.n];
        /* JSON: a node as deep as this one printed last means a sibling came
         * before it; close every object down to this depth. */
        int first_sibling = open <= f.depth;
        for (; format == CCTX_DUMP_JSON && open > f.depth; open--)
            fputs("]}", out);
        size_t children;
        err = root ? push_children(&s, f.ctx, f.depth, &children)
                   : push_registered_children(&s, &all, f.ctx, f.depth, &children);
        print_node(out, format, &f, children, first_sibling);
        open = f.depth + 1;
        if (f.refd && root)
            cctx_release(f.ctx);
    }
    while (root && s.n > 0) { /* out of memory: drop what is still held */
        struct frame f = s.f[--s.n];
        if (f.refd)
            cctx_release(f.ctx);
    }
    free(s.f);
    /* The snapshot's references go last: until then every listed parent
     * pointer names a live context. */
    for (size_t i = 0; i < all.n; i++)
        cctx_release(all.v[i].ctx);
    free(all.v);
    if (format == CCTX_DUMP_JSON) {
        for (; open > 0; open--)
            fputs("]}", out);
        fputs("]\n", out);
        if (html)
            cctx__html_end(out);
    } else if (format == CCTX_DUMP_DOT) {
        fputs("}\n", out);
    }
    if (err)
        return err;
    return ferror(out) ? EIO : 0;
}
