/* SPDX-License-Identifier: MIT */
/*
 * Seeing inside: cctx_dump (the names it shows are names.c's).
 *
 * cctx_dump walks the tree iteratively with a growable stack of referenced
 * contexts: under each node's lock it takes a reference on every child still
 * alive, so the walk never touches a freed context, and prints it after
 * dropping the lock. A child linked under its source through value or
 * without-cancel contexts is shown with that chain ("via ...").
 *
 * Every node is read at one moment, the dump's, taken once: the text and DOT
 * forms, which people read, show each deadline and cause time as a duration
 * from it ("deadline in 299.7 ms", "ended 3.4 ms ago"); the JSON, which
 * programs read, keeps the raw times on cctx_now()'s clock and adds that
 * moment ("dump_time") so that they can be related.
 *
 * Names, messages and file names come from outside and are written whole;
 * each format has its own escaping (JSON: json.c) so that no string can end
 * a line, a quote or the JSON's <script> element early, or make the output
 * other than UTF-8.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"
#include "json.h"
#include "testhooks.h"

static const char *kind_name(const struct cctx *c)
{
    switch (cctx__kind(c)) {
    case KIND_ROOT: return "root";
    case KIND_CANCEL:
    case KIND_BORN_DONE:
        return "cancel";
    case KIND_TIMER: return "deadline";
    case KIND_VALUE: return "value";
    default: return "without_cancel";
    }
}

static const char *err_name(int err)
{
    return err == ECANCELED ? "ECANCELED" : err == ETIMEDOUT ? "ETIMEDOUT" : "0";
}

/* The control characters of Latin-1 (C1: NEL, CSI, ...) and the line and
 * paragraph separators: well-formed UTF-8 that a terminal acts on, or that
 * a reader takes for the end of a line. */
