/* SPDX-License-Identifier: MIT */
/*
 * Small helpers over libclang's cursors: children as an array, callee names,
 * the cctx_t * type test and the no-return test of a callee. The operator of
 * an operator expression is found in operator.c.
 */
#include "vet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum CXChildVisitResult collect(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct kids *k = data;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 8;
        k->v = realloc(k->v, k->cap * sizeof *k->v);
        if (!k->v)
            abort();
    }
    k->v[k->n++] = c;
    return CXChildVisit_Continue;
}

struct kids kids_of(CXCursor c)
{
    struct kids k = {0};
    clang_visitChildren(c, collect, &k);
    return k;
}

void kids_free(struct kids *k)
{
    free(k->v);
    k->v = NULL;
    k->n = k->cap = 0;
}

bool is_binary_conditional(CXCursor c)
{
    if (clang_getCursorKind(c) != CXCursor_UnexposedExpr)
        return false;
    struct kids ks = kids_of(c);
    bool yes = ks.n == 4 &&
               clang_equalRanges(clang_getCursorExtent(ks.v[0]), clang_getCursorExtent(ks.v[1]));
    kids_free(&ks);
    return yes;
}

/* __builtin_choose_expr(cond, a, b): its first operand is an integer
 * constant (an atomic operation's is a pointer); the operand it chooses
 * (1 or 2), or -1 when cond is no integer constant. */
static int chosen_operand(CXCursor cond)
{
    enum CXTypeKind t = clang_getCanonicalType(clang_getCursorType(cond)).kind;
    if (t < CXType_Bool || t > CXType_Int128)
        return -1;
    CXEvalResult r = clang_Cursor_Evaluate(cond);
    if (!r)
        return -1;
    int chosen = clang_EvalResult_getKind(r) == CXEval_Int
                     ? (clang_EvalResult_getAsLongLong(r) != 0 ? 1 : 2)
                     : -1;
    clang_EvalResult_dispose(r);
    return chosen;
}

CXCursor strip(CXCursor c, bool casts)
{
    for (;;) {
        enum CXCursorKind k = clang_getCursorKind(c);
        bool through = k == CXCursor_ParenExpr || k == CXCursor_UnexposedExpr ||
                       (casts && k == CXCursor_CStyleCastExpr);
        if (!through || is_binary_conditional(c))
            return c;
        struct kids ks = kids_of(c);
        /* A cast's first child may be its type reference; the operand is
         * last. An unexposed expression of several operands (an atomic
         * operation: pointer, value, order; __builtin_choose_expr) is no
         * wrapper of its last one. */
        int chosen = k == CXCursor_UnexposedExpr && ks.n == 3 ? chosen_operand(ks.v[0]) : -1;
        if (ks.n == 0 || (k == CXCursor_UnexposedExpr && ks.n > 1 && chosen < 0)) {
            kids_free(&ks);
            return c;
        }
        CXCursor next = chosen >= 0 ? ks.v[chosen] : ks.v[ks.n - 1];
        kids_free(&ks);
        c = next;
    }
}

/* The extent of c as the user wrote it: a range that starts inside a macro
 * (CCTX_AUTO cctx_t *c = ...) is moved to the macro's call. */
static CXSourceRange written_extent(CXCursor c)
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXSourceRange r = clang_getCursorExtent(c);
    CXFile f1, f2;
    unsigned l1, c1, l2, c2;
    clang_getExpansionLocation(clang_getRangeStart(r), &f1, &l1, &c1, NULL);
    clang_getExpansionLocation(clang_getRangeEnd(r), &f2, &l2, &c2, NULL);
    if (!f1 || !f2 || !clang_File_isEqual(f1, f2))
        return r;
    return clang_getRange(clang_getLocation(tu, f1, l1, c1), clang_getLocation(tu, f2, l2, c2));
}

bool is_null_const(CXCursor c)
{
    c = strip(c, true);
    enum CXCursorKind k = clang_getCursorKind(c);
    if (k == CXCursor_IntegerLiteral || k == CXCursor_GNUNullExpr) {
        CXEvalResult r = clang_Cursor_Evaluate(c);
        bool zero = r && clang_EvalResult_getKind(r) == CXEval_Int &&
                    clang_EvalResult_getAsLongLong(r) == 0;
        if (r)
            clang_EvalResult_dispose(r);
        return zero;
    }
    return false;
}

void callee_name(CXCursor call, char *buf, size_t size)
{
    buf[0] = 0;
    CXCursor ref = clang_getCursorReferenced(call);
    if (clang_Cursor_isNull(ref) || clang_getCursorKind(ref) != CXCursor_FunctionDecl)
        return;
    CXString s = clang_getCursorSpelling(ref);
    snprintf(buf, size, "%s", clang_getCString(s));
    clang_disposeString(s);
}

