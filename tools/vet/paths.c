/* SPDX-License-Identifier: MIT */
/*
 * The path rules: lostrelease, doublerelease, useafterrelease, background
 * and the local-context half of blocking. For each context variable
 * of a function, a depth-first search walks the CFG carrying the variable's
 * state (how many references the function owes, whether it was released or
 * handed to a thread), as Go's lostcancel searches from the definition to a
 * return that meets no use of the cancel function. A state already seen at a
 * node is not walked again, so loops end. A parameter's search starts at the
 * entry; a local's at its own events, and leaves the paths where nothing of
 * its own follows (search, below).
 */
#include "vet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum st_kind { S_NONE, S_LIVE, S_DEAD, S_NULL, S_ESC };

struct state {
    enum st_kind kind;
    int owed;         /* references this function must still release */
    bool borrowed;    /* valid without being owed: a parameter, a copied pointer */
    bool handed;      /* DEAD because the last reference was handed on */
    bool gone;        /* out of scope: no longer a context at hand (a reference
                         still owed stays owed, reported at the return) */
    const char *how;  /* to whom: "handed to a thread", "returned", ... */
    struct loc def;   /* where the context was made */
    struct loc rel;   /* where it was last released or handed over */
    const char *what; /* the call that made it */
};

/* What tells two states apart at a node: the state's kind and counts, and
 * the one place a finding of it may still name. Where the last release was
 * is mostly left out: it only words a message, and with it each of n
 * releases on alternative paths made a state of its own at every node after
 * them, n^2 in all (a function of 3000 guarded ref-release pairs took 20 s).
 * Two paths that differ only there are walked once, and report the first
 * one's line. But a CCTX_AUTO context released outright is a finding of its
 * own at each release (its cleanup releases it again, and the finding is
 * placed at the release): rel_apart keeps those places apart, for a variable
 * with few enough releases (AUTO_REL_APART) that the n^2 stays small. A place
 * is a line and a column: two definitions or releases on one line on
 * alternative paths are two findings, which a key of the line alone made
 * one (the second path was not walked). */
struct key {
    uint64_t bits, place;
};

static uint64_t place_bits(struct loc at)
{
    return (uint64_t)at.line << 32 | at.col;
}

static struct key key(const struct state *s, bool rel_apart)
{
    /* Where the context was made words a leak, and a `background` finding
     * while it is live: it is read only while the reference may still be
     * owed, live or handed for the caller (a cctx_ref makes that one owed
     * again). Released, NULL or escaped, nothing reads it until a new
     * definition sets it: with it, each of n derivations made a state of
     * its own at every node after it, n^2 in all. */
    bool def_read = s->kind == S_LIVE || (s->kind == S_DEAD && s->handed);
    uint64_t place = def_read ? place_bits(s->def) : 0;
    if (rel_apart && s->kind == S_DEAD && !s->handed)
        place = place_bits(s->rel); /* def is not read here */
    return (struct key){(uint64_t)s->kind | (uint64_t)(s->owed & 7) << 3 |
                            (uint64_t)s->borrowed << 6 | (uint64_t)s->handed << 7 |
                            (uint64_t)s->gone << 8,
                        place};
}

struct seen {
    struct key *k;
    int n, cap;
};

static bool visit(struct seen *s, struct key k)
{
    for (int i = 0; i < s->n; i++)
        if (s->k[i].bits == k.bits && s->k[i].place == k.place)
            return false;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4;
        s->k = realloc(s->k, (size_t)s->cap * sizeof *s->k);
        if (!s->k)
            abort();
    }
    s->k[s->n++] = k;
    return true;
}

/* Where a reference still owed is lost: a return (or the function's end),
 * an assignment over the variable, or the end of a CCTX_AUTO variable's
 * scope (a break, a goto, a closing brace: its cleanup drops one, and one
 * more was owed). */
enum lost_at { LOST_AT_RETURN, LOST_AT_OVERWRITE, LOST_AT_SCOPE_END };

