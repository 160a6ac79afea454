/* SPDX-License-Identifier: MIT */
/*
 * CCTX_TRACE=path: a Chrome trace-event JSON file (Perfetto, chrome://tracing).
 *
 * Each thread records into a ring buffer of its own, so recording takes only
 * that buffer's lock (uncontended except while a flush drains it). When a
 * ring is full the oldest event is overwritten and counted as dropped. A
 * thread that exits writes its ring to the file and leaves it to the next
 * new thread: memory stays bounded by the threads alive at once, however
 * long the program runs and however many threads come and go. A flush (at exit, or
 * cctx_trace_flush) drains every ring into the file and leaves the file a
 * complete JSON document, so a trace taken from a running program opens as
 * is; the next flush overwrites the closing lines and goes on.
 *
 * Events, on the track of the thread where they happened:
 *   create   an X slice: the context, its kind, site, parent;
 *   cancel   a B/E slice around the whole cancellation: origin, error, cause
 *            (named "deadline" when a deadline fired). Inside it, one X slice
 *            per context the cancellation reached ("done"), each the end of
 *            a flow arrow that starts at the cancel slice; the after-functions
 *            it ran (B/E "after-function") and the releases it caused;
 *   release  an X slice when a context is freed (its last reference gone).
 * An X slice lasts until the thread's next event, at most 1 us, so that
 * slices on one track never overlap.
 *
 * Timestamps are CLOCK_MONOTONIC (real time, also under the fake clock: a
 * trace is a record of what the program did, not of virtual time).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "json.h"
#include "testhooks.h"
#if !CCTX_USE_GETTID && CCTX_USE_SYS_GETTID
#include <sys/syscall.h>
#endif

#define RING 16384 /* events per thread: about 1.6 MB */
#define TEXT 40    /* bytes of a name or message kept per event */
#define OPEN_MAX 32 /* B events nested on one track that are followed; deeper ones are left out */

enum ev_type { EV_BORN, EV_FREED, EV_CANCEL, EV_REACHED, EV_CANCEL_END, EV_AFTER, EV_AFTER_END };

struct event {
    int64_t ts;
    uint8_t type, kind;
    int16_t err;
    int32_t line, code;
    uint32_t begin;          /* B: its number on the thread (from 1); E: its B's */
    const void *ctx, *other; /* other: the parent (create), origin (cancel) */
    const char *file, *func;
    uint64_t flow;           /* REACHED: the flow id; CANCEL: its first id */
    int64_t flow_ts;         /* REACHED: the cancel slice's start */
    char text[TEXT];         /* the name (create/release) or message (cancel) */
};

struct ring {
    pthread_mutex_t lock;
    struct ring *next;      /* in all_rings */
    struct ring *next_free; /* in free_rings, once its thread has exited */
    long tid;
    char thread_name[32];
    size_t head, n;       /* oldest event, count */
    uint64_t dropped;
    int64_t lost_until;   /* the newest dropped event's time (ring's lock) */
    int named_written;    /* its thread_name metadata is in the file */
    /* B events recorded (ring's lock): how many, and the numbers of those
     * not yet ended, innermost last (past OPEN_MAX, only counted). */
    uint32_t begun, depth;
    uint32_t begins[OPEN_MAX];
    /* The outermost B whose E was dropped since the last drain (ring's
     * lock; 0: none): that B, and any written after it, are no longer open. */
    uint32_t end_dropped;
    /* The B events written and not yet closed by an E, innermost last
     * (rings_lock): their numbers, and whether each is an after-function's. */
    struct {
        uint32_t begin;
        bool after;
    } open[OPEN_MAX];
    int n_open;
    struct event ev[RING];
};

static pthread_mutex_t rings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring *all_rings, *free_rings;
static _Thread_local struct ring *my_ring;
static pthread_key_t ring_key; /* its destructor hands a ring back */
static _Atomic uint64_t next_flow = 1;

/* The file (rings_lock), and the device and inode it was opened as. */
static FILE *trace_file;
static dev_t file_dev;
static ino_t file_ino;
static long tail_at = -1; /* where the closing lines start; -1: nothing written */
static uint64_t dropped_total;
static int rings_made;
/* What a flush drains a ring into (rings_lock): made when the file is
 * opened, so that a flush never fails for memory. One that did left its
 * ring's events in it, and a thread that exited then handed them, in its
 * ring, to the next thread to record, under whose name they were written. */
