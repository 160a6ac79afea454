/* SPDX-License-Identifier: MIT */
/*
 * Lowers a function body into a small control-flow graph whose nodes hold the
 * events that matter to a context's reference count (vet.h: enum ev_kind).
 * libclang has no CFG API, so this walks the statements: if/else, the three
 * loops with break and continue, switch with case fall-through, goto and
 * labels, return, and calls that never return. CCTX_AUTO's cleanup becomes
 * an explicit event wherever its scope is left (block end, break, continue,
 * return). A branch on a null test of a context (`if (!c)`, `c == NULL`)
 * carries the fact that the context is NULL there, so the usual error check
 * after a derivation is not a leak; a branch on the result of pthread_create
 * hands the context over only on the success side.
 * The `unchecked` rule is reported here, where statements are seen whole.
 */
#include "vet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXSTACK 256

struct label {
    char name[64];
    int node;
};

struct builder {
    struct cfg *g;
    int cur; /* the node events go to; -1 after a jump (unreachable) */
    /* break and continue targets, with the depth of open CCTX_AUTO variables
     * at the loop, whose cleanups a jump out of the loop body runs */
    int brk[MAXSTACK], cont[MAXSTACK], loop_autos[MAXSTACK];
    int nloops;
    int autos[MAXSTACK]; /* CCTX_AUTO variables of the open blocks */
    int nautos;
    struct label *labels;
    int nlabels;
    struct { int node; char name[64]; } *gotos;
    int ngotos;
    int sw;        /* the node of the innermost switch, -1 outside */
    bool sw_default;
    bool defer;    /* hand-overs in a condition wait for the success branch */
    struct event deferred[8];
    int ndeferred;
};

enum role { ROLE_OTHER, ROLE_DISCARD, ROLE_ASSIGN, ROLE_STORE };

static void *grow(void *p, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return p;
    *cap = *cap ? 2 * *cap : 8;
    if (*cap < need)
        *cap = need;
    p = realloc(p, (size_t)*cap * size);
    if (!p)
        abort();
    return p;
}

static int new_node(struct cfg *g)
{
    g->nodes = grow(g->nodes, &g->cap, g->n + 1, sizeof *g->nodes);
    memset(&g->nodes[g->n], 0, sizeof g->nodes[0]);
    return g->n++;
}

static void edge(struct cfg *g, int from, int to)
{
    if (from < 0 || to < 0)
        return;
    struct node *n = &g->nodes[from];
    n->succ = grow(n->succ, &n->capsucc, n->nsucc + 1, sizeof *n->succ);
    n->succ[n->nsucc++] = to;
}

static void emit_at(struct cfg *g, int node, enum ev_kind k, int var, struct loc at,
                    const char *what)
{
    struct node *n = &g->nodes[node];
    n->ev = grow(n->ev, &n->capev, n->nev + 1, sizeof *n->ev);
    n->ev[n->nev++] = (struct event){k, var, at, what};
}

static void emit(struct builder *b, enum ev_kind k, int var, struct loc at, const char *what)
{
    if (b->cur < 0)
        b->cur = new_node(b->g); /* unreachable code still gets its events */
    emit_at(b->g, b->cur, k, var, at, what);
}

/* Names of calls kept in events point at static strings: the few the rules
 * name in messages. */
static const char *intern(const char *name)
{
    static const char *const known[] = {
        "cctx_with_cancel", "cctx_with_deadline", "cctx_with_timeout", "cctx_with_value",
        "cctx_without_cancel", "cctx_ref", "cctx_background", "cctx_todo", NULL,
    };
    for (int i = 0; known[i]; i++)
        if (strncmp(name, known[i], strlen(known[i])) == 0)
            return known[i];
    if (strncmp(name, "cctx_with_", 10) == 0)
        return "a cctx_with_ call";
    const char *b = blocking_name(name);
    return b ? b : "a call";
}

static int var_of(struct builder *b, CXCursor c)
{
    c = strip(c, true);
    if (clang_getCursorKind(c) != CXCursor_DeclRefExpr)
        return -1;
    CXCursor d = clang_getCursorReferenced(c);
    for (int i = 0; i < b->g->nvars; i++)
        if (clang_equalCursors(d, b->g->vars[i].decl))
            return i;
    return -1;
}

