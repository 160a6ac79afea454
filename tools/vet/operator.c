/* SPDX-License-Identifier: MIT */
/*
 * The operator of a unary or binary operator expression. libclang 14 has no
 * API for it (clang_getCursorBinaryOperatorKind came with libclang 17), so it
 * is read from the one token between the operands when the operator is
 * written there. An operator written inside a macro (`#define CLEAR(c) do {
 * cctx_release(c); (c) = NULL; } while (0)`) has no token there: libclang
 * places every token of an expansion at the macro's call, spelling locations
 * included (an operator the user wrote in a macro's argument, `likely(c !=
 * NULL)`, is read where the argument is written). Then the operator of the
 * macro's own text is inferred from what the compiler made of the
 * operands, which tells an assignment, `&`, `*` and the `!` of a pointer from
 * every other operator; `==`, `!=` and the `!` of an integer are read from the
 * macro's definition when it holds no operator they could be confused with.
 */
#include "vet.h"

#include <stdio.h>
#include <string.h>

static unsigned offset_in(CXSourceLocation l, CXFile *file)
{
    unsigned off;
    clang_getExpansionLocation(l, file, NULL, NULL, &off);
    return off;
}

/* The single punctuation token written in [from, to) of file, or false. */
static bool token_between(CXTranslationUnit tu, CXFile file, unsigned from, unsigned to, char *buf,
                          size_t size)
{
    if (!file || from >= to)
        return false;
    CXSourceRange r = clang_getRange(clang_getLocationForOffset(tu, file, from),
                                     clang_getLocationForOffset(tu, file, to));
    CXToken *toks;
    unsigned nt, found = 0, which = 0;
    clang_tokenize(tu, r, &toks, &nt);
    for (unsigned i = 0; i < nt; i++) {
        unsigned off = offset_in(clang_getTokenLocation(tu, toks[i]), NULL);
        if (off >= from && off < to) {
            found++;
            which = i;
        }
    }
    bool ok = found == 1 && clang_getTokenKind(toks[which]) == CXToken_Punctuation;
    if (ok) {
        CXString s = clang_getTokenSpelling(tu, toks[which]);
        snprintf(buf, size, "%s", clang_getCString(s));
        clang_disposeString(s);
    }
    clang_disposeTokens(tu, toks, nt);
    return ok;
}

/* Where in its file l is written when the user wrote it as a macro's
 * argument (`likely(c != NULL)`), whose tokens are in the file as they are
 * expanded; no file (*file NULL) for any other token a macro wrote, whose
 * place is the macro's call. */
static unsigned offset_in_argument(CXSourceLocation l, CXFile *file)
{
    CXFile expanded;
    unsigned off, at_call;
    clang_getExpansionLocation(l, &expanded, NULL, NULL, &at_call);
    clang_getFileLocation(l, file, NULL, NULL, &off);
    if (!*file || !expanded || !clang_File_isEqual(*file, expanded) || off == at_call)
        *file = NULL;
    return off;
}

/* The operator as written between the operands (binary), before the operand
 * (prefix) or after it (postfix), when it is written there: where the code
 * is (where() is offset_in), or in the argument of the macro that has its
 * operands (offset_in_argument). */
static bool written_operator(CXCursor c, const struct kids *ks, bool binary,
                             unsigned (*where)(CXSourceLocation, CXFile *), char *buf, size_t size)
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXSourceRange whole = clang_getCursorExtent(c);
    CXSourceRange first = clang_getCursorExtent(ks->v[0]);
    CXSourceRange last = clang_getCursorExtent(ks->v[ks->n - 1]);
    CXFile f1, f2;
    unsigned from, to;
    if (binary) {
        from = where(clang_getRangeEnd(first), &f1);
        to = where(clang_getRangeStart(last), &f2);
    } else {
        from = where(clang_getRangeStart(whole), &f1);
        to = where(clang_getRangeStart(first), &f2);
        if (from >= to) { /* no room before the operand: a postfix operator */
            from = where(clang_getRangeEnd(first), &f1);
            to = where(clang_getRangeEnd(whole), &f2);
        }
    }
    if (!f1 || !f2 || !clang_File_isEqual(f1, f2) || !token_between(tu, f1, from, to, buf, size))
        return false;
    /* Operands from two arguments of a macro (`#define ADD(a, b) a + b`)
     * have the comma between them that separates the arguments. */
    return where == offset_in || strcmp(buf, ",") != 0;
}

/* c designates an object and was not converted to its value: only the left
 * operand of `=` (or of a comma) and the operand of `&`, `++` and `--` stay
 * so; every other operand gets an implicit conversion, which libclang shows
 * as an unexposed expression. */