static struct event *drained;
static long pid; /* of the process that opened the file */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The thread's track in the trace: the kernel's thread id (what ps, top and
 * gdb show) where it can be had: gettid (glibc 2.30, musl 1.2.2), else the
 * system call on Linux. Elsewhere (and with CCTX_PORTABLE) a number of this
 * process's own, 1 for the first thread to record, which matches nothing
 * outside the trace. */
static long thread_number(void)
{
#if CCTX_USE_GETTID
    return (long)gettid();
#elif CCTX_USE_SYS_GETTID
    return syscall(SYS_gettid);
#else
    static _Atomic long last;
    return cctx__atomic_fetch_add_relaxed(&last, 1) + 1;
#endif
}

static struct ring *ring_of_thread(void)
{
    if (cctx__likely(my_ring != NULL))
        return my_ring;
    pthread_mutex_lock(&rings_lock);
    struct ring *r = free_rings;
    if (r) {
        free_rings = r->next_free; /* written out and empty (thread_exited) */
        /* What its old thread left open stays on that one's track. */
        r->n_open = 0;
    } else if ((r = calloc(1, sizeof *r)) != NULL) {
        pthread_mutex_init(&r->lock, NULL);
        r->next = all_rings;
        all_rings = r;
        rings_made++;
    }
    pthread_mutex_unlock(&rings_lock);
    if (!r)
        return NULL;
    pthread_mutex_lock(&r->lock);
    r->tid = thread_number();
#if CCTX_USE_THREAD_NAMES
    if (pthread_getname_np(pthread_self(), r->thread_name, sizeof r->thread_name) != 0 ||
        !r->thread_name[0])
#endif
        snprintf(r->thread_name, sizeof r->thread_name, "thread %ld", r->tid);
    r->named_written = 0;
    r->depth = 0;
    pthread_mutex_unlock(&r->lock);
    my_ring = r;
    pthread_setspecific(ring_key, r);
    return r;
}

/* The events keep their sites' strings until the file is written, at exit
 * most often, while the caller's may be gone by then (a module unloaded
 * with dlclose, a buffer given to an _at function): each distinct string
 * is copied once, and kept for good. Past SITES_MAX of them, "?". */
enum { SITES_MAX = 1 << 16 };
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;
static char **sites; /* open addressing, at most half full */
static size_t sites_cap, sites_n;

static size_t site_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

/* The slot of s in a table of cap (a power of two): its own, or the free
 * one where it goes. */
static char **site_slot(char **table, size_t cap, const char *s)
{
    size_t i = site_hash(s) & (cap - 1);
    while (table[i] && strcmp(table[i], s) != 0)
        i = (i + 1) & (cap - 1);
    return &table[i];
}

static void sites_grow(void)
{
    size_t cap = sites_cap ? sites_cap * 2 : 256;
    char **table = calloc(cap, sizeof *table);
    if (!table)
        return;
    for (size_t i = 0; i < sites_cap; i++)
        if (sites[i])
            *site_slot(table, cap, sites[i]) = sites[i];
    free(sites);
    sites = table;
    sites_cap = cap;
}

/* Each thread's last copies, so that most events take no lock: found by
 * address, and taken only while the string there still reads the same. */
enum { SITE_CACHE = 16 };
static _Thread_local struct {
    const char *from, *copy;
} site_cache[SITE_CACHE];

static const char *kept_site(const char *s)
{
    if (!s)
        return NULL;
    size_t at = ((uintptr_t)s >> 3) % SITE_CACHE;
    if (site_cache[at].from == s && strcmp(site_cache[at].copy, s) == 0)
        return site_cache[at].copy;
    const char *kept = "?";
    pthread_mutex_lock(&sites_lock);
    if ((sites_n + 1) * 2 > sites_cap && sites_n < SITES_MAX)
        sites_grow();
    if ((sites_n + 1) * 2 <= sites_cap) {
        char **slot = site_slot(sites, sites_cap, s);
        if (!*slot && sites_n < SITES_MAX && (*slot = strdup(s)))
            sites_n++;
        if (*slot)
            kept = *slot;
    } else if (sites_cap) { /* full: only what is there already */
        char **slot = site_slot(sites, sites_cap, s);
        if (*slot)
            kept = *slot;
    }
    pthread_mutex_unlock(&sites_lock);
    site_cache[at].from = s;
    site_cache[at].copy = kept;
    return kept;
}

