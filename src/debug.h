/* SPDX-License-Identifier: MIT */
/*
 * The debugging switches and the views of the tree: CCTX_DEBUG (registry,
 * leaks, checks, laggy, inspect), CCTX_TRACE, the text, JSON and HTML dumps'
 * shared pieces, and what cctx_cancel_and_wait watches. With every switch
 * off, the core's only cost is the test of cctx__debug_on in a few slow paths.
 */
#ifndef CCTX_DEBUG_H
#define CCTX_DEBUG_H

#include <stdbool.h>
#include <stdio.h>

#include "layout.h"

/* names.c: the name table */
void cctx__name_forget(struct cctx *c);
/* dump.c: one line of the text dump */
/* Writes s as the text form writes a quoted string's body (escaped). */
void cctx__dump_put_text(FILE *out, const char *s);
void cctx__dump_text_line(FILE *out, struct cctx *c, struct cctx *lister, int depth,
                          unsigned held, size_t children);

/* quiesce.c: contexts cctx_cancel_and_wait watches without holding them.
 * A watched context has WORD_WATCHED set; its death (cctx__debug_dying)
 * forgets it while cctx__watching says some waiter watches. */
extern _Atomic unsigned cctx__watching;
void cctx__watch_forget(struct cctx *c);

/* dump_html.c: the page around a JSON dump (CCTX_DUMP_HTML). begin writes
 * everything up to the opening of the data element, given the dump time;
 * end closes it and writes the viewer. */
void cctx__html_begin(FILE *out, int64_t now);
void cctx__html_end(FILE *out);

/* debug.c: the switches (CCTX_DEBUG, CCTX_TRACE), read once before main. */
enum {
    CCTX__DEBUG_REGISTRY = 1u << 0, /* every live context is in the registry  */
    CCTX__DEBUG_LEAKS = 1u << 1,    /* report the live ones at exit            */
    CCTX__DEBUG_STRICT = 1u << 2,   /* ... and then exit with status 1         */
    CCTX__DEBUG_CHECKS = 1u << 3,   /* tombstones; misuse aborts with the site */
    CCTX__DEBUG_TRACE = 1u << 4,    /* trace.c records events                  */
    CCTX__DEBUG_LAGGY = 1u << 5,    /* laggy.c reports contexts held too long  */
    CCTX__DEBUG_INSPECT = 1u << 6,  /* inspect.c serves the tree on a socket   */
};
#define CCTX__LEAK_EXIT_STATUS 1
/* The leak report's passes over the counts, at most (debug.c: report_leaks). */
#define CCTX__LEAK_PASSES 4
extern _Atomic unsigned cctx__debug;
#define cctx__debug_on(bits) cctx__unlikely(cctx__atomic_load_relaxed(&cctx__debug) & (bits))
/* Turns switches on (the test hooks call it before making any context). */
void cctx__debug_enable(unsigned bits);
/* A context was made / is being freed (its last reference is gone). dying
 * returns true when it kept c as a tombstone, which the caller must then not
 * free. */
void cctx__debug_born(struct cctx *c);
bool cctx__debug_dying(struct cctx *c, struct cctx *parent, const char *file, int line,
                       const char *func);
/* Every registered live context, each with a reference the caller drops;
 * ENOTSUP when the registry is off, ENOMEM. */
struct cctx__registered {
    struct cctx *ctx;
    uint64_t seq; /* creation order */
};
int cctx__registry_snapshot(struct cctx__registered **out, size_t *n);
/* dump.c: sorts a snapshot by parent, then creation; in one so sorted, the
 * entries whose parent is p are [*lo, return value). */
void cctx__registered_by_parent(struct cctx__registered *v, size_t n);
size_t cctx__registered_children(const struct cctx__registered *v, size_t n, const struct cctx *p,
                                 size_t *lo);
/* A dump (or a held-by report, or a laggy pass) holds references on the
 * contexts it shows from began to ended, and takes none before it began;
 * the leak report at exit waits for those to end. False once that report
 * has begun: the caller then takes no reference, and calls no ended. */
bool cctx__dump_began(void);
void cctx__dump_ended(void);
/* A look's reference handed to a runner to drop (cctx__runner_release):
 * the leak report waits for it as for a dump under way. */
void cctx__dump_release_queued(void);
void cctx__dump_release_dropped(void);
/* Calls fn on every registered live context under its shard lock, with a
 * byte of the entry the switches may use (laggy: reported). fn takes no
 * lock, and takes a reference only with cctx__try_ref (dropping one there
 * could free a context, which takes the shard lock). */
void cctx__registry_visit(void (*fn)(struct cctx *c, uint8_t *mark, void *arg), void *arg);
/* Sets c's mark; returns what it was. */
bool cctx__registry_mark(const struct cctx *c);

/* laggy.c, inspect.c: the threads of two switches, started before main. */
void cctx__laggy_start(int64_t after);
void cctx__inspect_start(void);
/* Reports a misuse of the API (with c's creation and release sites when
 * known) and aborts. Calls that record no site (file NULL) pass their return
 * address as `caller`, which is reported as object+offset. */
_Noreturn void cctx__misuse(const char *what, const struct cctx *c, const char *file, int line,
                            const char *func, const void *caller);
void cctx__check_live_slow(const struct cctx *c, const char *what, const char *file, int line,
                           const char *func, const void *caller);
#define CCTX__CALLER __builtin_return_address(0)
/* A tombstone has no source, no deadline and no parent, so each call tests
 * for one only on the path such contexts take anyway (no source found, end
 * of the chain): with the switch off that path never meets one, and the
 * common paths pay nothing. */
#define cctx__check_tombstone(c, what, file, line, func)                             \
    do {                                                                              \
        if (cctx__unlikely(cctx__kind(c) == KIND_FREED))                              \
            cctx__check_live_slow((c), (what), (file), (line), (func), CCTX__CALLER); \
    } while (0)
/* With checks on, a touch of a tombstone is reported; else nothing. */
#define cctx__check_live(c, what, file, line, func)                                  \
    do {                                                                              \
        if (cctx__debug_on(CCTX__DEBUG_CHECKS))                                       \
            cctx__check_live_slow((c), (what), (file), (line), (func), CCTX__CALLER); \
    } while (0)

/* trace.c: CCTX_TRACE. */
int cctx__trace_start(const char *path);
void cctx__trace_born(const struct cctx *c);
void cctx__trace_freed(const struct cctx *c, const struct cctx *parent, const char *file,
                       int line, const char *func);
/* A cancellation that starts at c with cause, and each context it reaches
 * (begin returns a token that the others take). */
uint64_t cctx__trace_cancel_begin(const struct cctx *c);
void cctx__trace_reached(const struct cctx *c, uint64_t begin);
void cctx__trace_cancel_end(uint64_t begin);
/* +1 when a cancellation starts, -1 when its last event is recorded; the
 * flush at exit waits (a little) for the count to reach 0. */
void cctx__trace_busy(int delta);
/* A cancellation counted by one thread goes on on another: each moves its
 * own share (-1 on the giver, +1 on the taker) while the total stays. */
void cctx__trace_busy_handover(int delta);
void cctx__trace_drain(void);
/* An after-function starts (a: its registration) or ends (a: NULL). */
void cctx__trace_after(const struct cctx__after *a, int begin);

#endif