static bool unconverted_lvalue(CXCursor c)
{
    for (;;) {
        enum CXCursorKind k = clang_getCursorKind(c);
        if (k == CXCursor_DeclRefExpr) {
            enum CXCursorKind d = clang_getCursorKind(clang_getCursorReferenced(c));
            return d == CXCursor_VarDecl || d == CXCursor_ParmDecl;
        }
        if (k == CXCursor_MemberRefExpr || k == CXCursor_ArraySubscriptExpr ||
            k == CXCursor_CompoundLiteralExpr)
            return true;
        if (k == CXCursor_UnaryOperator) { /* `*p`: its type is what p points to */
            struct kids ks = kids_of(c);
            bool deref =
                ks.n == 1 &&
                clang_equalTypes(clang_getCanonicalType(clang_getCursorType(c)),
                                 clang_getCanonicalType(clang_getPointeeType(
                                     clang_getCanonicalType(clang_getCursorType(ks.v[0])))));
            kids_free(&ks);
            return deref;
        }
        if (k != CXCursor_ParenExpr)
            return false;
        struct kids ks = kids_of(c);
        bool one = ks.n == 1;
        if (one)
            c = ks.v[0];
        kids_free(&ks);
        if (!one)
            return false;
    }
}

static CXType canonical_type(CXCursor c)
{
    return clang_getCanonicalType(clang_getCursorType(c));
}

/* The longest definition read for its operators, in bytes. */
#define MACRO_BYTES_READ 256

/* The operators written in the definition of the macro whose call wrote c. */
struct macro_ops {
    bool found;
    int equality;    /* == and != */
    int comparisons; /* the other comparisons, && and || */
    int arithmetic;  /* the other binary operators (or their prefix twins) */
    int bang, other_prefix;
    char last_equality[4];
};

static void count_op(struct macro_ops *m, const char *t)
{
    static const char *const comparisons[] = {"<", ">", "<=", ">=", "&&", "||", NULL};
    static const char *const arithmetic[] = {"+", "-", "*",  "/",  "%", "&",
                                             "|", "^", "<<", ">>", "?", NULL};
    if (strcmp(t, "==") == 0 || strcmp(t, "!=") == 0) {
        m->equality++;
        snprintf(m->last_equality, sizeof m->last_equality, "%s", t);
        return;
    }
    if (strcmp(t, "!") == 0)
        m->bang++;
    if (strcmp(t, "-") == 0 || strcmp(t, "+") == 0 || strcmp(t, "~") == 0)
        m->other_prefix++;
    for (int i = 0; comparisons[i]; i++)
        m->comparisons += strcmp(t, comparisons[i]) == 0;
    for (int i = 0; arithmetic[i]; i++)
        m->arithmetic += strcmp(t, arithmetic[i]) == 0;
}

static struct macro_ops read_macro_ops(CXCursor c);

/* The answers for the last few macro calls, by where the call is written:
 * a macro that expands to many operators would have its definition read
 * once for each. */
#define MACRO_CACHE 16
static struct {
    CXTranslationUnit tu;
    CXFile file;
    unsigned offset;
    struct macro_ops ops;
} macro_cache[MACRO_CACHE];
static unsigned macro_cache_next;

void op_forget(void)
{
    memset(macro_cache, 0, sizeof macro_cache);
}

static struct macro_ops macro_ops_of(CXCursor c)
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXFile file;
    unsigned offset;
    clang_getExpansionLocation(clang_getRangeStart(clang_getCursorExtent(c)), &file, NULL, NULL,
                               &offset);
    for (unsigned i = 0; i < MACRO_CACHE; i++)
        if (macro_cache[i].tu == tu && macro_cache[i].file == file &&
            macro_cache[i].offset == offset && file)
            return macro_cache[i].ops;
    struct macro_ops m = read_macro_ops(c);
    unsigned slot = macro_cache_next++ % MACRO_CACHE;
    macro_cache[slot].tu = tu;
    macro_cache[slot].file = file;
    macro_cache[slot].offset = offset;
    macro_cache[slot].ops = m;
    return m;
}

bool macro_definition_of(CXCursor c, CXCursor *def)
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXCursor call = macro_call_at(tu, clang_getRangeStart(clang_getCursorExtent(c)));
    if (clang_getCursorKind(call) != CXCursor_MacroExpansion)
        return false;
    *def = clang_getCursorReferenced(call);
    return clang_getCursorKind(*def) == CXCursor_MacroDefinition;
}

