/* SPDX-License-Identifier: MIT */
/*
 * The rules that need no paths: blocking in a function that has a context
 * parameter (noctx), ctxfirst, and field (containedctx). Each looks at
 * declarations and calls only. (background, contextcheck's, is a path rule:
 * a parameter that is NULL where the root is made is given a default.)
 */
#include "vet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const blocking[][2] = {
    {"read", "cctx_read"},
    {"write", "cctx_write"},
    {"recv", "cctx_recv"},
    {"send", "cctx_send"},
    {"accept", "cctx_accept"},
    {"accept4", "cctx_accept"},
    {"connect", "cctx_connect"},
    {"poll", "cctx_poll"},
    {"sleep", "cctx_sleep"},
    {"usleep", "cctx_sleep"},
    {"nanosleep", "cctx_sleep"},
    {"pthread_cond_wait", "cctx_cond_wait"},
    {"pthread_mutex_lock", "cctx_mutex_lock"},
    {"sem_wait", "cctx_sem_wait"},
    {"pthread_join", "cctx_thread_join"},
    {"curl_easy_perform", "cctx_curl_perform"},
};

const char *blocking_name(const char *name)
{
    for (size_t i = 0; i < sizeof blocking / sizeof blocking[0]; i++)
        if (strcmp(name, blocking[i][0]) == 0)
            return blocking[i][0];
    return NULL;
}

const char *blocking_replacement(const char *name)
{
    for (size_t i = 0; i < sizeof blocking / sizeof blocking[0]; i++)
        if (strcmp(name, blocking[i][0]) == 0)
            return blocking[i][1];
    return NULL;
}

struct fnctx {
    char fname[128];
    char param[64]; /* the first context parameter */
};

static enum CXChildVisitResult calls(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    const struct fnctx *f = data;
    if (clang_getCursorKind(c) == CXCursor_UnaryExpr)
        return CXChildVisit_Continue; /* sizeof and _Alignof do not evaluate their operand */
    if (clang_getCursorKind(c) != CXCursor_CallExpr)
        return CXChildVisit_Recurse;
    char name[128];
    callee_name(c, name, sizeof name);
    const char *repl = blocking_replacement(name);
    if (repl && callee_in_system_header(c))
        report(R_BLOCKING, cursor_loc(c),
               "%s() blocks without listening to the context %s: use %s(%s, ...)", name,
               f->param, repl, f->param);
    return CXChildVisit_Recurse;
}

void check_function(CXCursor fn)
{
    struct fnctx f = {{0}, {0}};
    CXString s = clang_getCursorSpelling(fn);
    copy_name(f.fname, sizeof f.fname, clang_getCString(s));
    clang_disposeString(s);
    int n = clang_Cursor_getNumArguments(fn);
    bool canonical = clang_equalCursors(fn, clang_getCanonicalCursor(fn));
    for (int i = 0; i < n; i++) {
        CXCursor p = clang_Cursor_getArgument(fn, (unsigned)i);
        if (!is_ctx_ptr(clang_getCursorType(p)))
            continue;
        CXString ps = clang_getCursorSpelling(p);
        if (!f.param[0])
            copy_name(f.param, sizeof f.param,
                      clang_getCString(ps)[0] ? clang_getCString(ps) : "(unnamed)");
        if (i > 0 && canonical)
            report(R_CTXFIRST, cursor_loc(p),
                   "the context parameter %s of %s should come first, as everywhere else",
                   clang_getCString(ps)[0] ? clang_getCString(ps) : "(unnamed)", f.fname);
        clang_disposeString(ps);
    }
    if (f.param[0] && clang_isCursorDefinition(fn))
        clang_visitChildren(fn, calls, &f);
}

/* ---- field ---------------------------------------------------------------- */

struct fields {
    CXCursor *exempt; /* struct declarations handed to threads or after-functions */
    int nexempt, capexempt;
    CXCursor *cand; /* context fields */
    int ncand, capcand;
};

static void push(CXCursor **v, int *n, int *cap, CXCursor c)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = realloc(*v, (size_t)*cap * sizeof **v);
        if (!*v)
            abort();
    }
    (*v)[(*n)++] = c;
}

