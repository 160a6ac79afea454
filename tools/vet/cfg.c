/* SPDX-License-Identifier: MIT */
/*
 * Lowers a function body into a small control-flow graph whose nodes hold the
 * events that matter to a context's reference count (vet.h: enum ev_kind).
 * libclang has no CFG API, so this walks the statements: if/else, the three
 * loops with break and continue, switch with case fall-through, goto and
 * labels, return, and GNU statement expressions. CCTX_AUTO's cleanup becomes
 * an explicit event wherever its scope is left (block end, break, continue,
 * return, goto), as GCC and clang run it. The events of expressions, and
 * what a branch's condition tells each side, come from cfg_expr.c.
 */
#include "cfg_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *grow(void *p, int *cap, int need, size_t size)
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

int new_node(struct cfg *g)
{
    g->nodes = grow(g->nodes, &g->cap, g->n + 1, sizeof *g->nodes);
    memset(&g->nodes[g->n], 0, sizeof g->nodes[0]);
    return g->n++;
}

void edge(struct cfg *g, int from, int to)
{
    if (from < 0 || to < 0)
        return;
    struct node *n = &g->nodes[from];
    n->succ = grow(n->succ, &n->capsucc, n->nsucc + 1, sizeof *n->succ);
    n->succ[n->nsucc++] = to;
}

void emit_at(struct cfg *g, int node, enum ev_kind k, int var, struct loc at, const char *what)
{
    struct node *n = &g->nodes[node];
    n->ev = grow(n->ev, &n->capev, n->nev + 1, sizeof *n->ev);
    n->ev[n->nev++] = (struct event){k, var, at, what};
}

void emit(struct builder *b, enum ev_kind k, int var, struct loc at, const char *what)
{
    if (b->cur < 0)
        b->cur = new_node(b->g); /* unreachable code still gets its events */
    emit_at(b->g, b->cur, k, var, at, what);
}

int var_index(const struct cfg *g, CXCursor decl)
{
    if (!g->nbyhash)
        return -1;
    for (unsigned h = clang_hashCursor(decl);; h++) {
        int i = g->byhash[h & (g->nbyhash - 1)] - 1;
        if (i < 0 || clang_equalCursors(decl, g->vars[i].decl))
            return i;
    }
}

static void index_var(struct cfg *g, int v)
{
    unsigned h = clang_hashCursor(g->vars[v].decl);
    while (g->byhash[h & (g->nbyhash - 1)])
        h++;
    g->byhash[h & (g->nbyhash - 1)] = v + 1;
}

static int add_var(struct cfg *g, CXCursor decl, bool param, bool autorel)
{
    int old = var_index(g, decl);
    if (old >= 0)
        return old;
    if (2 * ((unsigned)g->nvars + 1) > g->nbyhash) {
        free(g->byhash);
        g->nbyhash = g->nbyhash ? 2 * g->nbyhash : 64;
        g->byhash = calloc(g->nbyhash, sizeof *g->byhash);
        if (!g->byhash)
            abort();
        for (int i = 0; i < g->nvars; i++)
            index_var(g, i);
    }
    g->vars = grow(g->vars, &g->capvars, g->nvars + 1, sizeof *g->vars);
    struct var *v = &g->vars[g->nvars];
    memset(v, 0, sizeof *v);
    v->decl = decl;
    v->param = param;
    v->autorel = autorel;
    v->at = cursor_loc(decl);
    CXString s = clang_getCursorSpelling(decl);
    copy_name(v->name, sizeof v->name, clang_getCString(s));
    clang_disposeString(s);
    index_var(g, g->nvars);
    return g->nvars++;
}

/* The event that ends a scope: CCTX_AUTO's cleanup runs, or the variable is
 * no longer a live context. */
static enum ev_kind end_of(const struct builder *b, int scope)
{
    return b->g->vars[b->scopes[scope].var].autorel ? EV_AUTO_END : EV_SCOPE_END;
}

/* Ends the scopes of the local variables above depth `down_to`, innermost
 * first. */
static void scope_ends(struct builder *b, int down_to, struct loc at)
{
    for (int i = b->nlocals - 1; i >= down_to; i--)
        emit(b, end_of(b, b->locals[i]), b->scopes[b->locals[i]].var, at, NULL);
}

/* The innermost scope open here, -1 for none. */
static int open_scope(const struct builder *b)
{
    return b->nlocals ? b->locals[b->nlocals - 1] : -1;
}

