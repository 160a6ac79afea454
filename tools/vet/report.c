/* SPDX-License-Identifier: MIT */
/*
 * Findings: where they are, which are silenced by a `cctx-vet:ignore=rule`
 * comment on their line or standing alone just above it (or at the line of
 * the definition they follow from: report_for), and how they are
 * printed (GCC's `file:line:col: warning: message [cctx-vet:rule]`, or a
 * SARIF 2.1.0 log).
 */
#include "vet.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct rule_info rules[R_COUNT] = {
    [R_LOSTRELEASE] = {"lostrelease", true,
                       "a context from a derivation or cctx_ref is not released on some path"},
    [R_DOUBLERELEASE] = {"doublerelease", true, "a context is released twice on a path"},
    [R_USEAFTERRELEASE] = {"useafterrelease", true, "a context is used after its release"},
    [R_BACKGROUND] = {"background", true,
                      "cctx_background()/cctx_todo() where a context is available"},
    [R_BLOCKING] = {"blocking", true, "a blocking call in a function that has a context parameter"},
    [R_BLOCKING_LOCAL] = {"blocking-local", false, "a blocking call while a local context is live"},
    [R_CTXFIRST] = {"ctxfirst", true, "a context parameter that is not the first"},
    [R_FIELD] = {"field", false, "a context stored in a struct field"},
    [R_UNCHECKED] = {"unchecked", true,
                     "the result of a derivation is ignored, passed straight to a call or only "
                     "tested, or that of cctx_wait is ignored"},
};
bool rule_on[R_COUNT];

int rule_by_name(const char *name)
{
    for (int i = 0; i < R_COUNT; i++)
        if (strcmp(name, rules[i].name) == 0)
            return i;
    return -1;
}

struct finding {
    const char *file; /* owned by the file list */
    enum rule rule;
    struct loc at;
    struct loc anchor; /* where a comment silences it too; line 0 for none */
    int var;           /* the variable it is about, -1 for none */
    char *msg;
    unsigned col16; /* the column in UTF-16 code units, as SARIF counts */
    size_t seq;     /* the order reported, which orders findings at one place */
};

static struct finding *all; /* kept for SARIF, every file's */
static size_t nall, capall;
static size_t file_start;    /* this file's findings begin here */
static const char *cur_file; /* as the user named it, for the output */
static const char *cur_abs;  /* absolute, for reading its comments */
static CXFile main_file;

static struct loc loc_of(CXSourceLocation l)
{
    /* The expansion location: a macro call (cctx_release(c)) is reported
     * where the user wrote it, not in <cctx.h>. */
    struct loc at = {0, 0};
    CXFile f;
    clang_getExpansionLocation(l, &f, &at.line, &at.col, NULL);
    if (!f || !main_file || !clang_File_isEqual(f, main_file))
        at.line = at.col = 0;
    return at;
}

struct loc cursor_loc(CXCursor c)
{
    return loc_of(clang_getCursorLocation(c));
}

struct loc written_loc(CXCursor c)
{
    struct loc at = {0, 0};
    CXFile f;
    clang_getFileLocation(clang_getCursorLocation(c), &f, &at.line, &at.col, NULL);
    if (!f || !main_file || !clang_File_isEqual(f, main_file))
        return cursor_loc(c);
    return at;
}

struct loc end_loc(CXCursor c)
{
    struct loc at = loc_of(clang_getRangeEnd(clang_getCursorExtent(c)));
    if (at.col > 1)
        at.col--; /* the range ends after the closing brace */
    return at;
}

/* What tells findings apart: rule, place, the variable they are about
 * and (before the comments are read) the anchor. A finding's key is looked up in a hash set, not
 * compared with each finding of the file before it: that was n^2 in a file of n findings, twice
 * (100,000 took 13 s). */
struct fkey {
    unsigned rule, line, col, aline, acol;
    int var;
};

/* Open addressing, at most half full; a slot with rule 0 is empty (rules
 * are stored plus one). */
