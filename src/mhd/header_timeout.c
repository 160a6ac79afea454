/* SPDX-License-Identifier: MIT */
/*
 * The header deadline (options.header_timeout), as Go's
 * Server.ReadHeaderTimeout: the time a request's line and headers may take
 * to come in. libmicrohttpd 0.9.75 has none, and its idle timeout starts
 * again at every byte, so a client sending one byte less often than that
 * (a Slowloris) would hold its connection for ever.
 *
 * When the clock starts:
 *  - the first request of a connection: at its accept. A connection that
 *    sends nothing is closed after header_timeout, as Go closes it.
 *  - a later one: at its first bytes, as Go's, which starts once it has
 *    peeked at four bytes of the request (at once if they came before the
 *    answer was out). libmicrohttpd calls nothing then and reads the bytes
 *    off the socket at once (FIONREAD shows none), but the kernel counts
 *    the bytes a TCP socket received (TCP_INFO, Linux 4.1): the watcher
 *    reads that count at its first look after the completion of the
 *    request before, and starts the clock at the look that finds it grown
 *    by four. Bytes already counted then (pipelined behind the request
 *    before, or sent within a look of the answer) are not seen; the
 *    request line, which libmicrohttpd reports (the URI callback), starts
 *    the clock at the next look too. At the latest it starts at that
 *    completion plus the idle time a keep-alive client may wait before it
 *    sends a byte (idle_timeout, as libmicrohttpd counts it: whole
 *    seconds, rounded up), which is Go's bound as well (its four bytes
 *    must come within its IdleTimeout); without an idle timeout
 *    (idle_timeout < 0) there is no latest start. So a client that
 *    trickles a later request is closed within header_timeout plus two
 *    looks of its fourth byte (plus up to 100 ms with a header_timeout
 *    under 400 ms: the counts that wait for bytes are read only at looks
 *    at least 100 ms apart), or of its request line; one that sends a
 *    few bytes at once and trickles the rest slower still keeps its
 *    connection for idle_timeout + header_timeout after each answer, as
 *    one that sends three bytes does with Go. Without the count (not TCP,
 *    a kernel before 4.1, not Linux) only the request line and the latest
 *    start remain, so a trickled request line escapes until then.
 *    Every start comes at or after the moment Go's clock would start, so
 *    an honest client is never closed earlier than Go would close it, and
 *    an idle keep-alive connection, whose count does not grow, is closed
 *    by idle_timeout alone.
 * The headers are in at on_request's first call for the request (before
 * its body is read), which stops the clock: a body, a handler, an answer
 * are never timed by it.
 *
 * Where: the watcher, which knows every connection by descriptor, looks
 * at every slot each header_timeout / 4 (at least 10 ms, at most 1 s
 * apart). The request path stores a mark that a clock started (a slot's
 * `hdr`, HDR_SINCE_*) under the watch's lock it already takes (accept,
 * completion), notes a later request's line there too (the slot's `next`),
 * and stores 0 at the headers, without a lock; it reads no clock. The
 * watcher's next look reads the time after taking the lock, so every mark
 * it finds was stored before that time, and turns the mark into a
 * deadline from it (from a completion, the latest start's): never before
 * the clock's true start plus the timeout, at most one look after. A
 * later start (the request line, the count grown) swaps in an earlier
 * deadline, from a time read after it was seen. A connection whose
 * deadline has passed has its socket shut down (both sides), under the
 * lock while the slot is open, so never a later connection with the same
 * descriptor (watch.c, at the top); libmicrohttpd's next read then finds
 * the end and it closes the connection, with no answer (as Go). Both
 * sides: no answer is being written while headers are awaited
 * (libmicrohttpd reads a request only once the answer before it is handed
 * to the kernel, which still sends what it queued before the end), and
 * the read side is what wakes libmicrohttpd. A connection is closed
 * within header_timeout plus two looks of the clock's start.
 *
 * The counts are read outside the lock, which libmicrohttpd's thread takes
 * at every request line and completion: the look notes each slot that
 * wants one (its generation, its `next`, its deadline), reads them all,
 * then takes the lock again and applies each to a slot still as it was.
 * Reading a count changes nothing, so one read from a descriptor closed
 * and reused meanwhile is harmless, and dropped: a close changes the
 * slot's generation (before the descriptor is closed), a completion the
 * deadline (to a mark), the headers too (to 0), the request line `next`;
 * and only the watcher turns a mark into a deadline, so an unchanged
 * deadline is the same wait. The four bytes are counted after the count
 * before them was read, which was after the completion, so they are the
 * next request's (or its client's end: the kernel counts a FIN as one).
 *
 * The store at the headers is made on libmicrohttpd's thread without the
 * lock: the table of slots grows only on that thread (under the lock,
 * cctx__mhd_watch_open), and is freed only once that thread has ended,
 * so that thread reads the table's address and size without the lock
 * while the others read them under it. `hdr` is atomic: that store races
 * only with the watcher's compare-and-swaps (every other store of it is
 * under the lock), and a swap that finds the 0 leaves it. Relaxed: the
 * word carries nothing else, and the order of its own changes decides. A
 * deadline swapped out before the store closes a connection whose headers
 * came as it passed. `next` and the count are only touched under the
 * lock.
 *
 * The cost: per request, two relaxed stores and two plain ones (all but
 * one under a lock already taken), no system call; per connection, one;
 * per look, one pass over the slot table (its length the highest
 * descriptor seen, rounded up to a power of two) under the watch's lock, a
 * clock read, one shutdown per connection past its deadline, and, at
 * looks at least COUNT_EVERY_MIN apart, for each connection awaiting a
 * later request, one getsockopt outside the lock and a second, short hold
 * of the lock (measured with 1000 idle keep-alive connections: 1.2 ms of
 * getsockopt, the lock held about 6 and 5 us, once a second by default).
 * The getsockopt calls scale with the idle keep-alive connections times
 * the counting looks a second: 5000 of them at a 40 ms header_timeout (a
 * look each 10 ms) took 35 to 41% of a CPU with a count at every look, and
 * take 6% with one each 100 ms. The count before the bytes is still read
 * at the first look after the completion (one read per completion). The
 * price: with a header_timeout under 400 ms, the look that finds the four
 * bytes comes up to 100 ms and a look after them, not a look, so a
 * trickled later request is closed up to header_timeout + 100 ms + two
 * looks after its fourth byte.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define LOOK_MIN CCTX_MSEC(10)
#define LOOK_MAX CCTX_SEC(1)
/* The bytes that start a later request's clock: Go's server starts it once
 * it has peeked at four. */