static void leak(const struct var *v, int self, const struct state *s, struct loc at,
                 enum lost_at where)
{
    const char *from = s->what ? s->what : "cctx_ref";
    switch (where) {
    case LOST_AT_OVERWRITE:
        report_var(R_LOSTRELEASE, s->def, self,
                   "the context %s from %s is not released before it is overwritten at line %u "
                   "(a leak)",
                   v->name, from, at.line);
        report_for(R_LOSTRELEASE, at, s->def, self,
                   "this assignment overwrites %s, made at line %u and not released", v->name,
                   s->def.line);
        return;
    case LOST_AT_SCOPE_END:
        report_var(R_LOSTRELEASE, s->def, self,
                   "the context %s from %s is not released on every path (a leak): its scope ends "
                   "at line %u with a reference owed beyond the one CCTX_AUTO releases",
                   v->name, from, at.line);
        report_for(R_LOSTRELEASE, at, s->def, self,
                   "the scope of %s, made at line %u, may end here with a reference still owed",
                   v->name, s->def.line);
        return;
    case LOST_AT_RETURN:
        report_var(R_LOSTRELEASE, s->def, self,
                   "the context %s from %s is not released on every path (a leak): the return at "
                   "line %u is reached without releasing it",
                   v->name, from, at.line);
        report_for(R_LOSTRELEASE, at, s->def, self,
                   "this return may be reached without releasing the context %s made at line %u",
                   v->name, s->def.line);
        return;
    }
}

/* One reference dropped (a release, the CCTX_AUTO cleanup, a hand-over). */
static void drop(const struct var *v, int self, struct state *s, const struct event *e)
{
    if (s->kind == S_DEAD) {
        const char *was = s->handed ? s->how : "released";
        if (e->kind == EV_AUTO_END && s->handed && strcmp(s->how, "returned") == 0)
            report_var(R_DOUBLERELEASE, s->rel, self,
                       "%s is returned here but CCTX_AUTO releases it as the function returns: "
                       "the caller gets a released context (return cctx_ref(%s))",
                       v->name, v->name);
        else if (e->kind == EV_AUTO_END)
            report_var(R_DOUBLERELEASE, s->rel, self,
                       "%s is %s here and released again by CCTX_AUTO when it goes out of scope "
                       "(set it to NULL, or cctx_ref it first)",
                       v->name, was);
        else
            report_var(R_DOUBLERELEASE, e->at, self, "%s is %s again: it was already %s at line %u",
                       v->name, e->kind == EV_HANDOVER ? "handed over" : "released", was,
                       s->rel.line);
        return;
    }
    if (s->kind != S_LIVE)
        return;
    if (s->owed > 0) {
        s->owed--;
        if (s->owed == 0 && !s->borrowed)
            s->kind = S_DEAD;
    } else if (s->borrowed) {
        s->borrowed = false;
        s->kind = S_DEAD;
    }
    s->handed = e->kind == EV_HANDOVER;
    s->how = e->what ? e->what : "handed to a thread";
    s->rel = e->at;
}

static void define(const struct var *v, int self, struct state *s, const struct event *e)
{
    if (s->kind == S_LIVE && s->owed > 0)
        leak(v, self, s, e->at, LOST_AT_OVERWRITE);
    memset(s, 0, sizeof *s);
    s->kind = S_LIVE;
    s->def = e->at;
    s->what = e->what;
    if (e->kind == EV_DEF)
        s->owed = 1;
    else
        s->borrowed = true;
}

/* Applies one event; false when the path ends. */
/* A root made in a function that was handed the context v: unless v is NULL
 * here (`if (!ctx) ctx = cctx_background();`, `ctx ? ctx : cctx_todo()`
 * give a default to a caller's NULL), it should have been derived from v. */
static void background_param(const struct cfg *g, const struct var *v, const struct state *s,
                             const struct event *e)
{
    const char *name = v->name[0] ? v->name : "(unnamed)";
    if (s->kind != S_NULL)
        report(R_BACKGROUND, e->at,
               "%s() in %s, which was handed the context %s: derive from %s so the caller's "
               "deadline and cancellation carry over",
               e->what, g->fname, name, name);
}

