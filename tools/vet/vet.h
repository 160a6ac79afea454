/* SPDX-License-Identifier: MIT */
/*
 * cctx-vet: the declarations shared by the checker's parts.
 *
 * The tool parses each file with libclang, lowers every function body into a
 * small control-flow graph of context events (cfg.c for the statements,
 * cfg_expr.c for the expressions, cfg_cond.c for the conditions of branches,
 * operator.c to tell their operators),
 * searches its paths for lost, double and late releases (paths.c), checks the
 * rules that need no paths (simple.c), filters the findings through the
 * suppression comments and prints them as GCC-style text or SARIF
 * (report.c).
 */
#ifndef CCTX_VET_H
#define CCTX_VET_H

#include <clang-c/Index.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- Rules ---------------------------------------------------------------- */

enum rule {
    R_LOSTRELEASE,
    R_DOUBLERELEASE,
    R_USEAFTERRELEASE,
    R_BACKGROUND,
    R_BLOCKING,
    R_BLOCKING_LOCAL,
    R_CTXFIRST,
    R_FIELD,
    R_UNCHECKED,
    R_COUNT
};

struct rule_info {
    const char *name;
    bool on_by_default;
    const char *summary; /* one line, for --list-rules and SARIF */
};
extern const struct rule_info rules[R_COUNT];
/* Which rules run, after --enable / --disable. */
extern bool rule_on[R_COUNT];
int rule_by_name(const char *name); /* -1 if unknown */

/* ---- Findings (report.c) -------------------------------------------------- */

struct loc {
    unsigned line, col;
};

/* A location in the file being checked, or line 0 when the cursor lies in
 * another file (a header): findings are reported in the main file only. */
struct loc cursor_loc(CXCursor c);
struct loc end_loc(CXCursor c);
/* Where c is written when the user wrote it as a macro's argument (a
 * derivation as the parent of another), else cursor_loc. */
struct loc written_loc(CXCursor c);

/* Records a finding in the current file unless its rule is off or the
 * location is not in the main file. printf-style message. The same finding
 * reached on another path (the same rule at the same place) is kept once. */
void report(enum rule r, struct loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, for a finding about the function's variable var (its index in
 * the graph): findings about two variables at one place (a macro that
 * releases both) are two. */