#define FIRST_BYTES 4
/* The counts cost a system call per connection awaiting a later request:
 * those awaiting its bytes are read at looks at least this far apart, so
 * that a short header_timeout with thousands of idle keep-alive
 * connections does not cost the watcher a large share of a CPU. */
#define COUNT_EVERY_MIN CCTX_MSEC(100)

/* A count a look reads outside the lock, for the slot of fd as it was then
 * (its generation, its `next`, its deadline). */
struct mhd_hdr_count {
    int fd;
    uint32_t gen;
    unsigned char next;
    bool counted;
    int64_t hdr;
    uint64_t received;
};

#if defined(__linux__) && defined(TCP_INFO)
/* Linux's struct tcp_info up to tcpi_bytes_received (Linux 4.1), written
 * out: glibc's (2.36) ends at tcpi_total_retrans, and <linux/tcp.h>, which
 * has it, clashes with <netinet/tcp.h>. Kernel ABI: fields are only ever
 * appended, and the kernel says how many bytes it filled in. */
struct tcp_info_head {
    uint8_t u8[8];    /* tcpi_state ... tcpi_delivery_rate_app_limited */
    uint32_t u32[24]; /* tcpi_rto ... tcpi_total_retrans */
    uint64_t tcpi_pacing_rate, tcpi_max_pacing_rate, tcpi_bytes_acked, tcpi_bytes_received;
};
_Static_assert(offsetof(struct tcp_info_head, tcpi_bytes_received) == 128,
               "the kernel's struct tcp_info");

/* The kernel's count of the bytes fd received; false when there is none
 * (not TCP, a kernel before 4.1). Reads only: on a descriptor closed and
 * reused meanwhile it does no harm, and its answer is dropped. */
static bool count_received(int fd, uint64_t *n)
{
    struct tcp_info_head ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info_head, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return false;
    *n = ti.tcpi_bytes_received;
    return true;
}
#else
static bool count_received(int fd, uint64_t *n)
{
    (void)fd, (void)n;
    return false;
}
#endif

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int ms_until(int64_t wait)
{
    return (int)((wait + CCTX_MSEC(1) - 1) / CCTX_MSEC(1));
}

void cctx__mhd_watch_headers_in(struct mhd_watch *w, int fd)
{
    if (w->hdr_timeout && fd >= 0 && (size_t)fd < w->nslots)
        cctx__atomic_store_relaxed(&w->slots[fd].hdr, 0);
}

/* Notes that the slot of fd wants a count read; w->lock held. Memory
 * short: not this time (the next look tries again). */