static bool is_word(const char *t, const char *word, const char *word2)
{
    return strcmp(t, word) == 0 || (word2 && strcmp(t, word2) == 0);
}

/* The spellings of the tokens in r. */
static char **spellings(CXTranslationUnit tu, CXSourceRange r, unsigned *n)
{
    CXToken *toks;
    clang_tokenize(tu, r, &toks, n);
    char **v = calloc(*n ? *n : 1, sizeof *v);
    if (!v)
        abort();
    for (unsigned i = 0; i < *n; i++) {
        CXString s = clang_getTokenSpelling(tu, toks[i]);
        v[i] = strdup(clang_getCString(s));
        clang_disposeString(s);
        if (!v[i])
            abort();
    }
    clang_disposeTokens(tu, toks, *n);
    return v;
}

static void spellings_free(char **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A function-like macro's parameters, each with its argument in a call:
 * as many as the macro has. Up to MACRO_PARAMS_KEPT of them are kept in
 * the struct itself, with no allocation, which is every macro but a few. */
enum { MACRO_PARAMS_KEPT = 16 };

struct macro_param {
    const char *name;
    unsigned from, to; /* the argument's tokens in the call, [from, to) */
};

struct macro_params {
    struct macro_param *v, kept[MACRO_PARAMS_KEPT];
    int n;
};

/* Reads the parameters of a function-like macro's text (def, nd tokens from
 * its name on) and the arguments of its call (call, nc tokens). Returns
 * where the replacement text starts. Free with macro_params_free. */
static unsigned macro_params(char **def, unsigned nd, char **call, unsigned nc,
                             struct macro_params *p)
{
    unsigned i = 2, n = 0; /* past the name and the `(` */
    for (; i < nd && strcmp(def[i], ")") != 0; i++)
        n += strcmp(def[i], ",") != 0;
    p->v = n <= MACRO_PARAMS_KEPT ? p->kept : calloc(n, sizeof *p->v);
    if (!p->v)
        abort();
    p->n = 0;
    for (unsigned t = 2; t < i; t++)
        if (strcmp(def[t], ",") != 0)
            p->v[p->n++] = (struct macro_param){def[t], 0, 0};
    for (unsigned j = 2, depth = 0, k = 0, from = 2; j < nc && k < n; j++) {
        if (depth == 0 && (strcmp(call[j], ",") == 0 || strcmp(call[j], ")") == 0)) {
            p->v[k].from = from;
            p->v[k++].to = j;
            from = j + 1;
            continue;
        }
        depth += strcmp(call[j], "(") == 0;
        depth -= depth > 0 && strcmp(call[j], ")") == 0;
    }
    return i + 1;
}

static void macro_params_free(struct macro_params *p)
{
    if (p->v != p->kept)
        free(p->v);
}

static int param_index(const char *t, const struct macro_params *p)
{
    for (int k = 0; k < p->n; k++)
        if (strcmp(t, p->v[k].name) == 0)
            return k;
    return -1;
}

/* Whether fname goes on with piece at *at; if so, *at moves past it. */
static bool goes_on_with(const char *fname, size_t *at, const char *piece)
{
    size_t len = strlen(piece);
    if (strncmp(fname + *at, piece, len) != 0)
        return false;
    *at += len;
    return true;
}

/* Whether the tokens def[j], def[j + 2], ..., def[k] (a name pasted with
 * ##: j and k are names, those between them ##), each parameter replaced by
 * its argument in the call, spell fname, however long either is. */
static bool spells(char **def, unsigned j, unsigned k, char **call, const struct macro_params *p,
                   const char *fname)
{
    size_t at = 0;
    for (unsigned t = j; t <= k; t += 2) {
        int a = param_index(def[t], p);
        if (a < 0 && !goes_on_with(fname, &at, def[t]))
            return false;
        for (unsigned u = a >= 0 ? p->v[a].from : 0; a >= 0 && u < p->v[a].to; u++)
            if (!goes_on_with(fname, &at, call[u]))
                return false;
    }
    return fname[at] == 0;
}

/* The macro whose call starts at tok (`NORET` for _Noreturn, or a macro
 * that writes the whole prototype of fname, `DECLARE_DIE(fatal);`) holds
 * the word among that declaration's specifiers. A macro may write several
 * declarations (`_Noreturn void name##_fatal(...); void name(...)`): only
 * the one whose declarator, its parameters replaced by the call's arguments
 * and pasted, spells fname counts, up to that name. When none spells it (a
 * name in parentheses, `void (name)(...)`, or one another macro makes), the
 * first declaration counts, up to its first `(`, as for a macro that
 * writes one. A parameter of the macro is the call's argument, read where
 * the call is written, not the word. */
static bool macro_has_word(CXTranslationUnit tu, CXToken tok, const char *fname, const char *word,
                           const char *word2)
{
    if (clang_getTokenKind(tok) != CXToken_Identifier)
        return false;
    CXCursor call = macro_call_at(tu, clang_getTokenLocation(tu, tok));
    CXCursor def = clang_getCursorReferenced(call);
    if (clang_getCursorKind(call) != CXCursor_MacroExpansion ||
        clang_getCursorKind(def) != CXCursor_MacroDefinition)
        return false;
    unsigned nd, nc = 0;
    char **d = spellings(tu, clang_getCursorExtent(def), &nd), **c = NULL;
    struct macro_params params = {.n = 0};
    unsigned body = 1; /* after the macro's name */
    if (clang_Cursor_isMacroFunctionLike(def)) {
        c = spellings(tu, clang_getCursorExtent(call), &nc);
        body = macro_params(d, nd, c, nc, &params);
    }
    /* Each declaration the text writes: [from, to), up to a `;`. */
    int ndecls = 0, head_end = -1;
    unsigned only_from = body, only_to = body;
    bool found = false, matched = false;
    for (unsigned from = body, to; from < nd && !matched; from = to + 1) {
        for (to = from; to < nd && strcmp(d[to], ";") != 0;)
            to++;
        if (to == from)
            continue;
        if (ndecls++ == 0) {
            only_from = from;
            only_to = to;
        }
        for (unsigned k = from; k + 1 < to && !matched; k++) {
            if (strcmp(d[k + 1], "(") != 0)
                continue;
            unsigned j = k; /* the name: a ## b ## ... ending at k */
            while (j >= from + 2 && strcmp(d[j - 1], "##") == 0)
                j -= 2;
            matched = spells(d, j, k, c, &params, fname);
            if (matched) {
                only_from = from;
                head_end = (int)j;
            }
        }
    }
    if (ndecls > 0)
        for (unsigned i = only_from; i < (matched ? (unsigned)head_end : only_to) && !found; i++) {
            if (strcmp(d[i], "(") == 0 || strcmp(d[i], "{") == 0)
                break;
            found = param_index(d[i], &params) < 0 && is_word(d[i], word, word2);
        }
    macro_params_free(&params);
    spellings_free(d, nd);
    if (c)
        spellings_free(c, nc);
    return found;
}

bool decl_has_token(CXCursor decl, const char *word, const char *word2)
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(decl);
    CXString name = clang_getCursorSpelling(decl);
    CXToken *toks;
    unsigned nt;
    bool found = false;
    clang_tokenize(tu, written_extent(decl), &toks, &nt);
    /* Where the parameters start: the first '(' right after the name. A
     * declaration a macro writes may not show its name: then every token
     * up to the body counts. */
    unsigned params = nt;
    for (unsigned i = 0; i + 1 < nt && params == nt; i++) {
        CXString a = clang_getTokenSpelling(tu, toks[i]),
                 b = clang_getTokenSpelling(tu, toks[i + 1]);
        if (strcmp(clang_getCString(a), clang_getCString(name)) == 0 &&
            strcmp(clang_getCString(b), "(") == 0)
            params = i + 1;
        clang_disposeString(a);
        clang_disposeString(b);
    }
    for (unsigned i = 0, depth = 0; i < nt && !found; i++) {
        CXString s = clang_getTokenSpelling(tu, toks[i]);
        const char *t = clang_getCString(s);
        bool end = depth == 0 && (strcmp(t, "{") == 0 || strcmp(t, ";") == 0);
        if (i >= params && strcmp(t, "(") == 0 && (i == params || depth > 0))
            depth++;
        else if (depth > 0 && strcmp(t, ")") == 0)
            depth--;
        else if (depth == 0 && !end)
            found = is_word(t, word, word2) ||
                    macro_has_word(tu, toks[i], clang_getCString(name), word, word2);
        clang_disposeString(s);
        if (end)
            break;
    }
    clang_disposeTokens(tu, toks, nt);
    clang_disposeString(name);
    return found;
}