/* Returns the event's time stamp (0 if it could not be recorded). */
static int64_t record(const struct event *in)
{
    struct ring *r = ring_of_thread();
    if (!r)
        return 0;
    struct event copy = *in, *e = &copy;
    copy.file = kept_site(in->file);
    copy.func = kept_site(in->func);
    pthread_mutex_lock(&r->lock);
    size_t at = (r->head + r->n) % RING;
    if (r->n == RING) {
        const struct event *gone = &r->ev[r->head];
        r->lost_until = gone->ts;
        if ((gone->type == EV_CANCEL_END || gone->type == EV_AFTER_END) && gone->begin != 0 &&
            (r->end_dropped == 0 || (int32_t)(gone->begin - r->end_dropped) < 0))
            r->end_dropped = gone->begin;
        r->head = (r->head + 1) % RING;
        r->dropped++;
    } else {
        r->n++;
    }
    /* B and E events nest on a thread: each E is given the number of the B
     * it ends, so that a flush can tell it from an E whose B was dropped.
     * 0 is no B: one too deep to be followed, or none recorded. */
    if (e->type == EV_CANCEL || e->type == EV_AFTER) {
        if (++r->begun == 0)
            r->begun = 1;
        e->begin = r->depth < OPEN_MAX ? r->begun : 0;
        if (r->depth < OPEN_MAX)
            r->begins[r->depth] = e->begin;
        r->depth++;
    } else if (e->type == EV_CANCEL_END || e->type == EV_AFTER_END) {
        e->begin = r->depth > 0 && --r->depth < OPEN_MAX ? r->begins[r->depth] : 0;
    }
    int64_t ts = now_ns();
    r->ev[at] = *e;
    r->ev[at].ts = ts;
    pthread_mutex_unlock(&r->lock);
    return ts;
}

/* Copies at most TEXT - 1 bytes. A cut inside a well-formed UTF-8
 * character goes back to its start, so that a long name is not shown with a
 * stray U+FFFD at the end; bytes that are not UTF-8 are the writer's
 * business (json.c), and cutting never looks back more than a character's
 * length for a start. */
