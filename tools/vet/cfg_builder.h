/* SPDX-License-Identifier: MIT */
/*
 * The CFG builder's state, shared by its parts: cfg.c lowers statements
 * (the graph's shape: branches, loops, jumps, scopes), cfg_expr.c lowers
 * expressions (the context events in a node), cfg_cond.c the conditions of
 * branches.
 */
#ifndef CCTX_VET_CFG_BUILDER_H
#define CCTX_VET_CFG_BUILDER_H

#include "vet.h"

/* A tracked local variable's scope, in the tree of the scopes open together:
 * up is the innermost one open at its declaration (-1 for none). A goto and
 * its label share the scopes on their common path to the root; the goto
 * leaves the others. */
struct scope {
    int var, up, depth;
};

/* A label, known by where its statement is (the cursor a goto refers to has
 * another parent than the one met in the body, so the cursors never compare
 * equal): two labels of one name are two labels when they are declared apart
 * (GNU's __label__ in a macro used twice: each expansion has its own
 * locations), and a long name is never cut to match another. */
struct label {
    CXSourceLocation at;
    int node;
    int scope; /* the innermost scope open at the label, -1 for none */
};

/* A loop or switch being lowered: where break and continue go, and how many
 * tracked local variables stay in scope after each jump (the others' scopes
 * end: CCTX_AUTO's cleanups run). */
struct jump_targets {
    int brk, cont;
    int locals_kept_by_break, locals_kept_by_continue;
};

struct builder {
    struct cfg *g;
    int cur; /* the node events go to; -1 after a jump (unreachable) */
    /* The enclosing loops and switches, innermost last. Both stacks grow:
     * nesting as deep as the parser accepts is lowered. */
    struct jump_targets *loops;
    int nloops, caploops;
    int *locals; /* the scopes of the tracked variables of the open blocks */
    int nlocals, caplocals;
    struct scope *scopes; /* every scope opened, by index */
    int nscopes, capscopes;
    struct label *labels;
    int nlabels;
    struct {
        int node;
        CXCursor target; /* the label statement the goto names */
        int scope;       /* the innermost scope open at the goto */
        struct loc at;
    } * gotos;
    int ngotos;
    int sw; /* the node of the innermost switch, -1 outside */
    bool sw_default;
    bool defer; /* hand-overs in a condition wait for the success branch */
    /* The function returns a pointer (or an integer as wide): only then
     * does a returned context reach the caller (a bool or an int is made of
     * it, and it stays here). */
    bool returns_pointer;
    struct event deferred[8];
    int ndeferred;
    /* `rc = pthread_create(...); if (rc)`: the variable that keeps the
     * result (its declaration), and the hand-overs of that statement,
     * waiting for the `if` that tests it to know its success branch. */
    CXCursor result;
    struct event pending[8];
    int npending;
    /* Inside the right operand of an operator that may be && or || (one a
     * macro wrote, which cannot be told): that operand may not run, so a call
     * there that never returns ends no path. */
    int maybe_skipped;
    /* How deep the lowering's recursion is (statements, expressions,
     * conditions): a function nested deeper than VET_MAX_DEPTH is left
     * unchecked (too_deep), said on stderr, rather than crash the checker
     * on its stack (generated code: `k | k | ...` of 60,000 terms). */
    int depth;
    bool too_deep;
};

/* The deepest recursion lowered. Each level takes about 1 KB of stack (a few
 * KB under AddressSanitizer): main.c runs the checker on a thread whose stack
 * holds it with room to spare. */
#define VET_MAX_DEPTH 50000
#define VET_STACK_BYTES (1024UL << 20)

/* What becomes of an expression's value: read, dropped, assigned to a
 * tracked variable, or kept elsewhere. Of the values kept elsewhere, the
 * ones the caller gets (returned, or stored through an out-parameter) are
 * told apart: a CCTX_AUTO variable's cleanup still drops what they hold. */
enum role { ROLE_OTHER, ROLE_DISCARD, ROLE_ASSIGN, ROLE_STORE, ROLE_RETURN, ROLE_OUT };

/* ---- Graph and builder helpers (cfg.c) ------------------------------------ */

/* Grows an array to hold need elements; aborts when out of memory. */
void *grow(void *p, int *cap, int need, size_t size);
int new_node(struct cfg *g);
/* The tracked variable that decl declares, or -1. */
int var_index(const struct cfg *g, CXCursor decl);
void edge(struct cfg *g, int from, int to);
void emit_at(struct cfg *g, int node, enum ev_kind k, int var, struct loc at, const char *what);
/* An event in the current node (a new one after a jump). */
void emit(struct builder *b, enum ev_kind k, int var, struct loc at, const char *what);
/* Lowers one statement into the graph. */
void stmt(struct builder *b, CXCursor c);
/* One level deeper into the recursion: false, with nothing to lower, when
 * that is past VET_MAX_DEPTH (or was before); else the caller lowers and
 * then leaves the level (b->depth--). */
bool deeper(struct builder *b);
/* Lowers the block of a GNU statement expression, ({ ... }): its statements
 * in order, the last one giving the value with the expression's role. Returns
 * true when that value defined target, as expr does. */
bool statement_expr(struct builder *b, CXCursor block, enum role role, int target, bool voided);

/* ---- Expressions (cfg_expr.c) --------------------------------------------- */

/* The tracked variable c names (through parentheses and casts), or -1. */
int var_of(struct builder *b, CXCursor c);
/* Lowers an expression. role says what becomes of its value; target is the
 * tracked variable it is assigned to (ROLE_ASSIGN). Returns true when it
 * defined target (a derivation or a cctx_ref). */
bool expr(struct builder *b, CXCursor c, enum role role, int target, bool voided);
/* The role keeps the value elsewhere (a store, a return, an out-parameter). */
bool stores(enum role role);
/* The tracked variable v is the value kept by role: returned or stored
 * through an out-parameter, a CCTX_AUTO variable hands the caller one
 * reference that its cleanup still drops; kept anywhere else, it escapes. */
void kept(struct builder *b, int v, enum role role, struct loc at);
/* v = rhs, for a tracked v (an assignment or an initializer). */
void assign_var(struct builder *b, int v, CXCursor rhs, struct loc at);
/* The operand a of a test (a comparison, `!`, a condition) is itself a
 * derivation: its value is tested, then lost, and the context it made can
 * never be released (`unchecked`). */
void tested_only(CXCursor a);
/* The argument of a call to name that takes over a reference (the thread's
 * argument of pthread_create and cctx_group_go), or -1. */
int handover_arg(const char *name);

/* ---- Conditions (cfg_cond.c) ---------------------------------------------- */

/* Evaluates the condition into the current node and makes its two branches. */
void branch(struct builder *b, CXCursor cond, int *t, int *f);
/* The variable (its declaration) in which the statement s keeps the result
 * of a call that hands a reference over (`rc = pthread_create(...);`, `int
 * rc = cctx_group_go(...);`) when next is an `if` that tests it (`if (rc)`,
 * `if (rc != 0)`, `if (!rc)`): the hand-over happens on the success branch
 * of that test only. A null cursor otherwise. */
CXCursor handover_result(struct builder *b, CXCursor s, CXCursor next);

#endif /* CCTX_VET_CFG_BUILDER_H */