/* The C library's calls that never return, known by name when a system
 * header declares them (a C library may not mark them): a project's own
 * function of the same name (a logging err()) is judged by its declaration,
 * searched for _Noreturn and the noreturn attribute as every other one is. */
static const char *const noreturn_names[] = {
    "abort",      "exit",          "_exit", "_Exit", "quick_exit", "pthread_exit", "longjmp",
    "siglongjmp", "__assert_fail", "err",   "errx",  "verr",       "verrx",        NULL,
};

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

bool callee_in_system_header(CXCursor call)
{
    CXCursor ref = clang_getCursorReferenced(call);
    if (clang_Cursor_isNull(ref))
        return false;
    CXCursor canon = clang_getCanonicalCursor(ref);
    CXSourceLocation l = clang_getCursorLocation(canon);
    if (clang_Location_isInSystemHeader(l))
        return true;
    /* An implicit declaration (a call with no prototype in sight): clang
     * makes it where the call is; the C library's function is meant. */
    if (clang_getCursorType(canon).kind == CXType_FunctionNoProto &&
        clang_Cursor_isNull(clang_getCursorDefinition(ref))) {
        unsigned a, c0, c1;
        CXFile fa, fc;
        CXSourceRange r = clang_getCursorExtent(call);
        clang_getExpansionLocation(l, &fa, NULL, NULL, &a);
        clang_getExpansionLocation(clang_getRangeStart(r), &fc, NULL, NULL, &c0);
        clang_getExpansionLocation(clang_getRangeEnd(r), NULL, NULL, NULL, &c1);
        if (clang_File_isEqual(fa, fc) && a >= c0 && a <= c1)
            return true;
    }
    /* A library's header found through -I (curl's, installed in a prefix
     * of its own): named by its path. */
    CXFile f;
    clang_getExpansionLocation(l, &f, NULL, NULL, NULL);
    CXString fn = clang_getFileName(f);
    const char *path = clang_getCString(fn);
    bool lib = path && (ends_with(path, "/curl/easy.h") || ends_with(path, "/curl/curl.h"));
    clang_disposeString(fn);
    return lib;
}