static void copy_text(char *dst, const char *src)
{
    if (!src)
        return;
    size_t n = strnlen(src, TEXT - 1);
    if (src[n]) {
        size_t start = n;
        while (start > 0 && n - start < 3 && ((unsigned char)src[start] & 0xc0) == 0x80)
            start--;
        uint32_t cp;
        if (start < n && cctx__utf8_char((const unsigned char *)src + start, &cp) > n - start)
            n = start;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---- Hooks ------------------------------------------------------------------------ */

void cctx__trace_born(const struct cctx *c)
{
    struct event e = {.type = EV_BORN,
                      .kind = (uint8_t)cctx__kind(c),
                      .ctx = c,
                      .other = c->parent,
                      .file = c->file,
                      .line = cctx__line(c),
                      .func = c->func};
    record(&e);
}

void cctx__trace_freed(const struct cctx *c, const struct cctx *parent, const char *file,
                       int line, const char *func)
{
    struct event e = {.type = EV_FREED,
                      .kind = (uint8_t)cctx__kind(c),
                      .ctx = c,
                      .other = parent,
                      .file = file,
                      .line = line,
                      .func = func};
    copy_text(e.text, cctx_name(c));
    record(&e);
}

uint64_t cctx__trace_cancel_begin(const struct cctx *c)
{
    /* c is the origin, and done: its cause is there to read. */
    const struct cctx__cancelable *cc = (const struct cctx__cancelable *)c;
    cctx_cause_t cause;
    cctx__cause_fill(cc, &cause);
    struct event e = {.type = EV_CANCEL,
                      .kind = (uint8_t)cctx__kind(c),
                      .err = cause.err,
                      .code = cause.code,
                      .ctx = c,
                      .other = cctx__cause_origin(cctx__cause_at(cc)),
                      .file = cause.file,
                      .line = cause.line,
                      .func = cause.func,
                      .flow = cctx__atomic_fetch_add_seq_cst(&next_flow, 1)};
    copy_text(e.text, cause.msg);
    /* The REACHED events need the slice's start, to bind their arrows' tails. */
    return (uint64_t)record(&e);
}

void cctx__trace_reached(const struct cctx *c, uint64_t begin_ts)
{
    struct event e = {.type = EV_REACHED,
                      .kind = (uint8_t)cctx__kind(c),
                      .ctx = c,
                      .file = c->file,
                      .line = cctx__line(c),
                      .func = c->func,
                      .flow = cctx__atomic_fetch_add_seq_cst(&next_flow, 1),
                      .flow_ts = (int64_t)begin_ts};
    record(&e);
}

void cctx__trace_cancel_end(uint64_t begin_ts)
{
    (void)begin_ts;
    struct event e = {.type = EV_CANCEL_END};
    record(&e);
}

void cctx__trace_after(const struct cctx__after *a, int begin)
{
    struct event e = {.type = begin ? EV_AFTER : EV_AFTER_END};
    if (begin) {
        e.ctx = a->owner;
        e.file = a->file;
        e.line = a->line;
        e.func = a->func;
    }
    record(&e);
}

/* Cancellations under way on other threads when the program exits are given
 * a moment (up to 1 s) to record their last events. Those of the exiting
 * thread itself (exit called from an after-function) cannot end first. */
static _Atomic uint32_t busy, draining;
static _Thread_local uint32_t my_busy;

void cctx__trace_busy_handover(int delta)
{
    my_busy += (uint32_t)delta;
}

void cctx__trace_busy(int delta)
{
    my_busy += (uint32_t)delta;
    cctx__atomic_fetch_add_seq_cst(&busy, (uint32_t)delta);
    if (delta < 0 && cctx__atomic_load_seq_cst(&draining))
        cctx__os_wake(&busy);
}

void cctx__trace_drain(void)
{
    cctx__atomic_store_seq_cst(&draining, 1);
    int64_t until = cctx__os_now() + CCTX_SEC(1);
    for (uint32_t b; (b = cctx__atomic_load_seq_cst(&busy)) > my_busy;)
        if (cctx__os_wait(&busy, b, until) == ETIMEDOUT)
            break;
}

/* ---- Writing ---------------------------------------------------------------------- */

static const char *kind_word(int k)
{
    static const char *const words[] = {"?",     "root",           "cancel",   "deadline",
                                        "value", "without_cancel", "released", "cancel"};
    _Static_assert(sizeof words / sizeof *words == KIND_BORN_DONE + 1, "a kind has no word");
    return k >= 0 && k <= KIND_BORN_DONE ? words[k] : "?";
}

static const char *err_word(int err)
{
    return err == ECANCELED ? "ECANCELED" : err == ETIMEDOUT ? "ETIMEDOUT" : "0";
}

/* Microseconds with nanosecond digits, as the format wants. */
static void put_ts(FILE *f, int64_t ns)
{
    fprintf(f, "%" PRId64 ".%03d", ns / 1000, (int)(ns % 1000));
}

static void put_head(FILE *f, const struct ring *r, int64_t ts, const char *ph, const char *name)
{
    fprintf(f, ",\n{\"pid\":%ld,\"tid\":%ld,\"ts\":", pid, r->tid);
    put_ts(f, ts);
    fprintf(f, ",\"ph\":\"%s\",\"cat\":\"cctx\",\"name\":", ph);
    cctx__json_str(f, name);
}

static void put_site(FILE *f, const char *key, const char *file, int line, const char *func)
{
    /* "file:line" in one string, written in pieces so that no file name is
     * too long for it. */
    fprintf(f, ",\"%s\":\"", key);
    cctx__json_body(f, file ? file : "?");
    fprintf(f, ":%d\",\"func\":", line);
    cctx__json_str(f, func ? func : "?");
}

/* lost_until: the ring's, as it was when these events were drained; its
 * thread goes on dropping (and moving it) while they are written. */
static void write_event(FILE *f, struct ring *r, const struct event *e, int64_t next_ts,
                        int64_t lost_until)
{
    /* Dropping the oldest events can cut a slice's start or an arrow's tail
     * off: an E whose B is not the innermost open in the file is left out,
     * and so is an arrow whose cancel slice may be gone (it started no
     * later than the newest dropped event). A viewer ends the innermost
     * open B of the track with each E, whatever its name: an E whose B was
     * dropped while an outer B was written by an earlier flush would end
     * that one. (A written B whose E was dropped is ended by write_ring.) */
    if (e->type == EV_CANCEL_END || e->type == EV_AFTER_END) {
        if (e->begin == 0 || r->n_open == 0 || r->open[r->n_open - 1].begin != e->begin)
            return; /* its B is not in the file: not followed, or dropped */
        r->n_open--;
    } else if (e->type == EV_CANCEL || e->type == EV_AFTER) {
        if (r->n_open == OPEN_MAX || e->begin == 0)
            return; /* not followed (too deep): left out, and its E with it */
        r->open[r->n_open].begin = e->begin;
        r->open[r->n_open].after = e->type == EV_AFTER;
        r->n_open++;
    }
    bool arrow = e->type == EV_REACHED && e->flow_ts > lost_until;
    /* An X slice ends before the thread's next event, and lasts at most 1 us. */
    int64_t dur = next_ts > e->ts ? next_ts - e->ts : 0;
    if (dur > 1000)
        dur = 1000;
    char name[96];
    switch (e->type) {
    case EV_BORN:
    case EV_FREED:
    case EV_REACHED:
        snprintf(name, sizeof name, "%s %s",
                 e->type == EV_BORN ? "create" : e->type == EV_FREED ? "release" : "done",
                 kind_word(e->kind));
        if (arrow) { /* the arrow's tail, bound to the cancel slice */
            fprintf(f, ",\n{\"pid\":%ld,\"tid\":%ld,\"ts\":", pid, r->tid);
            put_ts(f, e->flow_ts);
            fprintf(f, ",\"ph\":\"s\",\"cat\":\"cctx\",\"name\":\"cancel\",\"id\":%" PRIu64 "}",
                    e->flow);
        }
        put_head(f, r, e->ts, "X", name);
        fprintf(f, ",\"dur\":");
        put_ts(f, dur);
        fprintf(f, ",\"args\":{\"ctx\":\"%p\"", e->ctx);
        if (e->type != EV_REACHED)
            fprintf(f, ",\"parent\":\"%p\"", e->other);
        put_site(f, e->type == EV_FREED ? "released_at" : "made_at", e->file, e->line, e->func);
        if (e->text[0]) {
            fprintf(f, ",\"name\":");
            cctx__json_str(f, e->text);
        }
        fprintf(f, "}}");
        if (arrow) { /* the arrow's head, bound to this slice */
            fprintf(f, ",\n{\"pid\":%ld,\"tid\":%ld,\"ts\":", pid, r->tid);
            put_ts(f, e->ts);
            fprintf(f, ",\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"cctx\",\"name\":\"cancel\","
                       "\"id\":%" PRIu64
                       "}", e->flow);
        }
        break;
    case EV_CANCEL:
        put_head(f, r, e->ts, "B", e->err == ETIMEDOUT ? "deadline" : "cancel");
        fprintf(f, ",\"args\":{\"ctx\":\"%p\",\"kind\":\"%s\",\"origin\":\"%p\",\"err\":\"%s\","
                   "\"code\":%d,\"msg\":", e->ctx, kind_word(e->kind), e->other,
                err_word(e->err), e->code);
        cctx__json_str(f, e->text);
        put_site(f, "origin_at", e->file, e->line, e->func);
        fprintf(f, "}}");
        break;
    case EV_AFTER:
        put_head(f, r, e->ts, "B", "after-function");
        fprintf(f, ",\"args\":{\"ctx\":\"%p\"", e->ctx);
        put_site(f, "registered_at", e->file, e->line, e->func);
        fprintf(f, "}}");
        break;
    default: /* EV_CANCEL_END, EV_AFTER_END */
        put_head(f, r, e->ts, "E", e->type == EV_AFTER_END ? "after-function" : "cancel");
        fprintf(f, "}");
        break;
    }
}

/* Goes back to the start of the file's closing lines (rings_lock held); 0
 * or an errno value. A program may close every descriptor it did not open
 * (daemons do, at start-up) and get the file's number again for a file of
 * its own: a seek, write and truncate on that number would overwrite it.
 * So the descriptor is checked first, and once it is no longer the trace's
 * file, tracing ends, said on stderr. The stream is left unclosed, as
 * fclose would close the program's descriptor; its buffer is empty (each
 * flush ends with fflush), so exit() writes nothing through it. */
static int file_reopen(void)
{
    if (!trace_file)
        return EIO;
    struct stat st;
    if (fstat(fileno(trace_file), &st) != 0 || st.st_dev != file_dev || st.st_ino != file_ino) {
        fputs("cctx: CCTX_TRACE: the program closed the trace file's descriptor, tracing off\n",
              stderr);
        trace_file = NULL;
        cctx__atomic_fetch_and_seq_cst(&cctx__debug, ~(unsigned)CCTX__DEBUG_TRACE);
        return EIO;
    }
    return fseek(trace_file, tail_at, SEEK_SET) == 0 ? 0 : EIO;
}

/* Drains r into the file (rings_lock held; copy has room for RING events). */
static void write_ring(FILE *f, struct ring *r, struct event *copy)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->n;
    for (size_t i = 0; i < n; i++)
        copy[i] = r->ev[(r->head + i) % RING];
    r->head = (r->head + n) % RING;
    r->n = 0;
    dropped_total += r->dropped;
    r->dropped = 0;
    long tid = r->tid;
    int64_t lost_until = r->lost_until;
    uint32_t end_dropped = r->end_dropped;
    r->end_dropped = 0;
    pthread_mutex_unlock(&r->lock);
    if (n == 0)
        return;
    if (!r->named_written) {
        fprintf(f, ",\n{\"pid\":%ld,\"tid\":%ld,\"ph\":\"M\",\"name\":\"thread_name\","
                   "\"args\":{\"name\":", pid, tid);
        cctx__json_str(f, r->thread_name);
        fprintf(f, "}}");
        r->named_written = 1;
    }
    /* The B events written earlier whose E was dropped: that one's and the
     * later ones' (nested in it, as each began before it ended), innermost
     * last, as B numbers go up (as 32-bit numbers, which may wrap). Each
     * ends with the newest dropped event, before the kept ones, rather
     * than stay open and take a later slice's E, or hold it inside. */
    while (end_dropped != 0 && r->n_open > 0 &&
           (int32_t)(r->open[r->n_open - 1].begin - end_dropped) >= 0) {
        r->n_open--;
        put_head(f, r, lost_until, "E", r->open[r->n_open].after ? "after-function" : "cancel");
        fprintf(f, "}");
    }
    for (size_t i = 0; i < n; i++)
        write_event(f, r, &copy[i], i + 1 < n ? copy[i + 1].ts : copy[i].ts + 1000, lost_until);
}

static const char TAIL_FMT[] = "\n],\n\"otherData\":{\"producer\":\"cctx\","
                               "\"dropped_events\":\"%" PRIu64
                               "\",\"buffers\":\"%d\"}}\n";

/* Writes `only` (or every ring) to the file and closes the document. Its
 * writes are cancellation points, made holding rings_lock: a thread with a
 * pthread_cancel pending died in one holding it, the events it had drained
 * lost, and every later flush, new thread's first event, traced thread's
 * exit and fork waited for ever. The file is a regular file (see
 * cctx__trace_start), whose writes wait for no reader, so the flush runs
 * with cancellation off, and a pending cancel acts at the thread's next
 * cancellation point. */
static int flush(struct ring *only)
{
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    pthread_mutex_lock(&rings_lock);
    int err = file_reopen();
    if (err) {
        pthread_mutex_unlock(&rings_lock);
        pthread_setcancelstate(state, NULL);
        return err;
    }
    /* Drained under each ring's lock into a copy, written outside it, so a
     * thread recording is held up only for the copy. */
    for (struct ring *r = only ? only : all_rings; r; r = only ? NULL : r->next)
        write_ring(trace_file, r, drained);
    tail_at = ftell(trace_file);
    fprintf(trace_file, TAIL_FMT, dropped_total, rings_made);
    if (fflush(trace_file) != 0 || ferror(trace_file) ||
        ftruncate(fileno(trace_file), ftell(trace_file)) != 0)
        err = EIO;
    pthread_mutex_unlock(&rings_lock);
    pthread_setcancelstate(state, NULL);
    return err;
}

int cctx_trace_flush(void)
{
    if (!(cctx__atomic_load_seq_cst(&cctx__debug) & CCTX__DEBUG_TRACE))
        return 0;
    return flush(NULL);
}

static void thread_exited(void *arg)
{
    struct ring *r = arg;
    my_ring = NULL; /* a later destructor's event takes a ring again */
    flush(r);
    pthread_mutex_lock(&rings_lock);
    r->next_free = free_rings;
    free_rings = r;
    pthread_mutex_unlock(&rings_lock);
}

/* A fork waits for a flush under way to end: a flush ends with fflush
 * before it lets go of rings_lock, so the child's copy of the file's stdio
 * buffer is empty, and its exit() has nothing of the parent's to write.
 * Under rings_lock only a ring's lock is taken, and a ring's lock is held
 * over no other lock, so taking it before a fork cannot deadlock. */
static void trace_fork_prepare(void)
{
    pthread_mutex_lock(&rings_lock);
}

static void trace_fork_parent(void)
{
    pthread_mutex_unlock(&rings_lock);
}

/* A child of fork() has copies of the parent's rings and of its file
 * position: writing them would corrupt the parent's file. It does not trace
 * (a program it execs reads CCTX_TRACE anew: put %p in the path to give
 * each process its own file). */
static void trace_off_in_child(void)
{
    cctx__atomic_fetch_and_seq_cst(&cctx__debug, ~(unsigned)CCTX__DEBUG_TRACE);
    trace_file = NULL;
    pthread_mutex_unlock(&rings_lock); /* taken by this thread in prepare */
}

void cctx__test_hold_trace_lock(bool hold)
{
    if (hold)
        pthread_mutex_lock(&rings_lock);
    else
        pthread_mutex_unlock(&rings_lock);
}

int cctx__trace_start(const char *path)
{
    /* The path, with each %p replaced by the process id: as long as it
     * comes, since a path cut to fit a buffer would name another file. */
    pid = (long)getpid();
    char *name = NULL;
    size_t size = 0;
    FILE *expand = open_memstream(&name, &size);
    if (!expand) {
        fputs("cctx: CCTX_TRACE: out of memory, tracing off\n", stderr);
        return ENOMEM;
    }
    for (const char *s = path; *s; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            fprintf(expand, "%ld", pid);
            s++;
        } else {
            fputc(*s, expand);
        }
    }
    if (fclose(expand) != 0 || !name) {
        free(name);
        fputs("cctx: CCTX_TRACE: out of memory, tracing off\n", stderr);
        return ENOMEM;
    }
    /* Opened now, so that a path that cannot be written is said at once;
     * without waiting, as a FIFO with no reader would have it wait (ENXIO
     * then). */
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0666);
    int err = fd < 0 ? errno : 0;
    if (!err) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
            !(trace_file = fdopen(fd, "w"))) {
            err = errno;
            close(fd);
        }
    }
    if (err) {
        fprintf(stderr, "cctx: CCTX_TRACE: cannot write %s (%s), tracing off\n", name,
                strerror(err));
        free(name);
        return err;
    }
    /* Each write goes back over the closing lines of the last (a complete
     * document after each): a pipe, a FIFO or a terminal cannot be, and
     * every write would fail, unsaid. */
    struct stat st;
    if (fstat(fileno(trace_file), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "cctx: CCTX_TRACE: %s is not a regular file, tracing off\n", name);
        fclose(trace_file);
        trace_file = NULL;
        free(name);
        return ESPIPE;
    }
    free(name);
    file_dev = st.st_dev;
    file_ino = st.st_ino;
    if (!(drained = malloc(sizeof(struct event) * RING)) ||
        pthread_key_create(&ring_key, thread_exited) != 0 ||
        pthread_atfork(trace_fork_prepare, trace_fork_parent, trace_off_in_child) != 0) {
        fputs("cctx: CCTX_TRACE: out of resources, tracing off\n", stderr);
        fclose(trace_file);
        trace_file = NULL;
        free(drained);
        drained = NULL;
        return ENOMEM;
    }
    fprintf(trace_file,
            "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n"
            "{\"pid\":%ld,\"ph\":\"M\",\"name\":\"process_name\","
            "\"args\":{\"name\":\"cctx trace\"}}",
            pid);
    tail_at = ftell(trace_file);
    fprintf(trace_file, TAIL_FMT, dropped_total, rings_made);
    fflush(trace_file);
    return 0;
}
