/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=laggy=DURATION: contexts still referenced DURATION after they
 * were canceled, each reported once on stderr.
 *
 * The work that does not listen shows as a canceled context somebody still
 * holds. A library thread (started before main, signals blocked, like the
 * others) looks through the registry every DURATION/2 (at least every 1 ms,
 * at most every second): a context whose error is set, whose cancellation
 * (cause.when) is DURATION old or older, and which is not yet marked, gets
 * marked (a byte of its registry entry) and reported, with the line
 * cctx_dump's text form gives it: creation site, name, references, cause.
 * So a report comes between DURATION and 1.5 DURATION after the cancel,
 * once per context. Nothing here runs unless the switch is on; a child of
 * fork() has no such thread.
 *
 * Lock order: the visit runs under one registry shard lock at a time and
 * takes no other (cctx_err and cctx__try_ref take none); the causes are
 * read, the marks set (a shard lock alone) and the lines formatted after
 * it, into memory; they reach stderr once every reference is let go.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static int64_t after;

struct found {
    struct cctx **v;
    size_t n, cap;
    int64_t now;
};

/* Under a shard lock: every canceled context not yet reported, referenced.
 * Its cause is read later, holding it: one whose count reached zero is being
 * freed, and its cause may already be gone (its error, in the context, is
 * still there, and a value context's source is held by it). */
static void look(struct cctx *c, uint8_t *mark, void *arg)
{
    struct found *f = arg;
    enum cctx__kind k = cctx__kind(c);
    if (*mark || k == KIND_ROOT || k == KIND_DETACHED || !cctx_err(c))
        return;
    if (f->n == f->cap) { /* room first: the reference must not be dropped here */
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct cctx **v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return; /* next time */
        f->v = v;
        f->cap = cap;
    }
    if (cctx__try_ref(c))
        f->v[f->n++] = c;
}

/* Formats the pass's reports into *m (NULL: out of memory, none this time)
 * and lets go of every context it took: no reference is held while the
 * text goes out, as a stderr that blocks (a full pipe to a stalled logger,
 * a terminal held with ^S) would keep the program's contexts, and their
 * ancestors, alive as long, and a cctx_cancel_and_wait waiting on them. */
static void report(struct found *f, FILE *m)
{
    for (size_t i = 0; i < f->n; i++) {
        struct cctx *c = f->v[i];
        cctx_cause_t why;
        cctx_cause(c, &why);
        int64_t age = cctx__sat_sub(f->now, why.when); /* the fake clock may go back */
        if (m && age >= after && !cctx__registry_mark(c)) {
            char setting[32]; /* as written: 1ns is not "0.0ms" */
            cctx__format_duration(setting, sizeof setting, after);
            fprintf(m,
                    "cctx: laggy: a context still referenced %.1f ms after it was "
                    "canceled (CCTX_DEBUG=laggy=%s):\n",
                    (double)age / 1e6, setting);
            cctx__dump_text_line(m, c, NULL, 1, 1, 0);
        }
        cctx__runner_release(c, CCTX__SITE);
    }
    f->n = 0;
}

static void *laggy_main(void *arg)
{
    (void)arg;
    int64_t every = after / 2;
    every = every < CCTX_MSEC(1) ? CCTX_MSEC(1) : every > CCTX_SEC(1) ? CCTX_SEC(1) : every;
    struct timespec ts = {every / 1000000000, every % 1000000000};
    struct found f = {0};
    for (;;) {
        nanosleep(&ts, NULL);
        /* Its references are a dump's to the leak report at exit, and it
         * takes none once that report has begun: the thread ends there,
         * and its list, kept from pass to pass, goes with it. */
        if (!cctx__dump_began()) {
            free(f.v);
            return NULL;
        }
        f.now = cctx_now();
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        cctx__registry_visit(look, &f);
        report(&f, m);
        cctx__dump_ended(); /* before the write: the report at exit need not wait for it */
        /* One write for the pass, so that other threads' lines never fall
         * inside a report. */
        if (m && fclose(m) == 0 && len) {
            fwrite(text, 1, len, stderr);
            fflush(stderr);
        }
        free(text);
    }
    return NULL;
}

void cctx__laggy_start(int64_t d)
{
    after = d;
    if (cctx__os_thread_start(laggy_main, NULL) != 0)
        fputs("cctx: CCTX_DEBUG=laggy: cannot start its thread; no reports\n", stderr);
}
