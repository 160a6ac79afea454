/* SPDX-License-Identifier: MIT */
/*
 * The conditions of branches, for the CFG builder: what each branch of a
 * test knows. A null test of a context variable makes it NULL on one branch
 * (so the error check after a derivation is no leak), and a tested
 * pthread_create or cctx_group_go hands its reference over on the success
 * branch only. `&&`, `||` and `!` are lowered as the branches they make.
 */
#include "cfg_builder.h"

#include <string.h>

/* The value a condition tests: c without parentheses and implicit
 * conversions, and without the __builtin_expect of likely() and unlikely(),
 * whose value is its first argument's. */
static CXCursor tested(CXCursor c)
{
    for (;;) {
        CXCursor s = strip(c, false);
        char name[64];
        if (clang_getCursorKind(s) != CXCursor_CallExpr || clang_Cursor_getNumArguments(s) < 1)
            return s;
        callee_name(s, name, sizeof name);
        if (strcmp(name, "__builtin_expect") && strcmp(name, "__builtin_expect_with_probability"))
            return s;
        c = clang_Cursor_getArgument(s, 0);
    }
}

/* +1: on the true branch of c the variable *v is NULL; -1: on the false
 * branch; 0: c is no null test of a tracked variable. */
static int null_test(struct builder *b, CXCursor c, int *v)
{
    CXCursor s = tested(c);
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

/* The parameter d is written in its function: assigned, incremented, or
 * its address taken (after which any store may change it). */
static enum CXChildVisitResult writes(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    CXCursor *d = data;
    enum CXCursorKind k = clang_getCursorKind(c);
    if (k != CXCursor_BinaryOperator && k != CXCursor_CompoundAssignOperator &&
        k != CXCursor_UnaryOperator)
        return CXChildVisit_Recurse;
    char op[8];
    op_of(c, op, sizeof op);
    bool assign = k == CXCursor_CompoundAssignOperator || strcmp(op, "=") == 0;
    bool unary = k == CXCursor_UnaryOperator &&
                 (strcmp(op, "&") == 0 || strcmp(op, "++") == 0 || strcmp(op, "--") == 0);
    if (!assign && !unary)
        return CXChildVisit_Recurse;
    struct kids ks = kids_of(c);
    CXCursor s = ks.n > 0 ? strip(ks.v[0], true) : clang_getNullCursor();
    bool hit = clang_getCursorKind(s) == CXCursor_DeclRefExpr &&
               clang_equalCursors(clang_getCursorReferenced(s), *d);
    kids_free(&ks);
    if (!hit)
        return CXChildVisit_Recurse;
    *d = clang_getNullCursor();
    return CXChildVisit_Break;
}

/* c is a context that a variable holding a derivation of its own cannot
 * be, as a derivation returns a new context: a parameter other than the
 * variable v itself, never written in the function (`parent = c` or
 * `parent = cctx_ref(c)` would make it the derivation). */
static bool other_context(struct builder *b, CXCursor c, int v)
{
    CXCursor s = strip(c, true);
    if (clang_getCursorKind(s) != CXCursor_DeclRefExpr)
        return false;
    CXCursor d = clang_getCursorReferenced(s);
    if (clang_getCursorKind(d) != CXCursor_ParmDecl || var_index(b->g, d) == v)
        return false;
    CXCursor seen = d;
    clang_visitChildren(clang_getCursorSemanticParent(d), writes, &seen);
    return !clang_Cursor_isNull(seen);
}

/* +1: on the true branch of c the variable *v equals another context
 * (`c == parent`, other_context); -1: on the false branch (`c != parent`,
 * the test before releasing a context that was either derived or borrowed
 * from the parameter); 0: c is no such test. */
static int same_test(struct builder *b, CXCursor c, int *v)
{
    CXCursor s = tested(c);
    char op[8];
    int r = 0;
    *v = -1;
    if (clang_getCursorKind(s) != CXCursor_BinaryOperator)
        return 0;
    op_of(s, op, sizeof op);
    if (strcmp(op, "==") != 0 && strcmp(op, "!=") != 0)
        return 0;
    struct kids ks = kids_of(s);
    for (unsigned side = 0; ks.n == 2 && side < 2 && !r; side++) {
        int w = var_of(b, ks.v[side]);
        if (w >= 0 && other_context(b, ks.v[1 - side], w)) {
            *v = w;
            r = op[0] == '=' ? 1 : -1;
        }
    }
    kids_free(&ks);
    return r;
}

/* c is an integer constant expression other than 0 (EAGAIN, -1). */
static bool nonzero_const(CXCursor c)
{
    CXCursor s = strip(c, true);
    enum CXCursorKind k = clang_getCursorKind(s);
    if (k != CXCursor_IntegerLiteral && k != CXCursor_UnaryOperator)
        return false;
    CXEvalResult r = clang_Cursor_Evaluate(s);
    bool yes = r && clang_EvalResult_getKind(r) == CXEval_Int && clang_EvalResult_getAsLongLong(r);
    if (r)
        clang_EvalResult_dispose(r);
    return yes;
}

/* +1: the true branch of c is a failed hand-over (pthread_create(...) != 0);
 * -1: the true branch is the successful one; 0: no hand-over tested. The
 * zero may be on either side (`0 != pthread_create(...)`), and the result
 * may be kept on the way (`(rc = pthread_create(...)) != 0`): an
 * assignment's value is the one assigned. The variable that kept the result
 * of the statement before (b->result, `rc = pthread_create(...); if (rc)`)
 * is tested as the call would be, and *kept says it was. */
static int handover_test(struct builder *b, CXCursor c, bool *kept)
{
    CXCursor s = tested(c);
    enum CXCursorKind k = clang_getCursorKind(s);
    char name[128], op[8];
    int r = 0;
    if (k == CXCursor_CallExpr) {
        callee_name(s, name, sizeof name);
        return handover_arg(name) >= 0 ? 1 : 0;
    }
    if (k == CXCursor_DeclRefExpr) {
        bool yes = !clang_Cursor_isNull(b->result) &&
                   clang_equalCursors(clang_getCursorReferenced(s), b->result);
        *kept = *kept || yes;
        return yes;
    }
    struct kids ks = kids_of(s);
    if (k == CXCursor_UnaryOperator && ks.n == 1 && strcmp(op_of(s, op, sizeof op), "!") == 0)
        r = -handover_test(b, ks.v[0], kept);
    else if (k == CXCursor_BinaryOperator && ks.n == 2) {
        op_of(s, op, sizeof op);
        int side = is_null_const(ks.v[1]) ? 0 : is_null_const(ks.v[0]) ? 1 : -1;
        /* `(rc = pthread_create(...)) == EAGAIN`: a non-zero constant is an
         * error code; equal to it, the call failed (the retry loop's case),
         * and the other branch is taken for success, as after `!= 0`. */
        int error_side = side >= 0                ? -1
                         : nonzero_const(ks.v[1]) ? 0
                         : nonzero_const(ks.v[0]) ? 1
                                                  : -1;
        if (strcmp(op, "=") == 0)
            r = handover_test(b, ks.v[1], kept);
        else if (side >= 0 && strcmp(op, "!=") == 0)
            r = handover_test(b, ks.v[side], kept);
        else if (side >= 0 && strcmp(op, "==") == 0)
            r = -handover_test(b, ks.v[side], kept);
        else if (error_side >= 0 && strcmp(op, "==") == 0)
            r = handover_test(b, ks.v[error_side], kept);
        else if (error_side >= 0 && strcmp(op, "!=") == 0)
            r = -handover_test(b, ks.v[error_side], kept);
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

/* The branches of `a && b` or `a || b`: b is tested only where a did not
 * decide, so what each test tells its side holds there. */
static void short_circuit_branch(struct builder *b, CXCursor a, CXCursor c, bool and, int *t,
                                 int *f)
{
    int at, af, ct, cf, join;
    branch(b, a, &at, &af);
    b->cur = and? at : af;
    branch(b, c, &ct, &cf);
    join = new_node(b->g);
    edge(b->g, and? af : at, join);
    edge(b->g, and? cf : ct, join);
    *t = and? ct : join;
    *f = and? join : cf;
}

static void lower_branch(struct builder *b, CXCursor cond, int *t, int *f);

void branch(struct builder *b, CXCursor cond, int *t, int *f)
{
    if (!deeper(b)) { /* two branches still, for the caller to join */
        *t = new_node(b->g);
        *f = new_node(b->g);
        return;
    }
    lower_branch(b, cond, t, f);
    b->depth--;
}

static void lower_branch(struct builder *b, CXCursor cond, int *t, int *f)
{
    CXCursor s = tested(cond);
    enum CXCursorKind k = clang_getCursorKind(s);
    if (k == CXCursor_BinaryOperator || k == CXCursor_UnaryOperator) {
        char op[8];
        op_of(s, op, sizeof op);
        bool and = strcmp(op, "&&") == 0, or = strcmp(op, "||") == 0;
        bool not = strcmp(op, "!") == 0 && k == CXCursor_UnaryOperator;
        bool comma = strcmp(op, ",") == 0 && k == CXCursor_BinaryOperator;
        struct kids ks = kids_of(s);
        bool done = true;
        if (not &&ks.n == 1) {
            branch(b, ks.v[0], f, t);
        } else if ((and || or) && ks.n == 2) {
            short_circuit_branch(b, ks.v[0], ks.v[1], and, t, f);
        } else if (comma && ks.n == 2) {
            /* `c = cctx_with_cancel(p, NULL), c == NULL`: a's value is
             * dropped, and b is what the branch tests. */
            expr(b, ks.v[0], ROLE_DISCARD, -1, false);
            if (b->cur < 0)
                b->cur = new_node(b->g);
            branch(b, ks.v[1], t, f);
        } else {
            done = false;
        }
        kids_free(&ks);
        if (done)
            return;
    }
    /* A condition may be lowered inside another's (a `&&` in a call's
     * arguments): the outer one's hand-overs wait meanwhile. */
    bool outer_defer = b->defer;
    int outer_ndeferred = b->ndeferred;
    struct event outer_deferred[8];
    memcpy(outer_deferred, b->deferred, sizeof outer_deferred);
    /* A derivation tested and then lost: `if (cctx_with_cancel(p, NULL))`
     * (its comparisons and `!` are read as the expression is lowered). */
    tested_only(tested(cond));
    bool kept = false;
    int hv = handover_test(b, cond, &kept);
    b->defer = hv != 0;
    b->ndeferred = 0;
    if (kept) { /* the hand-overs of the statement before wait for this test */
        memcpy(b->deferred, b->pending, sizeof b->deferred);
        b->ndeferred = b->npending;
        b->npending = 0;
        b->result = clang_getNullCursor();
    }
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
    int st = same_test(b, cond, &v);
    if (st)
        emit_at(b->g, st > 0 ? *t : *f, EV_SAME, v, cursor_loc(cond), NULL);
    for (int i = 0; i < b->ndeferred; i++)
        emit_at(b->g, hv > 0 ? *f : *t, EV_HANDOVER, b->deferred[i].var, b->deferred[i].at, NULL);
    b->defer = outer_defer;
    b->ndeferred = outer_ndeferred;
    memcpy(b->deferred, outer_deferred, sizeof outer_deferred);
}

CXCursor handover_result(struct builder *b, CXCursor s, CXCursor next)
{
    CXCursor var = clang_getNullCursor(), value = clang_getNullCursor();
    if (clang_getCursorKind(next) != CXCursor_IfStmt)
        return var;
    struct kids ks = kids_of(s);
    char op[8], name[128];
    if (clang_getCursorKind(s) == CXCursor_DeclStmt) {
        if (ks.n == 1 && clang_getCursorKind(ks.v[0]) == CXCursor_VarDecl) {
            var = ks.v[0];
            value = clang_Cursor_getVarDeclInitializer(var);
        }
    } else if (clang_isExpression(clang_getCursorKind(s))) {
        CXCursor a = strip(s, false);
        struct kids sides = kids_of(a);
        if (clang_getCursorKind(a) == CXCursor_BinaryOperator && sides.n == 2 &&
            strcmp(op_of(a, op, sizeof op), "=") == 0 &&
            clang_getCursorKind(strip(sides.v[0], false)) == CXCursor_DeclRefExpr) {
            var = clang_getCursorReferenced(strip(sides.v[0], false));
            value = sides.v[1];
        }
        kids_free(&sides);
    }
    kids_free(&ks);
    value = clang_Cursor_isNull(value) ? value : strip(value, true);
    if (clang_getCursorKind(value) != CXCursor_CallExpr)
        return clang_getNullCursor();
    callee_name(value, name, sizeof name);
    if (handover_arg(name) < 0)
        return clang_getNullCursor();
    struct kids parts = kids_of(next);
    CXCursor saved = b->result;
    bool kept = false;
    b->result = var;
    if (parts.n < 2 || handover_test(b, parts.v[0], &kept) == 0 || !kept)
        var = clang_getNullCursor();
    b->result = saved;
    kids_free(&parts);
    return var;
}