bool callee_noreturn(CXCursor call, const char *name)
{
    if (strcmp(name, "__builtin_unreachable") == 0 || strcmp(name, "__builtin_trap") == 0)
        return true;
    CXCursor ref = clang_getCursorReferenced(call);
    if (clang_Cursor_isNull(ref) || clang_getCursorKind(ref) != CXCursor_FunctionDecl)
        return false;
    bool system =
        clang_Location_isInSystemHeader(clang_getCursorLocation(clang_getCanonicalCursor(ref)));
    for (int i = 0; noreturn_names[i] && system; i++)
        if (strcmp(name, noreturn_names[i]) == 0)
            return true;
    /* __attribute__((noreturn)) is part of the function's type, however it
     * was spelled (a NORETURN macro): the type's spelling shows it. */
    CXString ts = clang_getTypeSpelling(clang_getCursorType(ref));
    bool in_type = strstr(clang_getCString(ts), "__attribute__((noreturn))") != NULL;
    clang_disposeString(ts);
    if (in_type)
        return true;
    /* Every declaration counts: the attribute may be on a prototype only. */
    CXCursor canon = clang_getCanonicalCursor(ref);
    if (decl_has_token(canon, "_Noreturn", "noreturn") ||
        decl_has_token(canon, "__noreturn__", NULL))
        return true;
    CXCursor def = clang_getCursorDefinition(ref);
    return !clang_Cursor_isNull(def) && !clang_equalCursors(def, canon) &&
           (decl_has_token(def, "_Noreturn", "noreturn") ||
            decl_has_token(def, "__noreturn__", NULL));
}

void copy_name(char *dst, size_t size, const char *src)
{
    static const char mark[] = "\xe2\x80\xa6"; /* U+2026, the ellipsis */
    size_t n = strlen(src);
    bool cut = n >= size, marked = cut && size > sizeof mark;
    if (cut) {
        n = marked ? size - sizeof mark : size - 1; /* room for the mark and the NUL */
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--; /* src[n] continues a character: cut before that character */
    }
    memcpy(dst, src, n);
    if (marked)
        memcpy(dst + n, mark, sizeof mark); /* with its NUL */
    else
        dst[n] = 0;
}

bool is_ctx_ptr(CXType t)
{
    t = clang_getCanonicalType(t);
    if (t.kind != CXType_Pointer)
        return false;
    CXType p = clang_getCanonicalType(clang_getPointeeType(t));
    if (p.kind != CXType_Record)
        return false;
    CXCursor d = clang_getTypeDeclaration(p);
    if (clang_getCursorKind(d) != CXCursor_StructDecl)
        return false;
    CXString s = clang_getCursorSpelling(d);
    bool yes = strcmp(clang_getCString(s), "cctx") == 0;
    clang_disposeString(s);
    return yes;
}

bool in_main_file(CXCursor c)
{
    return cursor_loc(c).line != 0;
}