static struct macro_ops read_macro_ops(CXCursor c)
{
    struct macro_ops m = {0};
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXCursor def;
    if (!macro_definition_of(c, &def))
        return m;
    /* A long definition holds more than the one operator asked about, and
     * reading it at each use would cost its length each time. */
    CXSourceRange extent = clang_getCursorExtent(def);
    unsigned from, to;
    clang_getSpellingLocation(clang_getRangeStart(extent), NULL, NULL, NULL, &from);
    clang_getSpellingLocation(clang_getRangeEnd(extent), NULL, NULL, NULL, &to);
    if (to < from || to - from > MACRO_BYTES_READ)
        return m;
    CXToken *toks;
    unsigned nt, i = 1; /* after the macro's name */
    clang_tokenize(tu, extent, &toks, &nt);
    if (clang_Cursor_isMacroFunctionLike(def)) { /* after its parameter list */
        while (i < nt && clang_getTokenKind(toks[i]) != CXToken_Punctuation)
            i++;
        for (int depth = 0; i < nt; i++) {
            CXString s = clang_getTokenSpelling(tu, toks[i]);
            const char *t = clang_getCString(s);
            depth += strcmp(t, "(") == 0 ? 1 : strcmp(t, ")") == 0 ? -1 : 0;
            clang_disposeString(s);
            if (depth == 0) {
                i++;
                break;
            }
        }
    }
    m.found = true;
    for (; i < nt; i++) {
        /* A call in the definition may be another macro, whose operators
         * are the ones written there: c may be one of them (the cursor at
         * c's start finds the outermost call). Nothing is read then. */
        if (clang_getTokenKind(toks[i]) == CXToken_Identifier && i + 1 < nt) {
            CXString id = clang_getTokenSpelling(tu, toks[i]);
            CXString n = clang_getTokenSpelling(tu, toks[i + 1]);
            /* likely() and unlikely() call __builtin_expect, no macro. */
            bool call = strcmp(clang_getCString(n), "(") == 0 &&
                        strncmp(clang_getCString(id), "__builtin_expect", 16) != 0;
            clang_disposeString(id);
            clang_disposeString(n);
            if (call) {
                m.found = false;
                break;
            }
        }
        if (clang_getTokenKind(toks[i]) != CXToken_Punctuation)
            continue;
        CXString s = clang_getTokenSpelling(tu, toks[i]);
        count_op(&m, clang_getCString(s));
        clang_disposeString(s);
    }
    clang_disposeTokens(tu, toks, nt);
    return m;
}

static void inferred_binary(CXCursor c, const struct kids *ks, char *buf, size_t size)
{
    CXType type = canonical_type(c), left = canonical_type(ks->v[0]);
    if (clang_getCursorKind(c) != CXCursor_BinaryOperator)
        return; /* a compound assignment: no rule asks which */
    if (unconverted_lvalue(ks->v[0]) && clang_equalTypes(type, left)) {
        snprintf(buf, size, "=");
        return;
    }
    if (type.kind != CXType_Int)
        return;
    /* An int made of a pointer operand is a comparison or && / ||: the
     * definition must hold no other of those. An int made of integers may
     * also be arithmetic: the definition must hold no operator at all but
     * the one comparison. */
    bool pointers = left.kind == CXType_Pointer || canonical_type(ks->v[1]).kind == CXType_Pointer;
    struct macro_ops m = macro_ops_of(c);
    if (m.found && m.equality == 1 && m.comparisons == 0 && (pointers || m.arithmetic == 0))
        snprintf(buf, size, "%s", m.last_equality);
}

static void inferred_unary(CXCursor c, CXCursor operand, char *buf, size_t size)
{
    CXType type = canonical_type(c), of = canonical_type(operand);
    CXType pointee = clang_getCanonicalType(clang_getPointeeType(of));
    if (type.kind == CXType_Pointer && unconverted_lvalue(operand) &&
        clang_equalTypes(clang_getCanonicalType(clang_getPointeeType(type)), of))
        snprintf(buf, size, "&");
    else if (of.kind == CXType_Pointer && clang_equalTypes(type, pointee))
        snprintf(buf, size, "*");
    else if (type.kind == CXType_Int && of.kind == CXType_Pointer)
        snprintf(buf, size, "!"); /* the only operator that makes an int of a pointer */
    else if (type.kind == CXType_Int) {
        struct macro_ops m = macro_ops_of(c);
        if (m.found && m.bang > 0 && m.other_prefix == 0)
            snprintf(buf, size, "!");
    }
}

const char *op_of(CXCursor c, char *buf, size_t size)
{
    buf[0] = 0;
    enum CXCursorKind k = clang_getCursorKind(c);
    bool binary = k == CXCursor_BinaryOperator || k == CXCursor_CompoundAssignOperator;
    if (!binary && k != CXCursor_UnaryOperator)
        return buf;
    struct kids ks = kids_of(c);
    if (ks.n == (binary ? 2u : 1u) && !written_operator(c, &ks, binary, offset_in, buf, size) &&
        !written_operator(c, &ks, binary, offset_in_argument, buf, size)) {
        buf[0] = 0;
        if (binary)
            inferred_binary(c, &ks, buf, size);
        else
            inferred_unary(c, ks.v[0], buf, size);
    }
    kids_free(&ks);
    return buf;
}