static bool step(const struct cfg *g, struct state *s, const struct event *e, int self)
{
    const struct var *v = &g->vars[self];
    if (e->var >= 0 && e->var != self)
        return true;
    switch (e->kind) {
    case EV_DEF:
    case EV_BORROW:
        define(v, self, s, e);
        break;
    case EV_REF:
        if (s->kind == S_DEAD && s->handed && s->how &&
            strcmp(s->how, VET_STORED_FOR_THE_CALLER) == 0) {
            /* The reference for what was stored: CCTX_AUTO's is back. */
            s->kind = S_LIVE;
            s->owed = 1;
            s->handed = false;
        } else if (s->kind == S_DEAD && !s->handed)
            report_var(R_USEAFTERRELEASE, e->at, self,
                       "%s is used after it was released at line %u", v->name, s->rel.line);
        else if (s->kind == S_LIVE && s->owed < 7) {
            if (s->owed == 0) {
                /* The first reference owed on a borrowed context (a
                 * parameter's) is made here: a leak names this line. */
                s->def = e->at;
                s->what = NULL;
            }
            s->owed++;
        }
        break;
    case EV_RELEASE:
    case EV_HANDOVER:
        drop(v, self, s, e);
        break;
    case EV_AUTO_END:
        drop(v, self, s, e);
        if (s->kind == S_LIVE && s->owed > 0)
            leak(v, self, s, e->at, LOST_AT_SCOPE_END);
        s->kind = S_NONE; /* out of scope */
        break;
    case EV_USE:
    case EV_ESCAPE:
        if (s->kind == S_DEAD && !s->handed && !(e->what && strcmp(e->what, ESCAPE_ADDRESS) == 0))
            report_var(R_USEAFTERRELEASE, e->at, self,
                       "%s is used after it was released at line %u", v->name, s->rel.line);
        if (e->kind == EV_ESCAPE)
            s->kind = S_ESC;
        break;
    case EV_SCOPE_END:
        s->gone = true;
        break;
    case EV_NULL:
        s->kind = S_NULL;
        s->gone = false;
        break;
    case EV_SAME:
        /* A context this function derived is new: it is no parameter, so
         * this branch is not taken on a path that made it (the `c !=
         * parent` test before a release). A cctx_ref is the context it was
         * given, and a borrowed one may be the parameter. */
        if (s->kind == S_LIVE && s->owed > 0 && !s->borrowed && s->what &&
            strcmp(s->what, "cctx_ref") != 0)
            return false;
        break;
    case EV_BACKGROUND:
        if (v->param)
            background_param(g, v, s, e);
        else if (s->kind == S_LIVE && !s->gone)
            report(R_BACKGROUND, e->at,
                   "%s() while the context %s (line %u) is live: derive from %s so its "
                   "deadline and cancellation carry over",
                   e->what, v->name, s->def.line, v->name);
        break;
    case EV_BLOCKING:
        if (s->kind == S_LIVE && !s->gone && !v->param)
            report(R_BLOCKING_LOCAL, e->at,
                   "%s() blocks without listening to the context %s: use %s(%s, ...)", e->what,
                   v->name, blocking_replacement(e->what), v->name);
        break;
    case EV_NORETURN:
        return false;
    case EV_EXIT:
        /* Every scope was left before (cfg.c ends them at returns and gotos
         * too): a CCTX_AUTO variable has no cleanup left to run here. */
        if (s->kind == S_LIVE && s->owed > 0)
            leak(v, self, s, e->at, LOST_AT_RETURN);
        return false;
    }
    return true;
}

struct item {
    int node;
    struct state s;
};

/* What every variable's search shares, computed once per graph. */
struct plan {
    int *reached;      /* 0, or the order in which the walk from the entry first
                          meets the node (a return, or a call that never
                          returns, ends a path) */
    int *lowest;       /* the lowest node reachable from each node, itself too */
    int *at, *from;    /* the nodes with events of variable v: at[from[v] ..
                          from[v + 1]), by index */
    struct seen *seen; /* the states seen at each node, by the search running */
    int *touched, ntouched;
};

static void *alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

static bool ends_path(const struct node *nd)
{
    for (int i = 0; i < nd->nev; i++)
        if (nd->ev[i].kind == EV_NORETURN || nd->ev[i].kind == EV_EXIT)
            return true;
    return false;
}

/* The nodes reached from the entry, as the search walks (not past a node
 * whose path ends), numbered from 1 in the order its walk from the entry
 * first meets them; 0 for the others. */
static int *reached_nodes(const struct cfg *g)
{
    int *rank = alloc((size_t)g->n, sizeof *rank), nranked = 0, n = 0, cap = 64;
    int *stack = alloc((size_t)cap, sizeof *stack);
    stack[n++] = g->entry;
    while (n > 0) {
        int u = stack[--n];
        if (rank[u])
            continue;
        rank[u] = ++nranked;
        const struct node *nd = &g->nodes[u];
        for (int i = 0; i < nd->nsucc && !ends_path(nd); i++) {
            if (n == cap) {
                cap *= 2;
                stack = realloc(stack, (size_t)cap * sizeof *stack);
                if (!stack)
                    abort();
            }
            stack[n++] = nd->succ[i];
        }
    }
    free(stack);
    return rank;
}

static const int *rank_of; /* for later_first: qsort passes no context */

/* The search's starts, the last met from the entry first: the stack is
 * taken from its end. */
static int later_first(const void *a, const void *b)
{
    int x = rank_of[((const struct item *)a)->node], y = rank_of[((const struct item *)b)->node];
    return (x < y) - (x > y);
}

