/* SPDX-License-Identifier: MIT */
/*
 * The expression half of the CFG builder: calls (derivations, releases,
 * cctx_ref, hand-overs to threads, calls that never return), assignments to
 * and stores of context variables, and the conditions of branches, whose null
 * tests and pthread_create results decide what each branch knows, are
 * lowered in cfg_cond.c. The `unchecked` rule is reported here, where a
 * call's result is seen dropped.
 */
#include "cfg_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Of the words in range, the longest that begins name but is not all of it,
 * into shown (*best: its length so far). A long range (a macro whose
 * argument is a block of code) is not read: at each call it wrote, that
 * would cost its length. */
static void prefix_word(CXTranslationUnit tu, CXSourceRange range, const char *name, char *shown,
                        size_t size, size_t *best)
{
    CXToken *toks;
    unsigned nt, from, to;
    size_t len = strlen(name);
    clang_getSpellingLocation(clang_getRangeStart(range), NULL, NULL, NULL, &from);
    clang_getSpellingLocation(clang_getRangeEnd(range), NULL, NULL, NULL, &to);
    if (to < from || to - from > 256)
        return;
    clang_tokenize(tu, range, &toks, &nt);
    for (unsigned i = 0; i < nt; i++) {
        if (clang_getTokenKind(toks[i]) != CXToken_Identifier)
            continue;
        CXString t = clang_getTokenSpelling(tu, toks[i]);
        const char *word = clang_getCString(t);
        size_t n = strlen(word);
        if (n > *best && n < len && n < size && strncmp(name, word, n) == 0) {
            *best = n;
            snprintf(shown, size, "%s", word);
        }
        clang_disposeString(t);
    }
    clang_disposeTokens(tu, toks, nt);
}

/* The macro the user wrote for the cctx_ function `name` that the call c
 * calls, into shown: cctx_with_timeout and cctx_with_timeout_cause both call
 * cctx_with_timeout_cause_at. It is the longest word that begins name (and
 * is not all of it) in the macro call that wrote c, as written
 * (`CALL(cctx_with_timeout, ...)` too), or in that macro's definition (a
 * project's own macro names the one it calls). Unchanged when none. */
static void written_macro(CXCursor c, const char *name, char *shown, size_t size)
{
    /* Asked first: most calls (read, usleep) are no library's. */
    if (strncmp(name, "cctx_", 5) != 0)
        return;
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    /* Where the call is written: in a macro's argument (a derivation as
     * another's parent), the place of its own macro call, not the outer's. */
    CXFile file;
    unsigned off;
    clang_getFileLocation(clang_getRangeStart(clang_getCursorExtent(c)), &file, NULL, NULL, &off);
    CXCursor call =
        file ? macro_call_at(tu, clang_getLocationForOffset(tu, file, off)) : clang_getNullCursor();
    if (clang_getCursorKind(call) != CXCursor_MacroExpansion)
        return;
    size_t best = 0;
    prefix_word(tu, clang_getCursorExtent(call), name, shown, size, &best);
    CXCursor def = clang_getCursorReferenced(call);
    if (clang_getCursorKind(def) == CXCursor_MacroDefinition)
        prefix_word(tu, clang_getCursorExtent(def), name, shown, size, &best);
}

/* Names of calls kept in events point at static strings: the few the rules
 * name in messages. A derivation is named by the macro written for it, else
 * by its function without the `_at`. */
static const char *intern(CXCursor call, const char *name)
{
    static const char *const known[] = {
        "cctx_with_cancel",
        "cctx_with_deadline",
        "cctx_with_deadline_cause",
        "cctx_with_timeout",
        "cctx_with_timeout_cause",
        "cctx_with_value",
        "cctx_with_grace",
        "cctx_with_trace",
        "cctx_with_signals",
        "cctx_without_cancel",
        "cctx_ref",
        "cctx_background",
        "cctx_todo",
        NULL,
    };
    char shown[64];
    snprintf(shown, sizeof shown, "%s", name);
    written_macro(call, name, shown, sizeof shown);
    size_t n = strlen(shown);
    if (n > 3 && strcmp(shown + n - 3, "_at") == 0)
        shown[n - 3] = 0;
    for (int i = 0; known[i]; i++)
        if (strcmp(shown, known[i]) == 0)
            return known[i];
    if (strncmp(name, "cctx_with_", 10) == 0)
        return "a cctx_with_ call";
    const char *b = blocking_name(name);
    return b ? b : "a call";
}

