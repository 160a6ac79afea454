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
 *  - a later one: at the completion of the one before, plus the idle time
 *    a keep-alive client may wait before it sends a byte (idle_timeout, as
 *    libmicrohttpd counts it: whole seconds, rounded up). libmicrohttpd
 *    calls nothing at the first byte of a request, where Go starts this
 *    clock; an honest client sends its first byte within the idle time
 *    (libmicrohttpd closes it otherwise) and its headers within
 *    header_timeout of that, so it is never closed earlier than Go would
 *    close it. A client trickling a later request holds its connection
 *    for at most idle_timeout + header_timeout after each answer.
 *  - without an idle timeout (idle_timeout < 0) a keep-alive connection
 *    may wait for ever, so a later request's clock starts at its request
 *    line (the URI callback): its line may still trickle without end.
 * The headers are in at on_request's first call for the request (before
 * its body is read), which stops the clock: a body, a handler, an answer
 * are never timed by it.
 *
 * Where: the watcher, which knows every connection by descriptor, looks
 * at every slot each header_timeout / 4 (at least 10 ms, at most 1 s
 * apart). The request path stores a mark that a clock started (a slot's
 * `hdr`, HDR_SINCE_*) under the watch's lock it already takes (accept,
 * request line, completion), and 0 at the headers, without a lock; it
 * reads no clock. The watcher's next look reads the time after taking the
 * lock, so every mark it finds was stored before that time, and turns the
 * mark into a deadline from it: never before the clock's true start plus
 * the timeout, at most one look after. A connection whose deadline has
 * passed has its socket shut down (both sides), under the lock while the
 * slot is open, so never a later connection with the same descriptor
 * (watch.c, at the top); libmicrohttpd's next read then finds the end and
 * it closes the connection, with no answer (as Go). Both sides: no answer
 * is being written while headers are awaited (libmicrohttpd reads a
 * request only once the answer before it is handed to the kernel, which
 * still sends what it queued before the end), and the read side is what
 * wakes libmicrohttpd. A connection is closed within header_timeout plus
 * two looks of the clock's start.
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
 * came as it passed.
 *
 * The cost: per request, two relaxed stores (one under a lock already
 * taken), no system call; per connection, one; per look, one pass over
 * the slot table (its length the highest descriptor seen, rounded up to a
 * power of two) under the watch's lock, a clock read, and one shutdown per
 * connection past its deadline.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <sys/socket.h>
#include <time.h>

#define LOOK_MIN CCTX_MSEC(10)
#define LOOK_MAX CCTX_SEC(1)

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

int cctx__mhd_headers_look(struct mhd_watch *w)
{
    if (!w->hdr_timeout)
        return -1;
    int64_t every = w->hdr_timeout / 4;
    every = every < LOOK_MIN ? LOOK_MIN : every > LOOK_MAX ? LOOK_MAX : every;
    int64_t now = cctx__mhd_mono_ns();
    if (now < w->hdr_next_look)
        return ms_until(w->hdr_next_look - now);
    pthread_mutex_lock(&w->lock);
    now = cctx__mhd_mono_ns();
    int64_t from_start = add_sat(now, w->hdr_timeout);
    int64_t from_completed = w->hdr_idle > 0 ? add_sat(from_start, w->hdr_idle) : from_start;
    for (size_t fd = 0; fd < w->nslots; fd++) {
        struct mhd_watch_slot *slot = &w->slots[fd];
        int64_t h = cctx__atomic_load_relaxed(&slot->hdr);
        if (!slot->open || h == 0 || h > now)
            continue;
        if (h < 0) /* a failed swap: the headers came in, or a spurious failure (the next look) */
            (void)cctx__atomic_cas_weak_relaxed(
                &slot->hdr, &h, h == HDR_SINCE_COMPLETED ? from_completed : from_start);
        else if (cctx__atomic_cas_weak_relaxed(&slot->hdr, &h, 0))
            (void)shutdown((int)fd, SHUT_RDWR); /* fails only if the socket is gone */
    }
    pthread_mutex_unlock(&w->lock);
    w->hdr_next_look = now + every;
    return ms_until(every);
}