static void want_count(struct mhd_watch *w, size_t *n, int fd, int64_t h)
{
    if (*n == w->hdr_counts_cap) {
        size_t cap = w->hdr_counts_cap ? 2 * w->hdr_counts_cap : 64;
        struct mhd_hdr_count *v = realloc(w->hdr_counts, cap * sizeof *v);
        if (!v)
            return;
        w->hdr_counts = v;
        w->hdr_counts_cap = cap;
    }
    const struct mhd_watch_slot *slot = &w->slots[fd];
    w->hdr_counts[(*n)++] =
        (struct mhd_hdr_count){.fd = fd, .gen = slot->gen, .next = slot->next, .hdr = h};
}

/* Applies the counts read outside the lock to the slots still as they were
 * then; w->lock held. */
static void apply_counts(struct mhd_watch *w, size_t n)
{
    int64_t from_start = add_sat(cctx__mhd_mono_ns(), w->hdr_timeout);
    for (size_t i = 0; i < n; i++) {
        const struct mhd_hdr_count *c = &w->hdr_counts[i];
        struct mhd_watch_slot *slot = &w->slots[c->fd];
        int64_t h = c->hdr;
        /* The deadline unchanged means the same wait for the same request:
         * only this thread turns a mark into a deadline. */
        if (slot->gen != c->gen || !slot->open || slot->next != c->next ||
            cctx__atomic_load_relaxed(&slot->hdr) != h)
            continue;
        if (c->next == HDR_NEXT_COUNT) {
            slot->received = c->received;
            slot->next = c->counted ? HDR_NEXT_BYTES : HDR_NEXT_LINE_ONLY;
        } else if (c->counted && c->received - slot->received >= FIRST_BYTES &&
                   cctx__atomic_cas_weak_relaxed(&slot->hdr, &h, h < from_start ? h : from_start)) {
            slot->next = HDR_NEXT_NONE;
        }
    }
}

int cctx__mhd_headers_look(struct mhd_watch *w)
{
    if (!w->hdr_timeout)
        return -1;
    int64_t every = w->hdr_timeout / 4;
    every = every < LOOK_MIN ? LOOK_MIN : every > LOOK_MAX ? LOOK_MAX : every;
    int64_t now = cctx__mhd_mono_ns();
    if (now < w->hdr_next_look)
        return ms_until(w->hdr_next_look - now);
    size_t ncounts = 0;
    pthread_mutex_lock(&w->lock);
    now = cctx__mhd_mono_ns();
    bool counting = now >= w->hdr_next_count;
    int64_t from_start = add_sat(now, w->hdr_timeout);
    int64_t from_completed = w->hdr_idle >= 0 ? add_sat(from_start, w->hdr_idle) : INT64_MAX;
    for (size_t fd = 0; fd < w->nslots; fd++) {
        struct mhd_watch_slot *slot = &w->slots[fd];
        int64_t h = cctx__atomic_load_relaxed(&slot->hdr);
        if (!slot->open || h == 0)
            continue;
        if (h < 0) {
            /* From a completion: the latest start, unless the line is in. */
            int64_t to =
                h == HDR_SINCE_START || slot->next == HDR_NEXT_LINE ? from_start : from_completed;
            if (!cctx__atomic_cas_weak_relaxed(&slot->hdr, &h, to))
                continue; /* the headers came in, or a spurious failure (the next look) */
            h = to;
        }
        if (h <= now) {
            if (cctx__atomic_cas_weak_relaxed(&slot->hdr, &h, 0))
                (void)shutdown((int)fd, SHUT_RDWR); /* fails only if the socket is gone */
        } else if (slot->next == HDR_NEXT_LINE) {
            if (cctx__atomic_cas_weak_relaxed(&slot->hdr, &h, h < from_start ? h : from_start))
                slot->next = HDR_NEXT_NONE;
        } else if (slot->next == HDR_NEXT_COUNT || (counting && slot->next == HDR_NEXT_BYTES)) {
            /* The count before a later request's bytes at every look: one
             * read per completion whenever it comes, and read late it would
             * hide the bytes sent meanwhile. Only the wait for them is
             * thinned out, whose reads grow with the looks. */
            want_count(w, &ncounts, (int)fd, h);
        }
    }
    pthread_mutex_unlock(&w->lock);
    /* The system calls outside the lock, which libmicrohttpd's thread takes
     * at every request line and completion. */
    for (size_t i = 0; i < ncounts; i++) {
        struct mhd_hdr_count *c = &w->hdr_counts[i];
        c->counted = count_received(c->fd, &c->received);
    }
    if (ncounts) {
        pthread_mutex_lock(&w->lock);
        apply_counts(w, ncounts);
        pthread_mutex_unlock(&w->lock);
    }
    w->hdr_next_look = now + every;
    if (counting)
        w->hdr_next_count = now + (every < COUNT_EVERY_MIN ? COUNT_EVERY_MIN : every);
    return ms_until(every);
}