struct fset {
    struct fkey *slot;
    size_t n, cap; /* cap a power of 2, or 0 */
};

static uint64_t fkey_hash(const struct fkey *k)
{
    uint64_t h = 0;
    const unsigned v[] = {k->rule, k->line, k->col, k->aline, k->acol, (unsigned)k->var};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        h = (h ^ v[i]) * 0x9e3779b97f4a7c15u;
        h ^= h >> 29;
    }
    return h;
}

static bool fkey_equal(const struct fkey *a, const struct fkey *b)
{
    return a->rule == b->rule && a->line == b->line && a->col == b->col && a->aline == b->aline &&
           a->acol == b->acol && a->var == b->var;
}

static void fset_put(struct fkey *slot, size_t cap, struct fkey k)
{
    for (size_t i = fkey_hash(&k) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (slot[i].rule == 0) {
            slot[i] = k;
            return;
        }
}

static bool fset_has(const struct fset *s, const struct fkey *k)
{
    if (s->cap)
        for (size_t i = fkey_hash(k) & (s->cap - 1); s->slot[i].rule; i = (i + 1) & (s->cap - 1))
            if (fkey_equal(&s->slot[i], k))
                return true;
    return false;
}

/* Adds k (its rule plus one); false when it was there. */
static bool fset_add(struct fset *s, struct fkey k)
{
    if (fset_has(s, &k))
        return false;
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct fkey *slot = calloc(cap, sizeof *slot);
        if (!slot)
            abort();
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i].rule)
                fset_put(slot, cap, s->slot[i]);
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    fset_put(s->slot, s->cap, k);
    s->n++;
    return true;
}

static void fset_clear(struct fset *s)
{
    free(s->slot);
    *s = (struct fset){0};
}

static struct fset reported; /* this file's findings, by their whole key */

static void vreport(enum rule r, struct loc at, struct loc anchor, int var, const char *fmt,
                    va_list ap)
{
    if (!rule_on[r] || at.line == 0)
        return;
    /* The same finding from another path. One for another definition (two
     * contexts leak at one return) is kept until the comments are read: one
     * of them may be silenced at its definition. */
    if (!fset_add(&reported,
                  (struct fkey){(unsigned)r + 1, at.line, at.col, anchor.line, anchor.col, var}))
        return;
    if (nall == capall) {
        capall = capall ? 2 * capall : 32;
        all = realloc(all, capall * sizeof *all);
        if (!all)
            abort();
    }
    char *msg;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    all[nall] = (struct finding){cur_file, r, at, anchor, var, msg, at.col, nall};
    nall++;
}

void report(enum rule r, struct loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(r, at, (struct loc){0, 0}, -1, fmt, ap);
    va_end(ap);
}

void report_var(enum rule r, struct loc at, int var, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(r, at, (struct loc){0, 0}, var, fmt, ap);
    va_end(ap);
}

void report_for(enum rule r, struct loc at, struct loc anchor, int var, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(r, at, anchor, var, fmt, ap);
    va_end(ap);
}

void report_begin_file(const char *path, const char *abs, CXFile file)
{
    cur_file = path;
    cur_abs = abs;
    main_file = file;
    file_start = nall;
    fset_clear(&reported);
}

/* The lines of the file, for the suppression comments. */
/* The file's lines, each ended where clang ends one: at "\n", "\r\n" or a
 * lone "\r" (a file of old Mac line ends), so that line numbers agree. */