void report_var(enum rule r, struct loc at, int var, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same, for a finding that follows from the one at anchor (a leaking
 * return from the context's definition): a comment that silences the rule at
 * anchor silences it too. Of those left at one place after the comments are
 * read (a return that leaks two contexts), the first reported speaks. */
void report_for(enum rule r, struct loc at, struct loc anchor, int var, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Starts a new file: findings are kept per file until flushed. */
void report_begin_file(const char *path, const char *abs, CXFile file);
/* Drops suppressed findings, sorts the rest and prints them (text) or keeps
 * them for the SARIF log. Returns how many were kept. */
size_t report_end_file(bool sarif);
/* Writes the SARIF 2.1.0 log of every kept finding to stdout. */
void report_sarif(void);
void report_free(void);

/* ---- Compile database (compdb.c) ----------------------------------------- */

/* The compiler arguments for path (absolute), from compile_commands.json in
 * dir or, when dir is NULL, in the current directory or its nearest parent
 * that has one. NULL-terminated, malloc'd; *n is the count. NULL if no entry. */
char **compdb_args(const char *dir, const char *path, int *n);
/* Opens the database compdb_args reads (once): false, after a message on
 * stderr, when one was given with dir or found but cannot be read. True
 * when it was read, or when none was found. */
bool compdb_open(const char *dir);
/* The directory of the database read, or NULL when none was. */
const char *compdb_dir(void);
void compdb_free_args(char **args, int n);
void compdb_close(void);

/* ---- Cursor helpers (ast.c) ----------------------------------------------- */

struct kids {
    CXCursor *v;
    unsigned n, cap;
};
/* The direct children of c, in source order. Free with kids_free. */
struct kids kids_of(CXCursor c);
void kids_free(struct kids *k);

/* c without parentheses and implicit conversions (and explicit casts when
 * casts is true). */
CXCursor strip(CXCursor c, bool casts);
/* GNU's `a ?: b`, which libclang shows as an unexposed expression of four
 * children: a, a again twice (as the condition and the first value), b. */
bool is_binary_conditional(CXCursor c);
/* The operator of a unary or binary operator cursor ("=", "!", "&", ...),
 * copied into buf; "" when it cannot be told (operator.c). */
const char *op_of(CXCursor c, char *buf, size_t size);
/* Where an EV_HANDOVER of a CCTX_AUTO context stored for the caller went. */
#define VET_STORED_FOR_THE_CALLER "stored through an out-parameter"
/* The definition of the macro whose call wrote the start of c; false when
 * no macro wrote it (operator.c). */
bool macro_definition_of(CXCursor c, CXCursor *def);
/* The macro call whose text starts where l is (in its file: a token a macro
 * wrote is at its call), as clang_getCursor finds it there, without its walk
 * of the function: a null cursor when none starts there (expansions.c). */
CXCursor macro_call_at(CXTranslationUnit tu, CXSourceLocation l);
/* Forgets the macro calls listed for a translation unit. */
void expansions_forget(void);
/* Forgets what op_of learnt of a translation unit's macros (before it is
 * disposed of: another may come at its address). */
void op_forget(void);
/* true when the spelling of the tokens of c is exactly text (a null constant). */
bool is_null_const(CXCursor c);
/* The called function's name for a call, "" if it calls through a pointer. */
void callee_name(CXCursor call, char *buf, size_t size);
/* The called function's declaration says it never returns. */
bool callee_noreturn(CXCursor call, const char *name);
/* Whether the function the call calls is a library's, not a project's own
 * of the same name (a send() of its message queue): first declared in a
 * system header, or in curl's own header wherever -I finds it, or declared
 * implicitly by the call. */
bool callee_in_system_header(CXCursor call);
/* Copies a name into dst; a name too long for it is cut before the
 * character that does not fit whole (names are UTF-8: SARIF must be too),
 * and ends in an ellipsis, so that a cut name is seen to be one. */
void copy_name(char *dst, size_t size, const char *src);
/* The type is cctx_t * (any qualifiers on the struct). */
bool is_ctx_ptr(CXType t);
/* Whether the declaration's own tokens include the word (_Noreturn): its
 * specifiers and attributes, not its parameters or body, where the same
 * word may name a parameter or a field. */
bool decl_has_token(CXCursor decl, const char *word, const char *word2);
bool in_main_file(CXCursor c);

/* ---- The CFG (cfg.c, cfg_expr.c, cfg_cond.c) ------------------------------ */

enum ev_kind {
    EV_DEF,        /* var = a new reference (cctx_with_*, cctx_ref)             */
    EV_BORROW,     /* var = a context the function does not own               */
    EV_REF,        /* cctx_ref(var) with the result dropped: one more reference */
    EV_RELEASE,    /* cctx_release(var)                                        */
    EV_AUTO_END,   /* CCTX_AUTO's cleanup runs for var (scope exit)            */
    EV_SCOPE_END,  /* var's scope ends (no cleanup): no longer a live context   */
    EV_HANDOVER,   /* var handed on: one reference goes with it (what says where:
                      NULL a thread, or a CCTX_AUTO variable returned or stored
                      through an out-parameter, which its cleanup still drops) */
    EV_USE,        /* var read (passed to a call, dereferenced, compared)      */
    EV_ESCAPE,     /* var stored outside, returned, address taken: untracked   */
    EV_NULL,       /* var is NULL here (assigned NULL, or a null-test branch)  */
    EV_SAME,       /* var equals a context it cannot be if it made its own, a
                      parameter (the == branch of `c == parent`)             */
    EV_BACKGROUND, /* cctx_background()/cctx_todo() called                     */
    EV_BLOCKING,   /* a blocking call that has a cctx_ form                    */
    EV_NORETURN,   /* the path ends: abort, exit, a _Noreturn function         */
    EV_EXIT        /* the function returns (a return, or the closing brace)    */
};

struct event {
    enum ev_kind kind;
    int var;         /* index into cfg.vars, -1 for none */
    struct loc at;
    const char *what; /* the call's name (EV_DEF, EV_BLOCKING, EV_BACKGROUND);
                         where the reference went (EV_HANDOVER); ESCAPE_ADDRESS
                         for an EV_ESCAPE that is the variable's address */
};
/* Taking a variable's address reads nothing of its context: no use after
 * release (memset(&c, ...), a call that makes c anew through &c). */
#define ESCAPE_ADDRESS "address"

struct node {
    struct event *ev;
    int nev, capev;
    int *succ;
    int nsucc, capsucc;
};

struct var {
    CXCursor decl;
    char name[64];
    bool param, autorel;
    struct loc at;
};

struct cfg {
    struct node *nodes;
    int n, cap;
    struct var *vars;
    int nvars, capvars;
    /* The variables by their declaration's hash (index + 1, 0 for none;
     * open addressing, at most half full): a function of n variables looked
     * each one up in n. */
    int *byhash;
    unsigned nbyhash; /* a power of 2, or 0 */
    int entry;
    char fname[128];
    bool too_complex; /* nested too deep to lower: not checked */
};

/* Builds the graph of a function definition; also reports `unchecked`. */
void cfg_build(struct cfg *g, CXCursor fn);
void cfg_free(struct cfg *g);

/* ---- Rules over the CFG (paths.c) and without it (simple.c) --------------- */

void check_paths(const struct cfg *g);
void check_function(CXCursor fn);        /* blocking (parameters), ctxfirst */
void check_fields(CXTranslationUnit tu); /* field */
/* The cctx_ call that replaces a blocking call, or NULL if name is not one. */
const char *blocking_replacement(const char *name);
/* The same name as a static string, or NULL. */
const char *blocking_name(const char *name);

#endif /* CCTX_VET_H */