static bool ends_a_line(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

/* Writes s as the body of a quoted string in the text or DOT form. Both are
 * read by people and tools that expect one context per line and UTF-8, while
 * names and messages come from anywhere: text escapes ", \ and control
 * characters C-style (those of C1, U+2028 and U+2029 as \uXXXX) and shows
 * a byte that is not UTF-8 as \xHH; DOT, whose strings escape only " (and
 * \ for the label's own escapes), gets a space for a control character and
 * U+FFFD for such a byte. */
static void put_str(FILE *out, int format, const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    while (*s) {
        unsigned char b = *s;
        uint32_t cp;
        size_t len = b < 0x80 ? 1 : cctx__utf8_char(s, &cp);
        if (len > 1 && ends_a_line(cp)) {
            if (format == CCTX_DUMP_DOT)
                fputc(' ', out);
            else
                fprintf(out, "\\u%04" PRIx32, cp);
            s += len;
            continue;
        }
        if (len > 1) {
            fwrite(s, 1, len, out);
            s += len;
            continue;
        }
        s++;
        if (b == '"' || b == '\\')
            fprintf(out, "\\%c", b);
        else if (b >= 0x20 && b < 0x7f)
            fputc(b, out);
        else if (format == CCTX_DUMP_DOT)
            fputs(b >= 0x80 ? "\xef\xbf\xbd" : " ", out);
        else if (b == '\n')
            fputs("\\n", out);
        else if (b == '\t')
            fputs("\\t", out);
        else if (b == '\r')
            fputs("\\r", out);
        else
            fprintf(out, "\\x%02x", b);
    }
}

void cctx__dump_put_text(FILE *out, const char *str)
{
    put_str(out, CCTX_DUMP_TEXT, str);
}

/* The magnitude of a signed duration (INT64_MIN's included). */
static uint64_t magnitude(int64_t d)
{
    return d < 0 ? -(uint64_t)d : (uint64_t)d;
}

/* A duration as a person reads it, for the text and DOT forms, which are
 * read by people: raw nanoseconds on a monotonic clock mean nothing to them
 * (the JSON keeps those, for programs). The largest unit it reaches once
 * rounded, with one decimal: 850 ns (whole nanoseconds), 12.3 us ("us" keeps
 * the output ASCII), 299.7 ms, 1.2 s, 2.5 min, 3.0 h (and beyond: no days,
 * so that the unit says at a glance what the number is). */
static const char *human(char buf[static 32], uint64_t d)
{
    static const struct {
        uint64_t ns, next; /* the unit, and how many of it make the next one */
        const char *name;
    } units[] = {{1000, 1000, "us"},
                 {1000000, 1000, "ms"},
                 {1000000000, 60, "s"},
                 {60000000000, 60, "min"},
                 {3600000000000, 0, "h"}};
    if (d < 1000) {
        snprintf(buf, 32, "%" PRIu64 " ns", d);
        return buf;
    }
    /* Rounded to tenths of each unit in turn: 999.96 us is 1.0 ms, not 1000.0 us. */
    for (size_t i = 0;; i++) {
        uint64_t tenths = (d + units[i].ns / 20) / (units[i].ns / 10);
        if (!units[i].next || tenths < units[i].next * 10) {
            snprintf(buf, 32, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10,
                     units[i].name);
            return buf;
        }
    }
}

/* "deadline in 299.7 ms" or "deadline passed 1.2 s ago", `left` being the
 * deadline less the dump's moment. */
static void put_deadline(FILE *out, int64_t left)
{
    char d[32];
    fprintf(out, left > 0 ? "deadline in %s" : "deadline passed %s ago", human(d, magnitude(left)));
}

/* "ended 3.4 ms ago": when the cause was recorded, from the dump's moment.
 * One clock cannot put a cause after the dump, but the fake clock can be set
 * back: then the line says so rather than show a negative time. */
static void put_ended(FILE *out, int64_t ago)
{
    char d[32];
    fprintf(out, ago >= 0 ? "ended %s ago" : "ended %s after the dump", human(d, magnitude(ago)));
}

/* A site's file or function as given, or "?" for none. */
static const char *or_unknown(const char *s)
{
    return s ? s : "?";
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

/* How the stack grows (realloc, unless a test makes it fail: testhooks.h). */
_Atomic(cctx__realloc_fn) cctx__dump_stack_realloc = realloc;

/* Room for one more frame. */
static int reserve(struct stack *s)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct frame *g =
            cctx__atomic_load_relaxed(&cctx__dump_stack_realloc)(s->f, cap * sizeof *g);
        if (!g)
            return ENOMEM;
        s->f = g;
        s->cap = cap;
    }
    return 0;
}

static int push(struct stack *s, struct frame f)
{
    int err = reserve(s);
    if (!err)
        s->f[s->n++] = f;
    return err;
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
    /* A canceled context has handed its list over (see layout.h). */
    struct cctx__node *list =
        cctx__atomic_load_relaxed(&src->head.state) & STATE_ERR ? NULL : src->children;
    for (struct cctx__node *n = list; n; n = n->next) {
        if (n->pprev & NODE_AFTER)
            continue;
        struct cctx *child = &container_of(n, struct cctx__cancelable, link)->head;
        if (&src->head != c && !passes_through(child, c, &src->head))
            continue;
        (*count)++;
        /* Room first: the list holds no reference, so one taken here could
         * be the last by the time it is dropped, and freeing the child takes
         * this very lock to unlink it. Never drop one under the lock. */
        if (err || (err = reserve(s)) != 0 || !cctx__try_ref(child))
            continue;
        s->f[s->n++] = (struct frame){child, c, depth + 1, 1};
    }
    cctx__unlock(&src->head);
    return err;
}

/* What one line (or object, or node) of the dump says about a context.
 * `now` is the dump's moment, one for the whole dump, so that every time in
 * it is relative to the same instant. */
struct node_info {
    struct cctx *c;
    const char *name;
    cctx_cause_t cause;
    int err;
    bool has_deadline;
    int64_t now, deadline, left;
    unsigned refs;
    size_t children;
};

static void put_text_site(FILE *out, const char *file, int line, const char *func)
{
    fputs(" made at ", out);
    put_str(out, CCTX_DUMP_TEXT, or_unknown(file));
    fprintf(out, ":%d in ", line);
    put_str(out, CCTX_DUMP_TEXT, or_unknown(func));
}