static char **read_lines(const char *path, unsigned *n)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **lines = NULL, *line = NULL;
    unsigned cap = 0;
    size_t len = 0, size = 0;
    for (;;) {
        int c = getc(f);
        if (c == EOF && len == 0 && !line)
            break; /* no line after the last line end */
        if (c != EOF && c != '\n' && c != '\r') {
            if (len + 2 > size) {
                size = size ? 2 * size : 128;
                line = realloc(line, size);
                if (!line)
                    abort();
            }
            line[len++] = (char)c;
            continue;
        }
        if (c == '\r') {
            int d = getc(f);
            if (d != '\n' && d != EOF)
                ungetc(d, f);
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            lines = realloc(lines, cap * sizeof *lines);
            if (!lines)
                abort();
        }
        if (!line && !(line = malloc(1)))
            abort();
        line[len] = '\0';
        lines[(*n)++] = line;
        line = NULL;
        len = size = 0;
        if (c == EOF)
            break;
    }
    fclose(f);
    return lines;
}

/* The directive `cctx-vet:ignore=a,b` (or `=all`, blanks allowed after a
 * comma) somewhere in text names the rule. */
static bool names_rule(const char *text, const char *rule)
{
    static const char directive[] = "cctx-vet:ignore=";
    size_t rl = strlen(rule);
    for (const char *p = strstr(text, directive); p; p = strstr(p + 1, directive)) {
        const char *q = p + strlen(directive);
        for (;;) {
            size_t n = strspn(q, "abcdefghijklmnopqrstuvwxyz-");
            if ((n == rl && strncmp(q, rule, n) == 0) || (n == 3 && strncmp(q, "all", 3) == 0))
                return true;
            if (q[n] != ',')
                break;
            q += n + 1;
            q += strspn(q, " \t");
        }
    }
    return false;
}

/* A comment on the finding's own line (from the first `//` or opening of
 * a block comment on) names the rule. */
static bool own_line_ignores(const char *line, const char *rule)
{
    const char *slashes = strstr(line, "//"), *block = strstr(line, "/*");
    const char *comment = !slashes ? block : !block || slashes < block ? slashes : block;
    return comment && names_rule(comment, rule);
}

static bool blank(const char *from, const char *to)
{
    for (; from < to && *from; from++)
        if (*from != ' ' && *from != '\t' && *from != '\n' && *from != '\r')
            return false;
    return true;
}

/* Nothing but blanks and whole block comments from the line's start to `to`
 * (`/` `* a *` `/ /` `* b *` `/` is two comments alone on their line). */
static bool only_comments(const char *line, const char *to)
{
    for (;;) {
        line += strspn(line, " \t");
        if (line >= to)
            return true;
        const char *close = strncmp(line, "/*", 2) == 0 ? strstr(line + 2, "*/") : NULL;
        if (!close || close >= to)
            return false;
        line = close + 2;
    }
}

/* Where a line starts: in code, or in a block comment, a // comment or a
 * literal that the lines above left open (a block comment runs on to its
 * `*` `/`; a backslash at a line's end splices the next line on). */
enum lexstate { IN_CODE, IN_BLOCK, IN_LINE, IN_STRING, IN_CHAR };

/* Reads line from state st as the compiler does: comments do not nest, and
 * `/` `*` or `*` `/` in a literal or a // comment (`"*` `/"`, a glob such as
 * config/` `*.conf) neither opens nor closes one. *open is the opener of the
 * last block comment begun on the line, *close the last end of one (NULL if
 * none). An unended literal ends with its line, as in GCC's skipped blocks
 * (`#error don't`). Returns the state the next line starts in. */
static enum lexstate lex_line(const char *line, enum lexstate st, const char **open,
                              const char **close)
{
    const char *p = line;
    *open = *close = NULL;
    for (; *p; p++) {
        if (st == IN_BLOCK) {
            if (p[0] == '*' && p[1] == '/') {
                *close = p++;
                st = IN_CODE;
            }
        } else if (st == IN_STRING || st == IN_CHAR) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == (st == IN_STRING ? '"' : '\''))
                st = IN_CODE;
        } else if (st == IN_CODE) {
            if (*p == '"')
                st = IN_STRING;
            else if (*p == '\'')
                st = IN_CHAR;
            else if (p[0] == '/' && p[1] == '/')
                st = IN_LINE;
            else if (p[0] == '/' && p[1] == '*') {
                *open = p++;
                st = IN_BLOCK;
            }
        }
    }
    if (st == IN_BLOCK || (p > line && p[-1] == '\\'))
        return st;
    return IN_CODE;
}

