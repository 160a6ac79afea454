/* SPDX-License-Identifier: MIT */
/*
 * The macro call that starts at a place. clang_getCursor answers it, but
 * walks the function's tree to the place each time it is asked: asked for
 * every derivation of a function, that is quadratic in their number (4,000
 * in one function took many seconds). The translation unit's macro calls are
 * listed once instead, sorted by where they are written, and each question
 * is a binary search.
 */
#include "vet.h"

#include <stdint.h>
#include <stdlib.h>

struct expansion {
    CXFile file;
    unsigned from, to; /* the call's text, [from, to) in file */
    CXCursor cursor;
};

static struct {
    CXTranslationUnit tu;
    struct expansion *v;
    size_t n, cap;
} calls;

static enum CXChildVisitResult collect(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    (void)data;
    if (clang_getCursorKind(c) != CXCursor_MacroExpansion)
        return CXChildVisit_Continue;
    CXSourceRange r = clang_getCursorExtent(c);
    struct expansion e = {.cursor = c};
    clang_getFileLocation(clang_getRangeStart(r), &e.file, NULL, NULL, &e.from);
    clang_getFileLocation(clang_getRangeEnd(r), NULL, NULL, NULL, &e.to);
    if (!e.file)
        return CXChildVisit_Continue;
    if (calls.n == calls.cap) {
        calls.cap = calls.cap ? 2 * calls.cap : 256;
        calls.v = realloc(calls.v, calls.cap * sizeof *calls.v);
        if (!calls.v)
            abort();
    }
    calls.v[calls.n++] = e;
    return CXChildVisit_Continue;
}

/* By file, then start. Two calls start together when an object-like macro
 * names a function-like one (`#define W cctx_with_cancel`, `W(p, NULL)`):
 * the shorter, the one written, last, as the search below takes the last. */
static int by_place(const void *pa, const void *pb)
{
    const struct expansion *a = pa, *b = pb;
    if (a->file != b->file)
        return (uintptr_t)a->file < (uintptr_t)b->file ? -1 : 1;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    return a->to > b->to ? -1 : a->to < b->to;
}

CXCursor macro_call_at(CXTranslationUnit tu, CXSourceLocation l)
{
    CXFile file;
    unsigned off;
    clang_getFileLocation(l, &file, NULL, NULL, &off);
    if (!file)
        return clang_getNullCursor();
    if (calls.tu != tu) {
        expansions_forget();
        calls.tu = tu;
        clang_visitChildren(clang_getTranslationUnitCursor(tu), collect, NULL);
        if (calls.n) /* none: calls.v is NULL, which qsort may not take */
            qsort(calls.v, calls.n, sizeof *calls.v, by_place);
    }
    /* The last call that starts at or before off: the one asked for when
     * it starts at off. A place inside a call's arguments is a token the
     * user wrote there, no macro's (clang_getCursor finds the expression). */
    size_t lo = 0, hi = calls.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct expansion *e = &calls.v[mid];
        if ((uintptr_t)e->file < (uintptr_t)file || (e->file == file && e->from <= off))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || calls.v[lo - 1].file != file || calls.v[lo - 1].from != off)
        return clang_getNullCursor();
    return calls.v[lo - 1].cursor;
}

void expansions_forget(void)
{
    free(calls.v);
    calls.v = NULL;
    calls.n = calls.cap = 0;
    calls.tu = NULL;
}