/* The lowest node reachable from each node. Nodes are made in source order
 * and only a loop or a goto leads back to an earlier one, so past a
 * variable's last event a path whose lowest reachable node is later than
 * that meets none of its events again. Kosaraju's strongly connected
 * components, with explicit stacks (nesting may be 50,000 deep): the
 * components come out sources first, and each one's lowest node is the
 * least of its own and of those of the components it leads to. */
static int *lowest_reachable(const struct cfg *g)
{
    int n = g->n, nfinished = 0, top = 0, nedges = 0;
    int *finished = alloc((size_t)n, sizeof *finished);
    int *next = alloc((size_t)n, sizeof *next); /* the next successor to try */
    int *stack = alloc((size_t)n, sizeof *stack);
    bool *open = alloc((size_t)n, sizeof *open);
    for (int root = 0; root < n; root++) {
        if (open[root])
            continue;
        open[root] = true;
        stack[top++] = root;
        while (top > 0) {
            int u = stack[top - 1];
            if (next[u] < g->nodes[u].nsucc) {
                int w = g->nodes[u].succ[next[u]++];
                if (!open[w]) {
                    open[w] = true;
                    stack[top++] = w;
                }
            } else {
                finished[nfinished++] = u;
                top--;
            }
        }
    }
    /* The predecessors, for the walk of the reversed graph. */
    int *first = alloc((size_t)n + 1, sizeof *first);
    for (int u = 0; u < n; u++)
        for (int i = 0; i < g->nodes[u].nsucc; i++, nedges++)
            first[g->nodes[u].succ[i] + 1]++;
    for (int u = 0; u < n; u++)
        first[u + 1] += first[u];
    int *pred = alloc((size_t)nedges, sizeof *pred), *fill = alloc((size_t)n, sizeof *fill);
    for (int u = 0; u < n; u++)
        for (int i = 0; i < g->nodes[u].nsucc; i++) {
            int w = g->nodes[u].succ[i];
            pred[first[w] + fill[w]++] = u;
        }
    int *comp = alloc((size_t)n, sizeof *comp), *order = alloc((size_t)n, sizeof *order);
    int *low = alloc((size_t)n, sizeof *low), ncomp = 0, norder = 0;
    for (int u = 0; u < n; u++)
        comp[u] = -1;
    for (int k = nfinished - 1; k >= 0; k--) {
        int root = finished[k];
        if (comp[root] >= 0)
            continue;
        low[ncomp] = root;
        comp[root] = ncomp;
        stack[top++] = root;
        while (top > 0) {
            int u = stack[--top];
            order[norder++] = u;
            low[ncomp] = u < low[ncomp] ? u : low[ncomp];
            for (int i = first[u]; i < first[u + 1]; i++)
                if (comp[pred[i]] < 0) {
                    comp[pred[i]] = ncomp;
                    stack[top++] = pred[i];
                }
        }
        ncomp++;
    }
    /* Backwards, the components an edge leads to are done first. */
    for (int k = norder - 1; k >= 0; k--) {
        int u = order[k];
        for (int i = 0; i < g->nodes[u].nsucc; i++) {
            int d = comp[g->nodes[u].succ[i]];
            low[comp[u]] = low[d] < low[comp[u]] ? low[d] : low[comp[u]];
        }
    }
    int *lowest = alloc((size_t)n, sizeof *lowest);
    for (int u = 0; u < n; u++)
        lowest[u] = low[comp[u]];
    free(finished);
    free(next);
    free(stack);
    free(open);
    free(first);
    free(pred);
    free(fill);
    free(comp);
    free(order);
    free(low);
    return lowest;
}

static void plan_make(const struct cfg *g, struct plan *p)
{
    p->reached = reached_nodes(g);
    p->lowest = lowest_reachable(g);
    p->from = alloc((size_t)g->nvars + 1, sizeof *p->from);
    int *last = alloc((size_t)g->nvars, sizeof *last), total = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int v = 0; v < g->nvars; v++)
            last[v] = -1;
        int *fill = pass ? alloc((size_t)g->nvars, sizeof *fill) : NULL;
        for (int u = 0; u < g->n; u++)
            for (int i = 0; i < g->nodes[u].nev; i++) {
                int v = g->nodes[u].ev[i].var;
                if (v < 0 || last[v] == u)
                    continue;
                last[v] = u;
                if (pass)
                    p->at[p->from[v] + fill[v]++] = u;
                else
                    p->from[v + 1]++;
            }
        free(fill);
        if (!pass) {
            for (int v = 0; v < g->nvars; v++)
                p->from[v + 1] += p->from[v];
            total = p->from[g->nvars];
            p->at = alloc((size_t)total, sizeof *p->at);
        }
    }
    free(last);
    p->seen = alloc((size_t)g->n, sizeof *p->seen);
    p->touched = alloc((size_t)g->n, sizeof *p->touched);
    p->ntouched = 0;
}