int var_of(struct builder *b, CXCursor c)
{
    c = strip(c, true);
    if (clang_getCursorKind(c) != CXCursor_DeclRefExpr)
        return -1;
    return var_index(b->g, clang_getCursorReferenced(c));
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_derivation(const char *name)
{
    return starts(name, "cctx_with_") || starts(name, "cctx_without_cancel");
}

int handover_arg(const char *name)
{
    if (strcmp(name, "pthread_create") == 0)
        return 3;
    if (starts(name, "cctx_group_go"))
        return 2;
    return -1;
}

static void kids_expr(struct builder *b, CXCursor c, enum role role)
{
    struct kids ks = kids_of(c);
    for (unsigned i = 0; i < ks.n; i++)
        if (clang_isExpression(clang_getCursorKind(ks.v[i])))
            expr(b, ks.v[i], role, -1, false);
    kids_free(&ks);
}

/* The argument a of the call c (to name) is itself a derivation: the context
 * it makes has no name left to be released by, as a dropped one (`unchecked`).
 * The caller leaves out the arguments that take the reference over (a
 * thread's, cctx_release's). A derivation as another's parent is the same. */
static void passed_on(CXCursor c, const char *name, CXCursor a)
{
    CXCursor inner = strip(a, true);
    char inner_name[128], outer[128];
    if (clang_getCursorKind(inner) != CXCursor_CallExpr)
        return;
    callee_name(inner, inner_name, sizeof inner_name);
    if (!is_derivation(inner_name) || !is_ctx_ptr(clang_getCursorType(inner)))
        return;
    if (is_derivation(name)) {
        snprintf(outer, sizeof outer, "%s", intern(c, name));
    } else if (name[0]) {
        snprintf(outer, sizeof outer, "%s", name);
        size_t n = strlen(outer); /* cctx_sleep_at is written cctx_sleep */
        if (strncmp(outer, "cctx_", 5) == 0 && n > 3 && strcmp(outer + n - 3, "_at") == 0)
            outer[n - 3] = 0;
    } else {
        snprintf(outer, sizeof outer, "a call through a pointer");
    }
    report(R_UNCHECKED, written_loc(inner),
           "the context made by %s is passed straight to %s and never released (keep it in a "
           "variable, and release it after the call)",
           intern(inner, inner_name), outer);
}

void tested_only(CXCursor a)
{
    CXCursor inner = strip(a, true);
    char name[128];
    if (clang_getCursorKind(inner) != CXCursor_CallExpr)
        return;
    callee_name(inner, name, sizeof name);
    if (!is_derivation(name) || !is_ctx_ptr(clang_getCursorType(inner)))
        return;
    report(R_UNCHECKED, written_loc(inner),
           "the context made by %s is only tested, and never released (assign it to a "
           "variable, test that, and release it)",
           intern(inner, name));
}

/* The tracked variable x of an argument written cctx_ref(x) (casts
 * aside), or -1. */
static int ref_argument(struct builder *b, CXCursor a)
{
    CXCursor in = strip(a, true);
    char inner[64];
    if (clang_getCursorKind(in) != CXCursor_CallExpr || clang_Cursor_getNumArguments(in) != 1)
        return -1;
    callee_name(in, inner, sizeof inner);
    return strcmp(inner, "cctx_ref") == 0 ? var_of(b, clang_Cursor_getArgument(in, 0)) : -1;
}

/* A call. Returns true when it defined target (a derivation or a cctx_ref
 * whose result is assigned to a tracked variable). */
static bool call(struct builder *b, CXCursor c, enum role role, int target, bool voided)
{
    char name[128];
    callee_name(c, name, sizeof name);
    struct loc at = cursor_loc(c);
    bool release = strcmp(name, "cctx_release_at") == 0;
    bool ref = strcmp(name, "cctx_ref") == 0;
    int hand = handover_arg(name);
    int nargs = clang_Cursor_getNumArguments(c);
    if (!name[0]) { /* a call through a pointer: the pointer is an operand too */
        /* Only the callee, the first child: the other children are the
         * arguments, lowered once below (their events, twice, made a
         * definition overwrite itself). */
        struct kids ks = kids_of(c);
        if (ks.n && clang_isExpression(clang_getCursorKind(ks.v[0])))
            expr(b, ks.v[0], ROLE_OTHER, -1, false);
        kids_free(&ks);
    }
    int released = -1;
    for (int i = 0; i < nargs; i++) {
        CXCursor a = clang_Cursor_getArgument(c, (unsigned)i);
        int v = var_of(b, a);
        if (v < 0) {
            if (i != hand && !(release && i == 0))
                passed_on(c, name, a);
            expr(b, a, ROLE_OTHER, -1, false);
            /* A thread handed cctx_ref(x): one more reference on x, which
             * goes with the thread as x itself would; on a failure branch
             * (the hand-over deferred to the success) it is still owed. */
            int w = i == hand ? ref_argument(b, a) : -1;
            if (w >= 0) {
                emit(b, EV_REF, w, at, NULL);
                if (b->defer && b->ndeferred < 8)
                    b->deferred[b->ndeferred++] = (struct event){EV_HANDOVER, w, at, NULL};
                else
                    emit(b, EV_HANDOVER, w, at, NULL);
            }
        } else if (release && i == 0) {
            released = v; /* after the other arguments, which may read it */
        } else if (i == hand) {
            if (b->defer && b->ndeferred < 8)
                b->deferred[b->ndeferred++] = (struct event){EV_HANDOVER, v, at, NULL};
            else
                emit(b, EV_HANDOVER, v, at, NULL);
        } else if (ref && i == 0 && role == ROLE_DISCARD) {
            emit(b, EV_REF, v, at, NULL);
        } else {
            emit(b, EV_USE, v, at, NULL);
        }
    }
    if (released >= 0)
        emit(b, EV_RELEASE, released, at, NULL);
    if (strcmp(name, "cctx_background") == 0 || strcmp(name, "cctx_todo") == 0)
        emit(b, EV_BACKGROUND, -1, at, intern(c, name));
    if (blocking_replacement(name) && callee_in_system_header(c))
        emit(b, EV_BLOCKING, -1, at, intern(c, name));
    bool derives = is_derivation(name) && is_ctx_ptr(clang_getCursorType(c));
    bool defined = false;
    /* `c = cctx_ref(c)` keeps the reference c holds and adds one: no new
     * context overwrites the old one. */
    bool ref_of_itself =
        ref && nargs >= 1 && target >= 0 && var_of(b, clang_Cursor_getArgument(c, 0)) == target;
    if (ref_of_itself && role == ROLE_ASSIGN) {
        emit(b, EV_REF, target, at, NULL);
        defined = true;
    } else if ((derives || ref) && role == ROLE_ASSIGN && target >= 0) {
        emit(b, EV_DEF, target, at, intern(c, name));
        defined = true;
    }
    /* cctx_wait expands to its inline fast path, cctx__wait_inline. */
    bool waits = strcmp(name, "cctx_wait_at") == 0 || strcmp(name, "cctx__wait_inline") == 0;
    if (role == ROLE_DISCARD && !voided &&
        (derives || waits || strcmp(name, "cctx_wait_any_at") == 0)) {
        const char *shown = derives ? intern(c, name) : waits ? "cctx_wait" : "cctx_wait_any";
        if (derives)
            report(R_UNCHECKED, at,
                   "the context made by %s is dropped: it can never be released (assign it, "
                   "or cast to (void) if that is meant)",
                   shown);
        else
            report(R_UNCHECKED, at,
                   "the result of %s is ignored: it tells whether the context ended (cast "
                   "to (void) if that is meant)",
                   shown);
    }
    if (name[0] && !b->maybe_skipped && callee_noreturn(c, name))
        emit(b, EV_NORETURN, -1, at, NULL);
    return defined;
}

/* The tracked variable that the assignment e assigns (b in a = b = ...),
 * or -1. */
static int assigned_var(struct builder *b, CXCursor e)
{
    CXCursor s = strip(e, true);
    char op[8];
    if (clang_getCursorKind(s) != CXCursor_BinaryOperator || strcmp(op_of(s, op, sizeof op), "="))
        return -1;
    struct kids ks = kids_of(s);
    int w = ks.n == 2 ? var_of(b, ks.v[0]) : -1;
    kids_free(&ks);
    return w;
}

/* An alias: the reference now has two names; follow neither. v's old value
 * is overwritten, not read: no use after its release, and a leak if a
 * reference to it was still owed. */
static void alias(struct builder *b, int v, int w, struct loc at)
{
    emit(b, EV_ESCAPE, w, at, NULL);
    emit(b, EV_BORROW, v, at, NULL);
    emit(b, EV_ESCAPE, v, at, NULL);
}

void assign_var(struct builder *b, int v, CXCursor rhs, struct loc at)
{
    if (is_null_const(rhs)) {
        emit(b, EV_NULL, v, at, NULL);
        return;
    }
    int w = var_of(b, rhs);
    if (w >= 0) {
        alias(b, v, w, at);
        return;
    }
    if (expr(b, rhs, ROLE_ASSIGN, v, false))
        return;
    /* v = w = ...: w is assigned first (just lowered), then v aliases it. */
    w = assigned_var(b, rhs);
    if (w >= 0 && w != v)
        alias(b, v, w, at);
    else
        emit(b, EV_BORROW, v, at, NULL);
}

/* lhs is `*p` for a parameter p: a value stored there goes to the caller. */
static bool through_parameter(CXCursor lhs)
{
    CXCursor s = strip(lhs, false);
    char op[8];
    if (clang_getCursorKind(s) != CXCursor_UnaryOperator || strcmp(op_of(s, op, sizeof op), "*"))
        return false;
    struct kids ks = kids_of(s);
    CXCursor p = ks.n == 1 ? strip(ks.v[0], true) : clang_getNullCursor();
    kids_free(&ks);
    return clang_getCursorKind(p) == CXCursor_DeclRefExpr &&
           clang_getCursorKind(clang_getCursorReferenced(p)) == CXCursor_ParmDecl;
}

bool stores(enum role role)
{
    return role == ROLE_STORE || role == ROLE_RETURN || role == ROLE_OUT;
}

void kept(struct builder *b, int v, enum role role, struct loc at)
{
    /* A store anywhere else (a field, a global) may be taken back before
     * the scope ends: only the caller's reference is known to stay. */
    if (b->g->vars[v].autorel && role == ROLE_RETURN && b->returns_pointer)
        emit(b, EV_HANDOVER, v, at, "returned");
    else if (b->g->vars[v].autorel && role == ROLE_RETURN)
        emit(b, EV_USE, v, at, NULL); /* only read: its cleanup is its release */
    else if (b->g->vars[v].autorel && role == ROLE_OUT)
        emit(b, EV_HANDOVER, v, at, VET_STORED_FOR_THE_CALLER);
    else
        emit(b, EV_ESCAPE, v, at, NULL);
}

static void assign(struct builder *b, CXCursor lhs, CXCursor rhs, struct loc at)
{
    int v = var_of(b, lhs);
    if (v >= 0) {
        assign_var(b, v, rhs, at);
        return;
    }
    /* A store anywhere else (a field, a global, through a pointer, an array
     * element) keeps the context beyond what this function can see; through
     * an out-parameter, the caller gets it. */
    expr(b, lhs, ROLE_OTHER, -1, false);
    enum role role = through_parameter(lhs) ? ROLE_OUT : ROLE_STORE;
    int w = var_of(b, rhs);
    if (w >= 0)
        kept(b, w, role, at);
    else
        expr(b, rhs, role, -1, false);
}

/* The operands of `&&` and `||` (op), the right one on the branch where the
 * left did not decide the value. An operator a macro wrote may be one of
 * them yet cannot be told (op ""): its right operand is lowered in line,
 * but a call there that never returns ends no path. */
static void short_circuit(struct builder *b, CXCursor s, const char *op)
{
    struct kids ks = kids_of(s);
    if (ks.n != 2) {
        kids_free(&ks);
        kids_expr(b, s, ROLE_OTHER);
        return;
    }
    if (!op[0]) {
        expr(b, ks.v[0], ROLE_OTHER, -1, false);
        b->maybe_skipped++;
        expr(b, ks.v[1], ROLE_OTHER, -1, false);
        b->maybe_skipped--;
    } else {
        bool is_and = op[0] == '&';
        int t, f, join;
        branch(b, ks.v[0], &t, &f);
        join = new_node(b->g);
        b->cur = is_and ? t : f;
        expr(b, ks.v[1], ROLE_OTHER, -1, false);
        edge(b->g, b->cur, join);
        edge(b->g, is_and ? f : t, join);
        b->cur = join;
    }
    kids_free(&ks);
}

/* The value of one arm of `?:`, with the role of the whole. For an
 * assignment each arm is assigned on its own branch. */
static void arm(struct builder *b, CXCursor value, enum role role, int target, bool voided,
                struct loc at)
{
    if (role == ROLE_ASSIGN && target >= 0)
        assign_var(b, target, value, at);
    else if (stores(role) && var_of(b, value) >= 0)
        kept(b, var_of(b, value), role, cursor_loc(value));
    else
        expr(b, value, role, target, voided);
}

/* `a, b`: a's value is dropped (a derivation there is `unchecked`), b's is
 * the whole's. */
static bool comma(struct builder *b, CXCursor s, enum role role, int target, bool voided)
{
    struct kids ks = kids_of(s);
    bool two = ks.n == 2;
    if (two) {
        expr(b, ks.v[0], ROLE_DISCARD, -1, false);
        arm(b, ks.v[1], role, target, voided, cursor_loc(s));
    }
    kids_free(&ks);
    return two && role == ROLE_ASSIGN && target >= 0; /* arm assigned it */
}

/* GNU's `a ?: b` whose a is a context but no tracked variable (a
 * derivation, `cctx_with_cancel(p, NULL) ?: fallback`): a's value is the
 * whole's where it is not NULL, so a is lowered with the whole's role
 * (assigned, dropped, stored); where it is NULL, b is the value. */
static bool elvis(struct builder *b, CXCursor s, CXCursor a, CXCursor no, enum role role,
                  int target, bool voided)
{
    struct loc at = cursor_loc(s);
    bool assigned = role == ROLE_ASSIGN && target >= 0;
    bool defined = expr(b, a, role, target, voided);
    if (assigned && !defined)
        emit(b, EV_BORROW, target, at, NULL);
    if (b->cur < 0)
        b->cur = new_node(b->g);
    int is_null = new_node(b->g), join = new_node(b->g);
    edge(b->g, b->cur, join);
    edge(b->g, b->cur, is_null);
    b->cur = is_null;
    if (defined)
        emit(b, EV_NULL, target, at, NULL);
    arm(b, no, role, target, voided, at);
    edge(b->g, b->cur, join);
    b->cur = join;
    return assigned;
}

/* cond ? yes : no, each arm on its own branch; GNU's `cond ?: no` (yes null)
 * has the condition's value as its first arm. Returns true when it defined
 * target (every arm assigned it). */
static bool conditional(struct builder *b, CXCursor s, CXCursor cond, CXCursor yes, CXCursor no,
                        enum role role, int target, bool voided)
{
    struct loc at = cursor_loc(s);
    int t, f, join;
    branch(b, cond, &t, &f);
    join = new_node(b->g);
    b->cur = t;
    if (!clang_Cursor_isNull(yes))
        arm(b, yes, role, target, voided, at);
    else if (var_of(b, cond) >= 0 && (stores(role) || (role == ROLE_ASSIGN && target >= 0)))
        arm(b, cond, role, target, voided, at); /* the condition's value, read again */
    else if (role == ROLE_ASSIGN && target >= 0)
        emit(b, EV_BORROW, target, at, NULL);
    edge(b->g, b->cur, join);
    b->cur = f;
    arm(b, no, role, target, voided, at);
    edge(b->g, b->cur, join);
    b->cur = join;
    return role == ROLE_ASSIGN && target >= 0;
}

static bool lower_expr(struct builder *b, CXCursor c, enum role role, int target, bool voided);

bool expr(struct builder *b, CXCursor c, enum role role, int target, bool voided)
{
    if (!deeper(b))
        return false;
    bool defined = lower_expr(b, c, role, target, voided);
    b->depth--;
    return defined;
}

static bool lower_expr(struct builder *b, CXCursor c, enum role role, int target, bool voided)
{
    CXCursor s = strip(c, false);
    enum CXCursorKind k = clang_getCursorKind(s);
    char op[8];
    if (k == CXCursor_CStyleCastExpr) {
        bool to_void = clang_getCursorType(s).kind == CXType_Void;
        struct kids ks = kids_of(s);
        bool r = ks.n ? expr(b, ks.v[ks.n - 1], role, target, voided || to_void) : false;
        kids_free(&ks);
        return r;
    }
    switch (k) {
    case CXCursor_DeclRefExpr: {
        int v = var_of(b, s);
        if (v >= 0 && stores(role))
            kept(b, v, role, cursor_loc(s));
        else if (v >= 0)
            emit(b, EV_USE, v, cursor_loc(s), NULL);
        return false;
    }
    case CXCursor_CallExpr:
        return call(b, s, role, target, voided);
    case CXCursor_BinaryOperator:
        if (strcmp(op_of(s, op, sizeof op), "=") == 0) {
            struct kids ks = kids_of(s);
            if (ks.n == 2)
                assign(b, ks.v[0], ks.v[1], cursor_loc(s));
            kids_free(&ks);
            return false;
        }
        if (clang_getCanonicalType(clang_getCursorType(s)).kind != CXType_Pointer &&
            strcmp(op, ",") != 0) {
            /* A comparison, `&&`, `||` (or an operator a macro wrote, which
             * cannot be told from them): the value keeps no pointer. */
            struct kids ks = kids_of(s);
            for (unsigned i = 0; i < ks.n; i++)
                tested_only(ks.v[i]);
            kids_free(&ks);
        }
        if (strcmp(op, "&&") == 0 || strcmp(op, "||") == 0 ||
            (!op[0] && clang_getCanonicalType(clang_getCursorType(s)).kind == CXType_Int)) {
            short_circuit(b, s, op);
            return false;
        }
        if (strcmp(op, ",") == 0)
            return comma(b, s, role, target, voided);
        break;
    case CXCursor_ConditionalOperator: {
        struct kids ks = kids_of(s);
        bool r = false;
        if (ks.n == 3)
            r = conditional(b, s, ks.v[0], ks.v[1], ks.v[2], role, target, voided);
        else
            kids_expr(b, s, ROLE_OTHER);
        kids_free(&ks);
        return r;
    }
    case CXCursor_UnexposedExpr:
        if (is_binary_conditional(s)) {
            struct kids ks = kids_of(s);
            bool r = var_of(b, ks.v[0]) < 0 && is_ctx_ptr(clang_getCursorType(ks.v[0]))
                         ? elvis(b, s, ks.v[0], ks.v[3], role, target, voided)
                         : conditional(b, s, ks.v[0], clang_getNullCursor(), ks.v[3], role, target,
                                       voided);
            kids_free(&ks);
            return r;
        }
        /* Several operands (strip stops here): an atomic store or exchange
         * keeps its value elsewhere, so a variable among them escapes, as
         * in an initializer list. */
        kids_expr(b, s, ROLE_STORE);
        return false;
    case CXCursor_UnaryExpr:
        return false; /* sizeof and _Alignof do not evaluate their operand */
    case CXCursor_UnaryOperator:
        if (strcmp(op_of(s, op, sizeof op), "&") == 0) {
            struct kids ks = kids_of(s);
            int v = ks.n ? var_of(b, ks.v[0]) : -1;
            kids_free(&ks);
            if (v >= 0) {
                /* The variable's address: nothing of the context is read
                 * (memset(&c, ...), or a call that makes c anew). */
                emit(b, EV_ESCAPE, v, cursor_loc(s), ESCAPE_ADDRESS);
                return false;
            }
        } else if (strcmp(op, "!") == 0) {
            struct kids ks = kids_of(s);
            if (ks.n == 1)
                tested_only(ks.v[0]);
            kids_free(&ks);
        }
        break;
    case CXCursor_InitListExpr:
        kids_expr(b, s, ROLE_STORE);
        return false;
    case CXCursor_StmtExpr: {
        struct kids ks = kids_of(s);
        bool r = ks.n ? statement_expr(b, ks.v[0], role, target, voided) : false;
        kids_free(&ks);
        return r;
    }
    default:
        break;
    }
    kids_expr(b, s, ROLE_OTHER);
    return false;
}