/* The state each of the n lines starts in. */
static unsigned char *line_states(char **lines, unsigned n)
{
    unsigned char *state = malloc(n + 1);
    if (!state)
        abort();
    enum lexstate st = IN_CODE;
    for (unsigned i = 0; i < n; i++) {
        const char *open, *close;
        state[i] = (unsigned char)st;
        st = lex_line(lines[i], st, &open, &close);
    }
    return state;
}

/* The first line (0-based) of the comment that ends on line `last` when that
 * comment stands alone on its lines, nothing but blanks before or after it:
 * a block comment, or a run of `//` lines. -1 when line `last` holds code
 * (a comment after code speaks for its own line only) or no comment. */
static int comment_above(char **lines, const unsigned char *state, unsigned last)
{
    const char *text = lines[last] + strspn(lines[last], " \t");
    if (strncmp(text, "//", 2) == 0) {
        unsigned first = last;
        while (first > 0 &&
               strncmp(lines[first - 1] + strspn(lines[first - 1], " \t"), "//", 2) == 0)
            first--;
        return (int)first;
    }
    const char *open, *end;
    lex_line(lines[last], state[last], &open, &end);
    if (!end || !blank(end + 2, end + strlen(end)))
        return -1;
    /* With only blanks after its end, a comment begun on this line is the
     * last begun on it; else it began on the nearest line above that begins
     * one (the lines between are all inside it). Line 0 starts in code. */
    unsigned i = last;
    while (!open && i > 0) {
        const char *close;
        i--;
        lex_line(lines[i], state[i], &open, &close);
    }
    return open && only_comments(lines[i], open) ? (int)i : -1;
}

/* A finding on line l (1-based) is silenced by a comment on its line, or by
 * the comment standing alone on the lines just above it (any of its lines). */
static bool silenced(char **lines, const unsigned char *state, unsigned nlines, unsigned l,
                     const char *rule)
{
    if (l < 1 || l > nlines)
        return false;
    if (own_line_ignores(lines[l - 1], rule))
        return true;
    int first = l >= 2 ? comment_above(lines, state, l - 2) : -1;
    for (int i = first; i >= 0 && i <= (int)l - 2; i++)
        if (names_rule(lines[i], rule))
            return true;
    return false;
}

/* The byte column col (1-based) of line in UTF-16 code units, SARIF's
 * default columnKind: a character of four UTF-8 bytes (outside the BMP) is
 * two units, any other one; the bytes that continue a character add none. */
static unsigned utf16_column(const char *line, unsigned col)
{
    unsigned units = 1;
    for (unsigned i = 0; i + 1 < col && line[i]; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch & 0xc0) != 0x80)
            units += ch >= 0xf0 ? 2 : 1;
    }
    return units;
}