static int depth_of(const struct builder *b, int scope)
{
    return scope < 0 ? 0 : b->scopes[scope].depth;
}

/* A goto from the innermost scope `from` to a label in `to` leaves the scopes
 * that are not also the label's, innermost first, whether it jumps forward
 * or back (to a label before a declaration, the variable's scope is left
 * too); their events go at the end of the goto's node. A jump into a scope
 * enters it with no event (past a CCTX_AUTO declaration clang refuses it). */
static void goto_leaves(struct builder *b, int node, int from, int to, struct loc at)
{
    while (depth_of(b, to) > depth_of(b, from))
        to = b->scopes[to].up;
    while (from != to) {
        emit_at(b->g, node, end_of(b, from), b->scopes[from].var, at, NULL);
        from = b->scopes[from].up;
        if (depth_of(b, to) > depth_of(b, from))
            to = b->scopes[to].up;
    }
}

/* The label of the label statement `stmt`, made on first sight (a goto may
 * come before its label). */
static struct label *label_of(struct builder *b, CXCursor stmt)
{
    CXSourceLocation at = clang_getCursorLocation(stmt);
    for (int i = 0; i < b->nlabels; i++)
        if (clang_equalLocations(b->labels[i].at, at))
            return &b->labels[i];
    int cap = b->nlabels;
    b->labels = grow(b->labels, &cap, b->nlabels + 1, sizeof *b->labels);
    b->labels[b->nlabels] = (struct label){at, new_node(b->g), -1};
    return &b->labels[b->nlabels++];
}

/* The variable has a cleanup attribute, however it was spelled: CCTX_AUTO, a
 * project's own macro (systemd's _cleanup_(f)), or the attribute written out.
 * libclang does not expose the attribute (an unexposed one, its tokens those
 * of the macro's call), but the declaration printed back from the tree
 * shows it in one spelling. It is printed without its initializer: a
 * statement expression there may declare a cleanup variable of its own
 * (`c = ({ CCTX_AUTO cctx_t *t = ...; cctx_ref(t); })`), which is not c's. */
static bool has_cleanup(CXCursor d)
{
    CXPrintingPolicy policy = clang_getCursorPrintingPolicy(d);
    clang_PrintingPolicy_setProperty(policy, CXPrintingPolicy_SuppressInitializers, 1);
    CXString s = clang_getCursorPrettyPrinted(d, policy);
    const char *text = clang_getCString(s);
    bool yes = strstr(text, "__attribute__((cleanup(") || strstr(text, "[[gnu::cleanup(");
    clang_disposeString(s);
    clang_PrintingPolicy_dispose(policy);
    return yes;
}