/* Two spaces a level down to INDENT_LEVELS; deeper lines keep that
 * indentation and start with their depth, "[41] ". Indenting all the way
 * would make the dump of a chain quadratic in its depth (a terabyte for a
 * million contexts), and a cctx_cancel_and_wait's report with it. */
enum { INDENT_LEVELS = 40 };

static void put_indent(FILE *out, int depth)
{
    if (depth <= INDENT_LEVELS)
        fprintf(out, "%*s", depth * 2, "");
    else
        fprintf(out, "%*s[%d] ", INDENT_LEVELS * 2, "", depth);
}

static void print_text(FILE *out, const struct frame *f, const struct node_info *in)
{
    const struct cctx *c = in->c;
    put_indent(out, f->depth);
    fprintf(out, "%s %p", kind_name(c), (void *)c);
    if (in->name) {
        fputs(" \"", out);
        put_str(out, CCTX_DUMP_TEXT, in->name);
        fputc('"', out);
    }
    put_text_site(out, c->file, cctx__line(c), c->func);
    fprintf(out, ", %s", in->err ? err_name(in->err) : "active");
    if (in->err) {
        fprintf(out, " (code %d, \"", in->cause.code);
        put_str(out, CCTX_DUMP_TEXT, in->cause.msg);
        fputs("\", at ", out);
        put_str(out, CCTX_DUMP_TEXT, or_unknown(in->cause.file));
        fprintf(out, ":%d in ", in->cause.line);
        put_str(out, CCTX_DUMP_TEXT, or_unknown(in->cause.func));
        fputs(", ", out);
        put_ended(out, cctx__sat_sub(in->now, in->cause.when));
        fputc(')', out);
    }
    if (in->has_deadline) {
        fputs(", ", out);
        put_deadline(out, in->left);
    }
    fprintf(out, ", refs %u, children %zu\n", in->refs, in->children);
    for (struct cctx *v = c->parent; f->lister && v && v != f->lister; v = v->parent) {
        const char *vname = cctx_name(v);
        put_indent(out, f->depth);
        fprintf(out, "  via %s %p", kind_name(v), (void *)v);
        if (vname) {
            fputs(" \"", out);
            put_str(out, CCTX_DUMP_TEXT, vname);
            fputc('"', out);
        }
        put_text_site(out, v->file, cctx__line(v), v->func);
        fputc('\n', out);
    }
}

static void print_json(FILE *out, const struct frame *f, const struct node_info *in,
                       int first_sibling)
{
    const struct cctx *c = in->c;
    fprintf(out, "%s{\"id\":\"%p\",\"kind\":\"%s\",\"name\":", first_sibling ? "" : ",",
            (void *)c, kind_name(c));
    if (in->name)
        cctx__json_str(out, in->name);
    else
        fputs("null", out);
    fputs(",\"file\":", out);
    cctx__json_str(out, c->file);
    fprintf(out, ",\"line\":%d,\"func\":", cctx__line(c));
    cctx__json_str(out, c->func);
    fprintf(out, ",\"state\":\"%s\",\"err\":\"%s\"", in->err ? "done" : "active",
            err_name(in->err));
    if (in->err) {
        fprintf(out, ",\"cause\":{\"code\":%d,\"msg\":", in->cause.code);
        cctx__json_str(out, in->cause.msg);
        fputs(",\"file\":", out);
        cctx__json_str(out, in->cause.file);
        fprintf(out, ",\"line\":%d,\"func\":", in->cause.line);
        cctx__json_str(out, in->cause.func);
        fprintf(out, ",\"when\":%" PRId64 "}", in->cause.when);
    }
    if (in->has_deadline)
        fprintf(out, ",\"deadline\":%" PRId64 ",\"remaining\":%" PRId64, in->deadline, in->left);
    fprintf(out, ",\"refs\":%u,\"child_count\":%zu,\"via\":[", in->refs, in->children);
    for (struct cctx *v = c->parent; f->lister && v && v != f->lister; v = v->parent) {
        fprintf(out, "%s{\"id\":\"%p\",\"kind\":\"%s\",\"name\":", v == c->parent ? "" : ",",
                (void *)v, kind_name(v));
        const char *name = cctx_name(v);
        if (name)
            cctx__json_str(out, name);
        else
            fputs("null", out); /* as a context's own missing name */
        fputs(",\"file\":", out);
        cctx__json_str(out, v->file);
        fprintf(out, ",\"line\":%d}", cctx__line(v));
    }
    fputs("],\"children\":[", out);
}