static int add_var(struct cfg *g, CXCursor decl, bool param, bool autorel)
{
    for (int i = 0; i < g->nvars; i++)
        if (clang_equalCursors(decl, g->vars[i].decl))
            return i;
    g->vars = grow(g->vars, &g->capvars, g->nvars + 1, sizeof *g->vars);
    struct var *v = &g->vars[g->nvars];
    memset(v, 0, sizeof *v);
    v->decl = decl;
    v->param = param;
    v->autorel = autorel;
    v->at = cursor_loc(decl);
    CXString s = clang_getCursorSpelling(decl);
    snprintf(v->name, sizeof v->name, "%s", clang_getCString(s));
    clang_disposeString(s);
    return g->nvars++;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_derivation(const char *name)
{
    return starts(name, "cctx_with_") || starts(name, "cctx_without_cancel");
}

/* The argument of a call that takes over a reference: the thread's argument. */
static int handover_arg(const char *name)
{
    if (strcmp(name, "pthread_create") == 0)
        return 3;
    if (starts(name, "cctx_group_go"))
        return 2;
    return -1;
}

static bool expr(struct builder *b, CXCursor c, enum role role, int target, bool voided);

static void kids_expr(struct builder *b, CXCursor c, enum role role)
{
    struct kids ks = kids_of(c);
    for (unsigned i = 0; i < ks.n; i++)
        if (clang_isExpression(clang_getCursorKind(ks.v[i])))
            expr(b, ks.v[i], role, -1, false);
    kids_free(&ks);
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
    if (!name[0]) /* a call through a pointer: the pointer is an operand too */
        kids_expr(b, c, ROLE_OTHER);
    int released = -1;
    for (int i = 0; i < nargs; i++) {
        CXCursor a = clang_Cursor_getArgument(c, (unsigned)i);
        int v = var_of(b, a);
        if (v < 0) {
            expr(b, a, ROLE_OTHER, -1, false);
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
        emit(b, EV_BACKGROUND, -1, at, intern(name));
    if (blocking_replacement(name))
        emit(b, EV_BLOCKING, -1, at, intern(name));
    bool derives = is_derivation(name) && is_ctx_ptr(clang_getCursorType(c));
    bool defined = false;
    if ((derives || ref) && role == ROLE_ASSIGN && target >= 0) {
        emit(b, EV_DEF, target, at, intern(name));
        defined = true;
    }
    /* cctx_wait expands to its inline fast path, cctx__wait_inline. */
    bool waits = strcmp(name, "cctx_wait_at") == 0 || strcmp(name, "cctx__wait_inline") == 0;
    if (role == ROLE_DISCARD && !voided &&
        (derives || waits || strcmp(name, "cctx_wait_any_at") == 0)) {
        const char *shown = derives ? intern(name) : waits ? "cctx_wait" : "cctx_wait_any";
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
    if (name[0] && callee_noreturn(c, name))
        emit(b, EV_NORETURN, -1, at, NULL);
    return defined;
}

/* target = rhs, for a tracked target. */
static void assign_var(struct builder *b, int v, CXCursor rhs, struct loc at)
{
    if (is_null_const(rhs)) {
        emit(b, EV_NULL, v, at, NULL);
        return;
    }
    int w = var_of(b, rhs);
    if (w >= 0) {
        /* An alias: the reference now has two names; follow neither. */
        emit(b, EV_ESCAPE, w, at, NULL);
        emit(b, EV_ESCAPE, v, at, NULL);
        return;
    }
    if (!expr(b, rhs, ROLE_ASSIGN, v, false))
        emit(b, EV_BORROW, v, at, NULL);
}

static void assign(struct builder *b, CXCursor lhs, CXCursor rhs, struct loc at)
{
    int v = var_of(b, lhs);
    if (v >= 0) {
        assign_var(b, v, rhs, at);
        return;
    }
    /* A store anywhere else (a field, a global, through a pointer, an array
     * element) keeps the context beyond what this function can see. */
    expr(b, lhs, ROLE_OTHER, -1, false);
    int w = var_of(b, rhs);
    if (w >= 0)
        emit(b, EV_ESCAPE, w, at, NULL);
    else
        expr(b, rhs, ROLE_STORE, -1, false);
}

static bool expr(struct builder *b, CXCursor c, enum role role, int target, bool voided)
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
        if (v >= 0)
            emit(b, role == ROLE_STORE ? EV_ESCAPE : EV_USE, v, cursor_loc(s), NULL);
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
        break;
    case CXCursor_UnaryOperator:
        if (strcmp(op_of(s, op, sizeof op), "&") == 0) {
            struct kids ks = kids_of(s);
            int v = ks.n ? var_of(b, ks.v[0]) : -1;
            kids_free(&ks);
            if (v >= 0) {
                emit(b, EV_ESCAPE, v, cursor_loc(s), NULL);
                return false;
            }
        }
        break;
    case CXCursor_InitListExpr:
        kids_expr(b, s, ROLE_STORE);
        return false;
    default:
        break;
    }
    kids_expr(b, s, ROLE_OTHER);
    return false;
}

/* +1: on the true branch of c the variable *v is NULL; -1: on the false
 * branch; 0: c is no null test of a tracked variable. */
static int null_test(struct builder *b, CXCursor c, int *v)
{
    CXCursor s = strip(c, false);
    enum CXCursorKind k = clang_getCursorKind(s);
    char op[8];
    int r = 0;
    struct kids ks = kids_of(s);
    if ((*v = var_of(b, s)) >= 0) {
        r = -1;
    } else if (k == CXCursor_UnaryOperator && ks.n == 1 &&
               strcmp(op_of(s, op, sizeof op), "!") == 0) {
        r = -null_test(b, ks.v[0], v);
    } else if (k == CXCursor_BinaryOperator && ks.n == 2) {
        op_of(s, op, sizeof op);
        if (strcmp(op, "=") == 0) {
            r = (*v = var_of(b, ks.v[0])) >= 0 ? -1 : 0;
        } else if (strcmp(op, "==") == 0 || strcmp(op, "!=") == 0) {
            int side = is_null_const(ks.v[1]) ? 0 : is_null_const(ks.v[0]) ? 1 : -1;
            if (side >= 0 && null_test(b, ks.v[side], v) == -1)
                r = op[0] == '=' ? 1 : -1;
        }
    }
    kids_free(&ks);
    if (r == 0)
        *v = -1;
    return r;
}

/* +1: the true branch of c is a failed hand-over (pthread_create(...) != 0);
 * -1: the true branch is the successful one; 0: no hand-over tested. */
static int handover_test(CXCursor c)
{
    CXCursor s = strip(c, false);
    enum CXCursorKind k = clang_getCursorKind(s);
    char name[128], op[8];
    int r = 0;
    if (k == CXCursor_CallExpr) {
        callee_name(s, name, sizeof name);
        return handover_arg(name) >= 0 ? 1 : 0;
    }
    struct kids ks = kids_of(s);
    if (k == CXCursor_UnaryOperator && ks.n == 1 && strcmp(op_of(s, op, sizeof op), "!") == 0)
        r = -handover_test(ks.v[0]);
    else if (k == CXCursor_BinaryOperator && ks.n == 2 && is_null_const(ks.v[1])) {
        op_of(s, op, sizeof op);
        if (strcmp(op, "!=") == 0)
            r = handover_test(ks.v[0]);
        else if (strcmp(op, "==") == 0)
            r = -handover_test(ks.v[0]);
    }
    kids_free(&ks);
    return r;
}

static bool const_value(CXCursor c, long long *value)
{
    c = strip(c, true);
    if (clang_getCursorKind(c) != CXCursor_IntegerLiteral)
        return false;
    CXEvalResult r = clang_Cursor_Evaluate(c);
    bool ok = r && clang_EvalResult_getKind(r) == CXEval_Int;
    if (ok)
        *value = clang_EvalResult_getAsLongLong(r);
    if (r)
        clang_EvalResult_dispose(r);
    return ok;
}

/* Evaluates the condition into the current node and makes its two branches. */
static void branch(struct builder *b, CXCursor cond, int *t, int *f)
{
    int hv = handover_test(cond);
    b->defer = hv != 0;
    b->ndeferred = 0;
    expr(b, cond, ROLE_OTHER, -1, false);
    b->defer = false;
    if (b->cur < 0)
        b->cur = new_node(b->g);
    long long value = 0;
    bool known = const_value(cond, &value);
    *t = new_node(b->g);
    *f = new_node(b->g);
    if (!known || value)
        edge(b->g, b->cur, *t);
    if (!known || !value)
        edge(b->g, b->cur, *f);
    int v;
    int nt = null_test(b, cond, &v);
    if (nt)
        emit_at(b->g, nt > 0 ? *t : *f, EV_NULL, v, cursor_loc(cond), NULL);
    for (int i = 0; i < b->ndeferred; i++)
        emit_at(b->g, hv > 0 ? *f : *t, EV_HANDOVER, b->deferred[i].var, b->deferred[i].at,
                NULL);
    b->ndeferred = 0;
}

/* Runs the cleanups of the CCTX_AUTO variables above depth `down_to`. */
static void auto_ends(struct builder *b, int down_to, struct loc at)
{
    for (int i = b->nautos - 1; i >= down_to; i--)
        emit(b, EV_AUTO_END, b->autos[i], at, NULL);
}

static int label_node(struct builder *b, const char *name)
{
    for (int i = 0; i < b->nlabels; i++)
        if (strcmp(b->labels[i].name, name) == 0)
            return b->labels[i].node;
    int cap = b->nlabels;
    b->labels = grow(b->labels, &cap, b->nlabels + 1, sizeof *b->labels);
    snprintf(b->labels[b->nlabels].name, sizeof b->labels[0].name, "%s", name);
    b->labels[b->nlabels].node = new_node(b->g);
    return b->labels[b->nlabels++].node;
}

static void stmt(struct builder *b, CXCursor c);

static void push_loop(struct builder *b, int brk, int cont)
{
    if (b->nloops == MAXSTACK)
        abort();
    b->brk[b->nloops] = brk;
    b->cont[b->nloops] = cont;
    b->loop_autos[b->nloops] = b->nautos;
    b->nloops++;
}

/* The cleanup attribute, spelled directly or through CCTX_AUTO. */
static bool auto_attr(CXCursor attr, CXCursor stmt)
{
    return decl_has_token(attr, "cleanup", "__cleanup__") ||
           decl_has_token(stmt, "CCTX_AUTO", "cleanup");
}

static void decl(struct builder *b, CXCursor d, CXCursor stmt)
{
    if (clang_getCursorKind(d) != CXCursor_VarDecl)
        return;
    struct kids ks = kids_of(d);
    CXCursor init = clang_getNullCursor();
    bool autorel = false;
    for (unsigned i = 0; i < ks.n; i++) {
        enum CXCursorKind k = clang_getCursorKind(ks.v[i]);
        if (clang_isExpression(k))
            init = ks.v[i];
        if (clang_isAttribute(k) && !autorel)
            autorel = auto_attr(ks.v[i], stmt);
    }
    kids_free(&ks);
    enum CX_StorageClass sc = clang_Cursor_getStorageClass(d);
    bool local = sc != CX_SC_Static && sc != CX_SC_Extern;
    if (local && is_ctx_ptr(clang_getCursorType(d))) {
        int v = add_var(b->g, d, false, autorel);
        if (autorel && b->nautos < MAXSTACK)
            b->autos[b->nautos++] = v;
        if (!clang_Cursor_isNull(init))
            assign_var(b, v, init, cursor_loc(d));
        else
            emit(b, EV_NULL, v, cursor_loc(d), NULL); /* a fresh variable */
    } else if (!clang_Cursor_isNull(init)) {
        int w = var_of(b, init);
        if (w >= 0)
            emit(b, EV_ESCAPE, w, cursor_loc(d), NULL);
        else
            expr(b, init, ROLE_STORE, -1, false);
    }
}

static unsigned start_offset(CXCursor c)
{
    unsigned off;
    clang_getExpansionLocation(clang_getRangeStart(clang_getCursorExtent(c)), NULL, NULL, NULL,
                              &off);
    return off;
}

/* for (init; cond; inc) body: libclang leaves out the missing parts, so the
 * semicolons of the header tell which child is which. */
static void for_parts(CXCursor c, CXCursor part[4])
{
    for (int i = 0; i < 4; i++)
        part[i] = clang_getNullCursor();
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXToken *toks;
    unsigned nt, semi[2] = {0, 0}, nsemi = 0, rparen = 0;
    int depth = 0;
    clang_tokenize(tu, clang_getCursorExtent(c), &toks, &nt);
    for (unsigned i = 0; i < nt && !rparen; i++) {
        CXString s = clang_getTokenSpelling(tu, toks[i]);
        const char *t = clang_getCString(s);
        unsigned off;
        clang_getExpansionLocation(clang_getTokenLocation(tu, toks[i]), NULL, NULL, NULL, &off);
        if (strcmp(t, "(") == 0)
            depth++;
        else if (strcmp(t, ")") == 0 && --depth == 0)
            rparen = off;
        else if (strcmp(t, ";") == 0 && depth == 1 && nsemi < 2)
            semi[nsemi++] = off;
        clang_disposeString(s);
    }
    clang_disposeTokens(tu, toks, nt);
    struct kids ks = kids_of(c);
    for (unsigned i = 0; i < ks.n; i++) {
        unsigned off = start_offset(ks.v[i]);
        int which = nsemi < 2 ? 3 : off < semi[0] ? 0 : off < semi[1] ? 1 : off < rparen ? 2 : 3;
        part[which] = ks.v[i];
    }
    kids_free(&ks);
}

static void loop_body(struct builder *b, CXCursor body, int brk, int cont)
{
    push_loop(b, brk, cont);
    if (!clang_Cursor_isNull(body))
        stmt(b, body);
    b->nloops--;
}

static void stmt(struct builder *b, CXCursor c)
{
    struct cfg *g = b->g;
    enum CXCursorKind k = clang_getCursorKind(c);
    struct kids ks = kids_of(c);
    struct loc at = cursor_loc(c);
    int t, f;
    switch (k) {
    case CXCursor_CompoundStmt: {
        int mark = b->nautos;
        for (unsigned i = 0; i < ks.n; i++)
            stmt(b, ks.v[i]);
        if (b->cur >= 0)
            auto_ends(b, mark, end_loc(c));
        b->nautos = mark;
        break;
    }
    case CXCursor_DeclStmt:
        for (unsigned i = 0; i < ks.n; i++)
            decl(b, ks.v[i], c);
        break;
    case CXCursor_IfStmt: {
        if (ks.n < 2)
            break;
        branch(b, ks.v[0], &t, &f);
        int join = new_node(g);
        b->cur = t;
        stmt(b, ks.v[1]);
        edge(g, b->cur, join);
        b->cur = f;
        if (ks.n > 2)
            stmt(b, ks.v[2]);
        edge(g, b->cur, join);
        b->cur = join;
        break;
    }
    case CXCursor_WhileStmt: {
        if (ks.n < 2)
            break;
        int head = new_node(g), after = new_node(g);
        edge(g, b->cur, head);
        b->cur = head;
        branch(b, ks.v[0], &t, &f);
        edge(g, f, after);
        b->cur = t;
        loop_body(b, ks.v[1], after, head);
        edge(g, b->cur, head);
        b->cur = after;
        break;
    }
    case CXCursor_DoStmt: {
        if (ks.n < 2)
            break;
        int body = new_node(g), test = new_node(g), after = new_node(g);
        edge(g, b->cur, body);
        b->cur = body;
        loop_body(b, ks.v[0], after, test);
        edge(g, b->cur, test);
        b->cur = test;
        branch(b, ks.v[1], &t, &f);
        edge(g, t, body);
        edge(g, f, after);
        b->cur = after;
        break;
    }
    case CXCursor_ForStmt: {
        CXCursor part[4];
        for_parts(c, part);
        if (!clang_Cursor_isNull(part[0]))
            stmt(b, part[0]);
        int head = new_node(g), inc = new_node(g), after = new_node(g);
        edge(g, b->cur, head);
        b->cur = head;
        if (!clang_Cursor_isNull(part[1])) {
            branch(b, part[1], &t, &f);
            edge(g, f, after);
            b->cur = t;
        }
        loop_body(b, part[3], after, inc);
        edge(g, b->cur, inc);
        b->cur = inc;
        if (!clang_Cursor_isNull(part[2]))
            expr(b, part[2], ROLE_OTHER, -1, false);
        edge(g, b->cur, head);
        b->cur = after;
        break;
    }
    case CXCursor_SwitchStmt: {
        if (ks.n < 2)
            break;
        expr(b, ks.v[0], ROLE_OTHER, -1, false);
        if (b->cur < 0)
            b->cur = new_node(g);
        int outer_sw = b->sw, after = new_node(g);
        bool outer_default = b->sw_default;
        b->sw = b->cur;
        b->sw_default = false;
        b->cur = -1;
        loop_body(b, ks.v[ks.n - 1], after, b->nloops ? b->cont[b->nloops - 1] : -1);
        edge(g, b->cur, after);
        if (!b->sw_default)
            edge(g, b->sw, after);
        b->sw = outer_sw;
        b->sw_default = outer_default;
        b->cur = after;
        break;
    }
    case CXCursor_CaseStmt:
    case CXCursor_DefaultStmt: {
        int n = new_node(g);
        edge(g, b->sw, n);
        edge(g, b->cur, n);
        b->cur = n;
        if (k == CXCursor_DefaultStmt)
            b->sw_default = true;
        if (ks.n)
            stmt(b, ks.v[ks.n - 1]);
        break;
    }
    case CXCursor_BreakStmt:
    case CXCursor_ContinueStmt:
        if (b->nloops) {
            int i = b->nloops - 1;
            auto_ends(b, b->loop_autos[i], at);
            edge(g, b->cur, k == CXCursor_BreakStmt ? b->brk[i] : b->cont[i]);
        }
        b->cur = -1;
        break;
    case CXCursor_ReturnStmt:
        if (ks.n) {
            int v = var_of(b, ks.v[0]);
            if (v >= 0)
                emit(b, EV_ESCAPE, v, at, NULL);
            else
                expr(b, ks.v[0], ROLE_STORE, -1, false);
        }
        auto_ends(b, 0, at);
        emit(b, EV_EXIT, -1, at, NULL);
        b->cur = -1;
        break;
    case CXCursor_GotoStmt:
        if (ks.n) {
            int cap = b->ngotos;
            b->gotos = grow(b->gotos, &cap, b->ngotos + 1, sizeof *b->gotos);
            if (b->cur < 0)
                b->cur = new_node(g);
            b->gotos[b->ngotos].node = b->cur;
            CXString s = clang_getCursorSpelling(ks.v[0]);
            snprintf(b->gotos[b->ngotos].name, sizeof b->gotos[0].name, "%s",
                     clang_getCString(s));
            clang_disposeString(s);
            b->ngotos++;
        }
        b->cur = -1;
        break;
    case CXCursor_LabelStmt: {
        CXString s = clang_getCursorSpelling(c);
        int n = label_node(b, clang_getCString(s));
        clang_disposeString(s);
        edge(g, b->cur, n);
        b->cur = n;
        if (ks.n)
            stmt(b, ks.v[ks.n - 1]);
        break;
    }
    case CXCursor_NullStmt:
        break;
    default:
        if (clang_isExpression(k))
            expr(b, c, ROLE_DISCARD, -1, false);
        else
            for (unsigned i = 0; i < ks.n; i++)
                stmt(b, ks.v[i]);
        break;
    }
    kids_free(&ks);
}

void cfg_build(struct cfg *g, CXCursor fn)
{
    memset(g, 0, sizeof *g);
    CXString s = clang_getCursorSpelling(fn);
    snprintf(g->fname, sizeof g->fname, "%s", clang_getCString(s));
    clang_disposeString(s);
    struct builder b = {.g = g, .sw = -1};
    g->entry = b.cur = new_node(g);
    struct kids ks = kids_of(fn);
    CXCursor body = clang_getNullCursor();
    for (unsigned i = 0; i < ks.n; i++) {
        enum CXCursorKind k = clang_getCursorKind(ks.v[i]);
        if (k == CXCursor_ParmDecl && is_ctx_ptr(clang_getCursorType(ks.v[i]))) {
            int v = add_var(g, ks.v[i], true, false);
            emit(&b, EV_BORROW, v, cursor_loc(ks.v[i]), NULL);
        } else if (k == CXCursor_CompoundStmt) {
            body = ks.v[i];
        }
    }
    kids_free(&ks);
    if (!clang_Cursor_isNull(body)) {
        stmt(&b, body);
        if (b.cur >= 0)
            emit(&b, EV_EXIT, -1, end_loc(body), NULL);
    }
    for (int i = 0; i < b.ngotos; i++)
        edge(g, b.gotos[i].node, label_node(&b, b.gotos[i].name));
    free(b.labels);
    free(b.gotos);
}

void cfg_free(struct cfg *g)
{
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i].ev);
        free(g->nodes[i].succ);
    }
    free(g->nodes);
    free(g->vars);
    memset(g, 0, sizeof *g);
}