static void decl(struct builder *b, CXCursor d)
{
    if (clang_getCursorKind(d) != CXCursor_VarDecl)
        return;
    /* The initializer, as clang knows it (a typeof's expression is none,
     * wherever a macro wrote the name or the expression). */
    CXCursor init = clang_Cursor_getVarDeclInitializer(d);
    enum CX_StorageClass sc = clang_Cursor_getStorageClass(d);
    bool local = sc != CX_SC_Static && sc != CX_SC_Extern;
    if (local && is_ctx_ptr(clang_getCursorType(d))) {
        bool autorel = has_cleanup(d);
        int v = add_var(b->g, d, false, autorel), up = open_scope(b);
        b->scopes = grow(b->scopes, &b->capscopes, b->nscopes + 1, sizeof *b->scopes);
        b->scopes[b->nscopes] = (struct scope){v, up, depth_of(b, up) + 1};
        b->locals = grow(b->locals, &b->caplocals, b->nlocals + 1, sizeof *b->locals);
        b->locals[b->nlocals++] = b->nscopes++;
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

/* Where l is written in its file: the place itself in code, the text of a
 * macro's argument for what the user wrote there (`TIMED(for (...) ...)`),
 * the macro's call for what the macro's own text wrote. */
static unsigned file_offset(CXSourceLocation l, CXFile *file)
{
    unsigned off;
    clang_getFileLocation(l, file, NULL, NULL, &off);
    return off;
}

static unsigned start_offset(CXCursor c)
{
    return file_offset(clang_getRangeStart(clang_getCursorExtent(c)), NULL);
}

/* The text of c as written: a statement in a macro's argument has as its
 * extent the whole macro call, whose first token is the macro's name. */
static CXSourceRange written_range(CXCursor c)
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXSourceRange extent = clang_getCursorExtent(c);
    CXFile f1, f2;
    unsigned from = file_offset(clang_getRangeStart(extent), &f1);
    unsigned to = file_offset(clang_getRangeEnd(extent), &f2);
    if (!f1 || !f2 || !clang_File_isEqual(f1, f2) || to <= from)
        return extent;
    return clang_getRange(clang_getLocationForOffset(tu, f1, from),
                          clang_getLocationForOffset(tu, f1, to));
}

/* Which of init, cond and inc a `for` header written by the macro whose call
 * starts at c has, read from the macro's definition: the first `for (` there,
 * and the text between its semicolons at depth 1. False when the definition
 * cannot be read so (no such `for`, or another macro writes it). */
static bool macro_for_parts(CXCursor c, bool present[3])
{
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXCursor def;
    if (!macro_definition_of(c, &def))
        return false;
    CXToken *toks;
    unsigned nt, part = 0;
    int depth = 0, braces = 0; /* braces: a struct declared in the init */
    bool in_header = false, done = false;
    present[0] = present[1] = present[2] = false;
    clang_tokenize(tu, clang_getCursorExtent(def), &toks, &nt);
    for (unsigned i = 1; i < nt && !done; i++) {
        CXString sp = clang_getTokenSpelling(tu, toks[i]);
        const char *t = clang_getCString(sp);
        if (!in_header) {
            if (strcmp(t, "for") == 0 && i + 1 < nt) {
                in_header = true; /* the next token is its "(" */
                i++;
                depth = 1;
            }
        } else if (strcmp(t, "(") == 0) {
            depth++;
            present[part] = true;
        } else if (strcmp(t, ")") == 0 && --depth == 0) {
            done = true;
        } else if (strcmp(t, ";") == 0 && depth == 1 && braces == 0) {
            part = part < 2 ? part + 1 : 2;
        } else {
            braces += strcmp(t, "{") == 0 ? 1 : strcmp(t, "}") == 0 ? -1 : 0;
            present[part] = true;
        }
        clang_disposeString(sp);
    }
    clang_disposeTokens(tu, toks, nt);
    return done;
}

/* for (init; cond; inc) body: libclang leaves out the missing parts, so the
 * semicolons of the header tell which child is which, read where the header
 * is written (in a macro's argument too, by its places there). A header written by a
 * macro (sys/queue.h's TAILQ_FOREACH, a project's FOR_EACH) has no text here
 * to read: then the macro's definition says which parts there are, and the
 * children before the body are taken in that order. Where the definition
 * cannot say, the loop has no condition, as before the macro was read. */
static void for_parts(CXCursor c, CXCursor part[4])
{
    for (int i = 0; i < 4; i++)
        part[i] = clang_getNullCursor();
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXToken *toks;
    unsigned nt, semi[2] = {0, 0}, nsemi = 0, rparen = 0;
    int depth = 0, braces = 0; /* braces: for (struct { int i; } s = ...; ...) */
    bool header_here = false; /* the tokens are this loop's own `for (...)` */
    clang_tokenize(tu, written_range(c), &toks, &nt);
    for (unsigned i = 0; i < nt && !rparen; i++) {
        CXString s = clang_getTokenSpelling(tu, toks[i]);
        const char *t = clang_getCString(s);
        unsigned off = file_offset(clang_getTokenLocation(tu, toks[i]), NULL);
        if (i == 0)
            header_here = strcmp(t, "for") == 0 && off == start_offset(c);
        if (strcmp(t, "(") == 0)
            depth++;
        else if (strcmp(t, ")") == 0 && --depth == 0)
            rparen = off;
        else if (strcmp(t, "{") == 0 || strcmp(t, "}") == 0)
            braces += t[0] == '{' ? 1 : -1;
        else if (strcmp(t, ";") == 0 && depth == 1 && braces == 0 && nsemi < 2)
            semi[nsemi++] = off;
        clang_disposeString(s);
    }
    clang_disposeTokens(tu, toks, nt);
    struct kids ks = kids_of(c);
    if (nsemi < 2 || !header_here) {
        unsigned nheader = ks.n ? ks.n - 1 : 0, k = 0;
        bool present[3];
        if (macro_for_parts(c, present) &&
            (unsigned)present[0] + present[1] + present[2] == nheader) {
            for (int i = 0; i < 3; i++)
                if (present[i])
                    part[i] = ks.v[k++];
        } else if (nheader > 0) {
            /* Unknown: the first child is the init, the rest the increment
             * (a loop without an exit hides nothing after it that matters). */
            part[0] = ks.v[0];
            if (nheader > 1)
                part[2] = ks.v[nheader - 1];
        }
        if (ks.n)
            part[3] = ks.v[ks.n - 1];
        kids_free(&ks);
        return;
    }
    for (unsigned i = 0; i < ks.n; i++) {
        unsigned off = start_offset(ks.v[i]);
        int which = off < semi[0] ? 0 : off < semi[1] ? 1 : off < rparen ? 2 : 3;
        part[which] = ks.v[i];
    }
    kids_free(&ks);
}

/* Lowers the body of a loop (or switch) whose break goes to brk and whose
 * continue goes to cont, leaving locals_kept_by_continue tracked local variables
 * open. */
static void loop_body(struct builder *b, CXCursor body, int brk, int cont,
                      int locals_kept_by_continue)
{
    b->loops = grow(b->loops, &b->caploops, b->nloops + 1, sizeof *b->loops);
    b->loops[b->nloops++] = (struct jump_targets){brk, cont, b->nlocals, locals_kept_by_continue};
    if (!clang_Cursor_isNull(body))
        stmt(b, body);
    b->nloops--;
}

bool statement_expr(struct builder *b, CXCursor block, enum role role, int target, bool voided)
{
    struct kids ks = kids_of(block);
    int mark = b->nlocals;
    bool defined = false;
    for (unsigned i = 0; i < ks.n; i++) {
        CXCursor s = ks.v[i];
        bool value = i + 1 == ks.n && clang_isExpression(clang_getCursorKind(s));
        int v = value ? var_of(b, s) : -1;
        if (v >= 0 && stores(role))
            kept(b, v, role, cursor_loc(s));
        else if (v >= 0 && role == ROLE_ASSIGN)
            emit(b, EV_ESCAPE, v, cursor_loc(s), NULL); /* its value is kept elsewhere */
        else if (value)
            defined = expr(b, s, role, target, voided);
        else
            stmt(b, s);
    }
    if (b->cur >= 0)
        scope_ends(b, mark, end_loc(block));
    b->nlocals = mark;
    kids_free(&ks);
    return defined;
}

bool deeper(struct builder *b)
{
    if (b->too_deep || b->depth >= VET_MAX_DEPTH) {
        b->too_deep = true;
        return false;
    }
    b->depth++;
    return true;
}

static void lower_stmt(struct builder *b, CXCursor c);

void stmt(struct builder *b, CXCursor c)
{
    if (!deeper(b))
        return;
    lower_stmt(b, c);
    b->depth--;
}

static void lower_stmt(struct builder *b, CXCursor c)
{
    struct cfg *g = b->g;
    enum CXCursorKind k = clang_getCursorKind(c);
    struct kids ks = kids_of(c);
    struct loc at = cursor_loc(c);
    int t, f;
    switch (k) {
    case CXCursor_CompoundStmt: {
        int mark = b->nlocals;
        for (unsigned i = 0; i < ks.n; i++) {
            CXCursor kept =
                i + 1 < ks.n ? handover_result(b, ks.v[i], ks.v[i + 1]) : clang_getNullCursor();
            if (clang_Cursor_isNull(kept)) {
                stmt(b, ks.v[i]);
                continue;
            }
            /* Its hand-overs wait for the test in the next statement. */
            b->defer = true;
            b->ndeferred = 0;
            stmt(b, ks.v[i]);
            b->defer = false;
            memcpy(b->pending, b->deferred, sizeof b->pending);
            b->npending = b->ndeferred;
            b->ndeferred = 0;
            b->result = kept;
            stmt(b, ks.v[++i]);
            b->result = clang_getNullCursor();
            b->npending = 0;
        }
        if (b->cur >= 0)
            scope_ends(b, mark, end_loc(c));
        b->nlocals = mark;
        break;
    }
    case CXCursor_DeclStmt:
        for (unsigned i = 0; i < ks.n; i++)
            decl(b, ks.v[i]);
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
        loop_body(b, ks.v[1], after, head, b->nlocals);
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
        loop_body(b, ks.v[0], after, test, b->nlocals);
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
        int mark = b->nlocals; /* the init's variables live until the loop ends */
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
        loop_body(b, part[3], after, inc, b->nlocals);
        edge(g, b->cur, inc);
        b->cur = inc;
        if (!clang_Cursor_isNull(part[2])) /* its value is dropped */
            expr(b, part[2], ROLE_DISCARD, -1, false);
        edge(g, b->cur, head);
        b->cur = after;
        scope_ends(b, mark, end_loc(c));
        b->nlocals = mark;
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
        /* break leaves the switch; continue leaves the enclosing loop's body,
         * and the variables declared in it */
        const struct jump_targets *loop = b->nloops ? &b->loops[b->nloops - 1] : NULL;
        loop_body(b, ks.v[ks.n - 1], after, loop ? loop->cont : -1,
                  loop ? loop->locals_kept_by_continue : b->nlocals);
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
            const struct jump_targets *j = &b->loops[b->nloops - 1];
            bool brk = k == CXCursor_BreakStmt;
            scope_ends(b, brk ? j->locals_kept_by_break : j->locals_kept_by_continue, at);
            edge(g, b->cur, brk ? j->brk : j->cont);
        }
        b->cur = -1;
        break;
    case CXCursor_ReturnStmt:
        if (ks.n) {
            /* The caller takes a reference that the cleanup below drops:
             * the variable's, or an arm's of `ok ? c : NULL`. */
            int v = var_of(b, ks.v[0]);
            if (v >= 0)
                kept(b, v, ROLE_RETURN, at);
            else
                expr(b, ks.v[0], ROLE_RETURN, -1, false);
        }
        scope_ends(b, 0, at);
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
            b->gotos[b->ngotos].target = clang_getCursorReferenced(ks.v[0]);
            b->gotos[b->ngotos].scope = open_scope(b);
            b->gotos[b->ngotos].at = at;
            b->ngotos++;
        }
        b->cur = -1;
        break;
    case CXCursor_LabelStmt: {
        struct label *l = label_of(b, c);
        l->scope = open_scope(b);
        edge(g, b->cur, l->node);
        b->cur = l->node;
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
    copy_name(g->fname, sizeof g->fname, clang_getCString(s));
    clang_disposeString(s);
    struct builder b = {.g = g, .sw = -1, .result = clang_getNullCursor()};
    /* A pointer, an _Atomic one, or an integer as wide (a uintptr_t made of
     * the context, a handle): what the caller may turn back into it. */
    CXType ret = clang_getCanonicalType(clang_getResultType(clang_getCursorType(fn)));
    if (ret.kind == CXType_Atomic)
        ret = clang_getCanonicalType(clang_Type_getValueType(ret));
    b.returns_pointer = ret.kind == CXType_Pointer ||
                        (clang_Type_getSizeOf(ret) == (long long)sizeof(void *) &&
                         ret.kind >= CXType_FirstBuiltin && ret.kind <= CXType_LastBuiltin &&
                         ret.kind != CXType_Double && ret.kind != CXType_LongDouble);
    g->entry = b.cur = new_node(g);
    /* The function's own parameters: among its children are also those of
     * a function type it returns (int (*pick(int))(cctx_t *ctx, int)). */
    int nparams = clang_Cursor_getNumArguments(fn);
    for (int i = 0; i < nparams; i++) {
        CXCursor p = clang_Cursor_getArgument(fn, (unsigned)i);
        if (is_ctx_ptr(clang_getCursorType(p))) {
            int v = add_var(g, p, true, false);
            emit(&b, EV_BORROW, v, cursor_loc(p), NULL);
        }
    }
    struct kids ks = kids_of(fn);
    CXCursor body = clang_getNullCursor();
    for (unsigned i = 0; i < ks.n; i++)
        if (clang_getCursorKind(ks.v[i]) == CXCursor_CompoundStmt)
            body = ks.v[i];
    kids_free(&ks);
    if (!clang_Cursor_isNull(body)) {
        stmt(&b, body);
        if (b.cur >= 0)
            emit(&b, EV_EXIT, -1, end_loc(body), NULL);
    }
    /* A goto whose label libclang could not resolve (a broken file) goes
     * nowhere: its path ends there. */
    for (int i = 0; i < b.ngotos; i++) {
        if (clang_Cursor_isNull(b.gotos[i].target))
            continue;
        const struct label *l = label_of(&b, b.gotos[i].target);
        goto_leaves(&b, b.gotos[i].node, b.gotos[i].scope, l->scope, b.gotos[i].at);
        edge(g, b.gotos[i].node, l->node);
    }
    g->too_complex = b.too_deep;
    free(b.labels);
    free(b.scopes);
    free(b.gotos);
    free(b.loops);
    free(b.locals);
}

void cfg_free(struct cfg *g)
{
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i].ev);
        free(g->nodes[i].succ);
    }
    free(g->nodes);
    free(g->vars);
    free(g->byhash);
    memset(g, 0, sizeof *g);
}