static void print_dot(FILE *out, const struct frame *f, const struct node_info *in)
{
    struct cctx *c = in->c;
    fprintf(out, "  \"%p\" [label=\"%s", (void *)c, kind_name(c));
    if (in->name) {
        fputs(" ", out);
        put_str(out, CCTX_DUMP_DOT, in->name);
    }
    fprintf(out, "\\n");
    put_str(out, CCTX_DUMP_DOT, c->file);
    fprintf(out, ":%d\\n%s", cctx__line(c), in->err ? err_name(in->err) : "active");
    if (in->err) {
        fprintf(out, " (code %d), ", in->cause.code);
        put_ended(out, cctx__sat_sub(in->now, in->cause.when));
    }
    if (in->has_deadline) {
        fputs("\\n", out);
        put_deadline(out, in->left);
    }
    fprintf(out, "\", color=%s];\n", in->err ? "red" : "green");
    /* The chain through value contexts, as nodes of its own; `strict`
     * merges the edges that siblings under one value context share. */
    struct cctx *below = c;
    for (struct cctx *v = c->parent; f->lister && v && v != f->lister; v = v->parent) {
        fprintf(out, "  \"%p\" [label=\"%s ", (void *)v, kind_name(v));
        put_str(out, CCTX_DUMP_DOT, cctx_name(v));
        fprintf(out, "\\n");
        put_str(out, CCTX_DUMP_DOT, v->file);
        fprintf(out, ":%d\", style=dashed];\n  \"%p\" -> \"%p\";\n", cctx__line(v), (void *)v,
                (void *)below);
        below = v;
    }
    if (f->lister)
        fprintf(out, "  \"%p\" -> \"%p\";\n", (void *)f->lister, (void *)below);
}

static void print_node(FILE *out, int format, const struct frame *f, size_t children,
                       int first_sibling, int64_t now)
{
    struct node_info in = {.c = f->ctx, .children = children, .now = now};
    struct cctx *c = f->ctx;
    in.err = cctx_cause(c, &in.cause);
    in.has_deadline = cctx_deadline(c, &in.deadline);
    in.left = in.has_deadline ? cctx__sat_sub(in.deadline, now) : 0;
    in.name = cctx_name(c);
    in.refs = cctx__kind(c) == KIND_ROOT
                  ? 0
                  : cctx__refs(c) - (unsigned)f->refd;
    if (format == CCTX_DUMP_TEXT)
        print_text(out, f, &in);
    else if (format == CCTX_DUMP_JSON)
        print_json(out, f, &in, first_sibling);
    else
        print_dot(out, f, &in);
}

/* One line of the text form for c (cctx_cancel_and_wait's report, the
 * laggy report): `lister` is the context it is shown under (its "via" chain
 * is what lies between), `held` the references the caller took to print it. */