static void plan_free(const struct cfg *g, struct plan *p)
{
    for (int i = 0; i < g->n; i++)
        free(p->seen[i].k);
    free(p->seen);
    free(p->touched);
    free(p->reached);
    free(p->lowest);
    free(p->at);
    free(p->from);
}

/* The most releases of one CCTX_AUTO variable whose places key its released
 * states (key): past it, two of its releases whose paths meet make one
 * finding, not two. 64 places cost at most 64 states at a node. */
enum { AUTO_REL_APART = 64 };

static int releases(const struct cfg *g, int self, const struct plan *p)
{
    int n = 0;
    for (int i = p->from[self]; i < p->from[self + 1]; i++) {
        const struct node *nd = &g->nodes[p->at[i]];
        for (int j = 0; j < nd->nev; j++)
            n += nd->ev[j].var == self && nd->ev[j].kind == EV_RELEASE;
    }
    return n;
}

/* A local variable's state that no event but its own can make a finding of
 * (nothing is owed, nothing is live): NONE, NULL and escaped wait for a new
 * definition, which makes the same state whatever came before; a released
 * one waits for a use or a release. */
static bool inert(const struct state *s)
{
    return s->kind == S_NONE || s->kind == S_NULL || s->kind == S_ESC;
}

/* A parameter's search walks every path from the entry. A local's starts
 * at each node with its events that the entry reaches, in the state it has
 * before its declaration, and leaves what no event of its own follows: an
 * inert state (what it meets next is one of those starts, the same state in
 * effect), and a released one on a path that cannot come back to its
 * events. Its findings are those of the walk from the entry, without that
 * walk's cost: a function of n variables, each in a block of its own, cost
 * n times the function before. */
static void search(const struct cfg *g, int self, struct plan *p)
{
    bool local = !g->vars[self].param;
    int cap = 64, n = 0;
    struct item *stack = alloc((size_t)cap, sizeof *stack);
    if (!local) {
        stack[n++] = (struct item){g->entry, {.kind = S_NONE}};
    } else {
        int need = p->from[self + 1] - p->from[self];
        if (need > cap) {
            cap = need;
            stack = realloc(stack, (size_t)cap * sizeof *stack);
            if (!stack)
                abort();
        }
        /* The first met from the entry is walked first, as the walk from
         * the entry would: where two paths make one finding, its message
         * is the same. */
        for (int i = p->from[self]; i < p->from[self + 1]; i++)
            if (p->reached[p->at[i]])
                stack[n++] = (struct item){p->at[i], {.kind = S_NONE}};
        rank_of = p->reached;
        if (n > 1)
            qsort(stack, (size_t)n, sizeof *stack, later_first);
    }
    int last = p->from[self + 1] > p->from[self] ? p->at[p->from[self + 1] - 1] : -1;
    bool rel_apart = g->vars[self].autorel && releases(g, self, p) <= AUTO_REL_APART;
    while (n > 0) {
        struct item it = stack[--n];
        if (p->seen[it.node].n == 0)
            p->touched[p->ntouched++] = it.node;
        if (!visit(&p->seen[it.node], key(&it.s, rel_apart)))
            continue;
        const struct node *nd = &g->nodes[it.node];
        bool go = true;
        for (int i = 0; i < nd->nev && go; i++)
            go = step(g, &it.s, &nd->ev[i], self);
        if (!go || (local && inert(&it.s)))
            continue;
        for (int i = 0; i < nd->nsucc; i++) {
            int to = nd->succ[i];
            if (local && it.s.kind == S_DEAD && p->lowest[to] > last)
                continue;
            if (n == cap) {
                cap *= 2;
                stack = realloc(stack, (size_t)cap * sizeof *stack);
                if (!stack)
                    abort();
            }
            stack[n++] = (struct item){to, it.s};
        }
    }
    /* The next search starts with nothing seen, in the arrays kept. */
    for (int i = 0; i < p->ntouched; i++)
        p->seen[p->touched[i]].n = 0;
    p->ntouched = 0;
    free(stack);
}

void check_paths(const struct cfg *g)
{
    struct plan p;
    plan_make(g, &p);
    for (int i = 0; i < g->nvars; i++)
        search(g, i, &p);
    plan_free(g, &p);
}