/* The argument that a thread or an after-function receives. */
static int arg_index(const char *name)
{
    if (strcmp(name, "pthread_create") == 0 || strcmp(name, "cctx_after_func_at") == 0)
        return 3;
    if (strcmp(name, "cctx_group_go_at") == 0)
        return 2;
    return -1;
}

/* A context, or an array of them (`cctx_t *workers[4]`, of any rank). */
static bool holds_ctx(CXType t)
{
    t = clang_getCanonicalType(t);
    while (t.kind == CXType_ConstantArray || t.kind == CXType_IncompleteArray ||
           t.kind == CXType_VariableArray)
        t = clang_getCanonicalType(clang_getArrayElementType(t));
    return is_ctx_ptr(t);
}

static enum CXChildVisitResult scan(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct fields *f = data;
    enum CXCursorKind k = clang_getCursorKind(c);
    if (k == CXCursor_FieldDecl && in_main_file(c) && holds_ctx(clang_getCursorType(c))) {
        push(&f->cand, &f->ncand, &f->capcand, c);
    } else if (k == CXCursor_CallExpr) {
        char name[128];
        callee_name(c, name, sizeof name);
        int i = arg_index(name);
        if (i >= 0 && i < clang_Cursor_getNumArguments(c)) {
            CXCursor a = strip(clang_Cursor_getArgument(c, (unsigned)i), true);
            CXType t = clang_getCanonicalType(clang_getCursorType(a));
            if (t.kind == CXType_Pointer) {
                CXCursor d = clang_getTypeDeclaration(clang_getCanonicalType(clang_getPointeeType(t)));
                if (!clang_Cursor_isNull(d))
                    push(&f->exempt, &f->nexempt, &f->capexempt, clang_getCanonicalCursor(d));
            }
        }
    }
    return CXChildVisit_Recurse;
}

/* The record's name as clang spells it, but an anonymous one's place with
 * its file's base name: clang writes the whole path ("struct a::(unnamed at
 * /home/u/src/a.c:10:5)"), which depends on where the build is. Free it. */
static char *record_name(CXCursor rec)
{
    static const char *const marks[] = {"(unnamed at ", "(anonymous at ", NULL};
    CXString s = clang_getTypeSpelling(clang_getCursorType(rec));
    char *name = strdup(clang_getCString(s));
    clang_disposeString(s);
    if (!name)
        abort();
    for (int m = 0; marks[m]; m++)
        for (char *p = strstr(name, marks[m]); p; p = strstr(p, marks[m])) {
            char *path = p + strlen(marks[m]), *close = strchr(path, ')'), *base = path;
            for (char *q = path; close && q < close; q++)
                if (*q == '/')
                    base = q + 1;
            memmove(path, base, strlen(base) + 1);
            p = path;
        }
    return name;
}

/* The record is handed to a thread or an after-function, or is written
 * inside one that is (`struct outer { struct { cctx_t *ctx; } inner; }`):
 * the struct handed over carries the nested one's fields with it. The
 * lexical parent, as C gives a named nested struct the file's scope. */
static bool exempt_record(const struct fields *f, CXCursor rec)
{
    for (; clang_getCursorKind(rec) == CXCursor_StructDecl ||
           clang_getCursorKind(rec) == CXCursor_UnionDecl;
         rec = clang_getCursorLexicalParent(rec)) {
        CXCursor canon = clang_getCanonicalCursor(rec);
        for (int j = 0; j < f->nexempt; j++)
            if (clang_equalCursors(canon, f->exempt[j]))
                return true;
    }
    return false;
}

void check_fields(CXTranslationUnit tu)
{
    if (!rule_on[R_FIELD])
        return;
    struct fields f = {0};
    clang_visitChildren(clang_getTranslationUnitCursor(tu), scan, &f);
    for (int i = 0; i < f.ncand; i++) {
        CXCursor rec = clang_getCursorSemanticParent(f.cand[i]);
        if (exempt_record(&f, rec))
            continue;
        char *rname = record_name(rec);
        CXString fs = clang_getCursorSpelling(f.cand[i]);
        report(R_FIELD, cursor_loc(f.cand[i]),
               "%s keeps a context in the field %s: pass the context as the first parameter "
               "instead (a stored context outlives the call it belongs to)",
               rname, clang_getCString(fs));
        free(rname);
        clang_disposeString(fs);
    }
    free(f.exempt);
    free(f.cand);
}