void cctx__dump_text_line(FILE *out, struct cctx *c, struct cctx *lister, int depth,
                          unsigned held, size_t children)
{
    struct frame f = {c, lister, depth, (int)held};
    print_node(out, CCTX_DUMP_TEXT, &f, children, 1, cctx_now());
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

void cctx__registered_by_parent(struct cctx__registered *v, size_t n)
{
    if (n > 1) /* an empty registry comes back as NULL, which qsort must not get */
        qsort(v, n, sizeof *v, by_parent);
}

size_t cctx__registered_children(const struct cctx__registered *v, size_t n, const struct cctx *p,
                                 size_t *lo)
{
    size_t l = 0, h = n;
    while (l < h) {
        size_t m = l + (h - l) / 2;
        if ((uintptr_t)v[m].ctx->parent < (uintptr_t)p)
            l = m + 1;
        else
            h = m;
    }
    *lo = l;
    while (h < n && v[h].ctx->parent == p)
        h++;
    return h > l ? h : l;
}

static size_t children_of(const struct everything *all, const struct cctx *p, size_t *lo)
{
    return cctx__registered_children(all->v, all->n, p, lo);
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
    if (all->n > 1)
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

/* Closes the JSON object opened at depth open - 1 (its children's array,
 * then the object). A tree's top object ends with the dump's moment on
 * cctx_now()'s clock, "dump_time", which the raw deadlines and cause times
 * are on: with it a reader can tell how long ago or ahead they were. It
 * comes last so that every member a dump had before keeps its place. */
static void close_json(FILE *out, int open, int64_t now)
{
    if (open == 1)
        fprintf(out, "],\"dump_time\":%" PRId64 "}", now);
    else
        fputs("]}", out);
}

static int dump(cctx_t *root, FILE *out, int format)
{
    if (root)
        cctx__check_live(root, "cctx_dump", NULL, 0, NULL);
    /* Counted before any reference is taken (debug.h). */
    if (!cctx__dump_began())
        return ENOTSUP;
    struct everything all = {0};
    if (!root) {
        int err = cctx__registry_snapshot(&all.v, &all.n);
        if (err) {
            cctx__dump_ended();
            return err;
        }
        cctx__registered_by_parent(all.v, all.n);
    }
    /* The dump's moment: every time in it is shown relative to this one. */
    int64_t now = cctx_now();
    /* The HTML page is a viewer around the JSON dump (dump_html.c). */
    bool html = format == CCTX_DUMP_HTML;
    if (html) {
        cctx__html_begin(out, now);
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
            close_json(out, open, now);
        size_t children;
        err = root ? push_children(&s, f.ctx, f.depth, &children)
                   : push_registered_children(&s, &all, f.ctx, f.depth, &children);
        print_node(out, format, &f, children, first_sibling, now);
        open = f.depth + 1;
        if (f.refd && root)
            cctx__runner_release(f.ctx, CCTX__SITE);
    }
    while (root && s.n > 0) { /* out of memory: drop what is still held */
        struct frame f = s.f[--s.n];
        if (f.refd)
            cctx__runner_release(f.ctx, CCTX__SITE);
    }
    free(s.f);
    /* The snapshot's references go last: until then every listed parent
     * pointer names a live context. */
    for (size_t i = 0; i < all.n; i++)
        cctx__runner_release(all.v[i].ctx, CCTX__SITE);
    free(all.v);
    cctx__dump_ended();
    if (format == CCTX_DUMP_JSON) {
        for (; open > 0; open--)
            close_json(out, open, now);
        fputs("]\n", out);
        if (html)
            cctx__html_end(out);
    } else if (format == CCTX_DUMP_DOT) {
        fputs("}\n", out);
    }
    if (err)
        return err;
    /* A dump that fits in the stream's buffer meets a write error (a full
     * disk, a closed pipe) only when that is flushed: flushed here, after
     * the references are gone, so that 0 means the dump was written. */
    return fflush(out) != 0 || ferror(out) ? EIO : 0;
}

/* The writes to out are cancellation points, made while the dump holds
 * references on the contexts it lists (and counts as under way, which the
 * leak report at exit waits for): a thread with a pthread_cancel pending
 * died in one and left them held for good. So the dump runs with
 * cancellation off, as a stream whose writes block already holds them
 * meanwhile (the header says to dump into memory then), and a pending
 * cancel acts at the thread's next cancellation point. */
int cctx_dump(cctx_t *root, FILE *out, int format)
{
    if (!out || format < CCTX_DUMP_TEXT || format > CCTX_DUMP_HTML)
        return EINVAL;
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    int err = dump(root, out, format);
    pthread_setcancelstate(state, NULL);
    return err;
}