static int by_place(const void *a, const void *b)
{
    const struct finding *x = a, *y = b;
    if (x->at.line != y->at.line)
        return x->at.line < y->at.line ? -1 : 1;
    if (x->at.col != y->at.col)
        return x->at.col < y->at.col ? -1 : 1;
    if (x->rule != y->rule)
        return (int)x->rule - (int)y->rule;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Of the findings left at one place, the first reported speaks (true for
 * a later one): of those about one variable, or about none (an assignment
 * that overwrites a context and makes the next one is one finding), and of
 * those that follow from a definition (report_for) whatever their variable
 * (a return that leaks two contexts is one). Those are keyed once more with
 * var -2, which no finding has. Asked of the findings no comment silences
 * only. */
static bool spoken(struct fset *kept, const struct finding *f)
{
    struct fkey own = {(unsigned)f->rule + 1, f->at.line, f->at.col, 0, 0, f->var};
    struct fkey follows = own;
    follows.var = -2;
    if (fset_has(kept, &own) || (f->anchor.line && fset_has(kept, &follows)))
        return true;
    fset_add(kept, own);
    if (f->anchor.line)
        fset_add(kept, follows);
    return false;
}

size_t report_end_file(bool sarif)
{
    unsigned nlines;
    char **lines = read_lines(cur_abs, &nlines);
    unsigned char *state = line_states(lines, nlines);
    struct fset kept_at = {0};
    size_t kept = file_start;
    for (size_t i = file_start; i < nall; i++) {
        unsigned l = all[i].at.line, anchor = all[i].anchor.line;
        const char *name = rules[all[i].rule].name;
        bool quiet = silenced(lines, state, nlines, l, name) ||
                     (anchor && silenced(lines, state, nlines, anchor, name));
        if (!quiet)
            quiet = spoken(&kept_at, &all[i]);
        if (quiet) {
            free(all[i].msg);
            continue;
        }
        if (l >= 1 && l <= nlines)
            all[i].col16 = utf16_column(lines[l - 1], all[i].at.col);
        all[kept++] = all[i];
    }
    nall = kept;
    fset_clear(&kept_at);
    fset_clear(&reported);
    for (unsigned i = 0; i < nlines; i++)
        free(lines[i]);
    free(lines);
    free(state);
    if (nall > file_start)
        qsort(all + file_start, nall - file_start, sizeof *all, by_place);
    if (!sarif)
        for (size_t i = file_start; i < nall; i++)
            printf("%s:%u:%u: warning: %s [cctx-vet:%s]\n", all[i].file, all[i].at.line,
                   all[i].at.col, all[i].msg, rules[all[i].rule].name);
    fflush(stdout);
    return nall - file_start;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* A file name as a SARIF artifact URI: a relative or absolute path reference
 * (RFC 3986), every byte but the unreserved ones and '/' percent-encoded, so
 * that a space, '#', '?', '%' or a byte of a non-UTF-8 name neither breaks
 * the URI nor the JSON around it. */
static void uri_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/')
            putchar(ch);
        else
            printf("%%%02X", ch);
    }
    putchar('"');
}

void report_sarif(void)
{
    printf("{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n"
           "  \"version\": \"2.1.0\",\n  \"runs\": [{\n"
           "    \"tool\": {\"driver\": {\"name\": \"cctx-vet\", \"version\": \"" CCTX_VET_VERSION
           "\",\n"
           "      \"rules\": [");
    for (int i = 0; i < R_COUNT; i++) {
        printf("%s\n        {\"id\": ", i ? "," : "");
        json_string(rules[i].name);
        printf(", \"shortDescription\": {\"text\": ");
        json_string(rules[i].summary);
        printf("}, \"defaultConfiguration\": {\"enabled\": %s, \"level\": \"warning\"}}",
               rules[i].on_by_default ? "true" : "false");
    }
    printf("]}},\n    \"columnKind\": \"utf16CodeUnits\",\n    \"results\": [");
    for (size_t i = 0; i < nall; i++) {
        printf("%s\n      {\"ruleId\": ", i ? "," : "");
        json_string(rules[all[i].rule].name);
        printf(", \"ruleIndex\": %d, \"level\": \"warning\", \"message\": {\"text\": ",
               (int)all[i].rule);
        json_string(all[i].msg);
        printf("},\n       \"locations\": [{\"physicalLocation\": {\"artifactLocation\": "
               "{\"uri\": ");
        uri_string(all[i].file);
        printf("}, \"region\": {\"startLine\": %u, \"startColumn\": %u}}}]}", all[i].at.line,
               all[i].col16);
    }
    printf("\n    ]\n  }]\n}\n");
}

void report_free(void)
{
    for (size_t i = 0; i < nall; i++)
        free(all[i].msg);
    free(all);
    all = NULL;
    nall = capall = file_start = 0;
    fset_clear(&reported);
}
