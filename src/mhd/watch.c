/* SPDX-License-Identifier: MIT */
/*
 * The disconnect watcher. libmicrohttpd does not poll a suspended
 * connection, so a client that hangs up while its handler runs would go
 * unnoticed until the response is written. One thread watches every
 * connection's socket in an epoll set of its own.
 *
 * It watches the connections libmicrohttpd polls too, for a second reason:
 * in its epoll mode (edge-triggered), libmicrohttpd 0.9.75 stops reading a
 * connection after a read that returned less than it asked for, until a
 * new event. A FIN that arrived with the last bytes of an unfinished
 * request raises none, so the connection would wait for idle_timeout. When
 * the peer's end shows on such a connection (no request of it suspended),
 * the watcher shuts the socket's read side down once libmicrohttpd has
 * read every byte queued before the end (FIONREAD says 0; until then it
 * looks again after 1, 2, 4... up to 128 ms). The shutdown wakes
 * libmicrohttpd's epoll set again, and its next read finds the end. Shut
 * down sooner, the wake-up could come before that short read and be spent
 * with it. The peer has sent its last byte by then, so nothing it sent is
 * lost. The shutdown happens under the watch's lock, and libmicrohttpd
 * reports a connection closed (taking that lock, cctx__mhd_watch_close)
 * before it closes its descriptor, so a shutdown never reaches a later
 * connection that got the same descriptor number.
 *
 * Protocol:
 *  - Only EPOLLRDHUP is asked for (EPOLLERR and EPOLLHUP come anyway): the
 *    peer's FIN, its RST, or a half-close. Never EPOLLIN, so bytes of a
 *    pipelined next request, or a keep-alive client's next request, never
 *    look like a hang-up. EPOLLONESHOT: one report per watch is enough.
 *  - A watch is named by descriptor and generation (data.u64 = gen << 32 |
 *    fd). The slot of a descriptor counts its generations; an event whose
 *    generation is not the slot's current one belongs to a connection that
 *    has gone (its descriptor now reused) and is dropped.
 *  - A request suspended takes its connection's watch over as it stands
 *    while that has not reported (no system call), or is armed anew. The
 *    worker removes the request from the slot (the registration then the
 *    connection's again, armed anew if a hang-up spent it, or deleted if
 *    the connection has no watch of its own) before it resumes the
 *    connection, so the request, its context and its descriptor are valid
 *    whenever the watcher finds the request in a slot.
 *  - The watcher never cancels itself. Cancelling runs the context's
 *    after-functions on the cancelling thread, and one of the user's may
 *    block; the watcher would then miss every other hang-up meanwhile. It
 *    queues the cancellation (with a reference on the context) for the
 *    canceller threads instead: an idle one takes it, and when more are
 *    queued than idle cancellers can take, the watcher starts one more (up
 *    to MHD_MAX_CANCELLERS; past that they queue). So one blocking
 *    after-function holds one canceller, never the watcher or the others.
 *    They cancel outside the lock and are joined by cctx__mhd_watch_stop
 *    once the queue is empty.
 *  - When no canceller exists and none can be started (thread creation
 *    fails), or the hang-up's queue entry cannot be allocated, the watcher
 *    cancels inline, accepting that a blocking after-function then delays
 *    the other hang-ups: a queued hang-up that no thread would ever take is
 *    a request that never learns its client left. cctx__mhd_watch_stop
 *    cancels whatever is still queued after the joins, so no reference is
 *    left.
 *  - The watcher and the cancellers run after-functions of request
 *    contexts, which may call cctx_mhd_shutdown or cctx_mhd_free; those
 *    join these very threads. Both mark themselves (cctx__mhd_on_watch), and
 *    shutdown refuses to run there (EDEADLK).
 *
 * Knowing every connection, the watcher also enforces the deadline of a
 * request's line and headers (header_timeout.c), between its epoll waits.
 *
 * Lock order: server->lock may be held when taking watch->lock, never the
 * reverse (in practice neither path nests them).
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAKE_TAG CCTX__MHD_WAKE_TAG

/* The watch whose watcher or canceller this thread is. */
static _Thread_local const struct mhd_watch *watch_of;

bool cctx__mhd_on_watch(const struct mhd_watch *w)
{
    return watch_of == w;
}

static void cancel_hangup(cctx_t *ctx, cctx_cancel_t *cancel)
{
    cctx_cancel_cause(cancel, 499, "client disconnected");
    cctx_release(ctx);
}

static void *canceller_main(void *arg)
{
    struct mhd_watch *w = arg;
    watch_of = w;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->closing) {
            w->idle++;
            pthread_cond_wait(&w->hangup_ready, &w->lock);
            w->idle--;
        }
        struct mhd_hangup *h = w->head;
        if (!h)
            break; /* closing, and nothing left to cancel */
        w->head = h->next;
        if (!w->head)
            w->tail = &w->head;
        w->queued--;
        pthread_mutex_unlock(&w->lock);
        cancel_hangup(h->ctx, h->cancel);
        free(h);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Hands a hang-up to the cancellers; takes over the reference on ctx. */
static void hang_up(struct mhd_watch *w, cctx_t *ctx, cctx_cancel_t *cancel)
{
    struct mhd_hangup *h = malloc(sizeof *h);
    if (!h) { /* out of memory: cancel here rather than not at all */
        cancel_hangup(ctx, cancel);
        return;
    }
    *h = (struct mhd_hangup){.ctx = ctx, .cancel = cancel, .next = NULL};
    pthread_mutex_lock(&w->lock);
    /* An idle canceller that was signalled still counts as idle until it
     * wakes, and its hang-up still counts as queued: a new canceller is
     * needed only for hang-ups beyond the idle ones. Started before the
     * hang-up is queued, so that when none can be started and none exists
     * the hang-up is never queued for nobody. */
    bool started = false;
    if (w->queued + 1 > w->idle && w->ncancellers < MHD_MAX_CANCELLERS &&
        cctx__mhd_thread_start(&w->cancellers[w->ncancellers], canceller_main, w,
                               "cctx-mhd-cancel") == 0) {
        w->ncancellers++;
        started = true;
    }
    if (w->ncancellers == 0) {
        pthread_mutex_unlock(&w->lock);
        free(h);
        cancel_hangup(ctx, cancel);
        return;
    }
    *w->tail = h;
    w->tail = &h->next;
    w->queued++;
    if (!started) /* a new canceller looks at the queue before it waits */
        pthread_cond_signal(&w->hangup_ready);
    pthread_mutex_unlock(&w->lock);
}

/* Connections whose peer's end showed while bytes before it were still
 * unread (see the top). The watcher's own, without a lock. */
struct pending_end {
    int fd;
    uint32_t gen;
    int64_t at, delay; /* the next look, and the wait before it (ns) */
};
struct pending_ends {
    struct pending_end *v;
    size_t n, cap;
};

#define END_FIRST_LOOK CCTX_MSEC(1)
#define END_LAST_LOOK CCTX_MSEC(128)

/* Shuts fd's read side down unless bytes are still queued on it (false
 * then). w->lock held, the slot checked. */
static bool end_if_read(int fd)
{
    int queued = 0;
    if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)
        return false;
    (void)shutdown(fd, SHUT_RD); /* fails only if the socket is gone: nothing to do */
    return true;
}

/* The peer of an open connection has ended; w->lock held. */
static void peer_ended(struct pending_ends *p, int fd, uint32_t gen)
{
    if (end_if_read(fd))
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct pending_end *v = realloc(p->v, cap * sizeof *v);
        if (!v) { /* out of memory: wake libmicrohttpd now, at the risk of too soon */
            (void)shutdown(fd, SHUT_RD);
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] =
        (struct pending_end){fd, gen, cctx__mhd_mono_ns() + END_FIRST_LOOK, END_FIRST_LOOK};
}

/* Looks again at the pending ends whose time has come; returns the wait
 * for epoll_wait until the next one (ms, -1 for none). */
static int look_again(struct mhd_watch *w, struct pending_ends *p)
{
    if (!p->n)
        return -1;
    int64_t now = cctx__mhd_mono_ns(), next = INT64_MAX;
    size_t kept = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct pending_end e = p->v[i];
        if (e.at <= now) {
            /* Closed, or a request of it suspended (whose watch, or the
             * worker's, takes over): no longer pending here. */
            pthread_mutex_lock(&w->lock);
            const struct mhd_watch_slot *slot = &w->slots[e.fd];
            bool done = slot->gen != e.gen || !slot->open || slot->req || end_if_read(e.fd);
            pthread_mutex_unlock(&w->lock);
            if (done)
                continue;
            e.delay = e.delay >= END_LAST_LOOK / 2 ? END_LAST_LOOK : 2 * e.delay;
            e.at = now + e.delay;
        }
        next = e.at < next ? e.at : next;
        p->v[kept++] = e;
    }
    p->n = kept;
    return kept ? (int)((next - now + CCTX_MSEC(1) - 1) / CCTX_MSEC(1)) : -1;
}

static void *watch_main(void *arg)
{
    struct mhd_watch *w = arg;
    watch_of = w;
    struct epoll_event ev[64];
    struct pending_ends pending = {0};
    int wait_ms = cctx__mhd_headers_look(w);
    while (!cctx__atomic_load_acquire(&w->stop)) {
        int n = epoll_wait(w->epfd, ev, 64, wait_ms);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == WAKE_TAG)
                continue; /* the loop condition reads stop */
            int fd = (int)(ev[i].data.u64 & 0xffffffffu);
            uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
            cctx_t *ctx = NULL;
            cctx_cancel_t *cancel = NULL;
            pthread_mutex_lock(&w->lock);
            struct mhd_watch_slot *slot = (size_t)fd < w->nslots ? &w->slots[fd] : NULL;
            if (slot && slot->gen == gen)
                slot->fired = true; /* one-shot: disabled until armed again */
            if (slot && slot->gen == gen && slot->req) {
                /* The slot stays filled until the worker's removal. */
                ctx = cctx_ref(slot->req->ctx);
                cancel = slot->req->cancel;
            } else if (slot && slot->gen == gen && slot->open) {
                /* Under the lock: the descriptor is still this connection's
                 * (see the top). */
                peer_ended(&pending, fd, gen);
            }
            pthread_mutex_unlock(&w->lock);
            if (ctx)
                hang_up(w, ctx, cancel);
        }
        wait_ms = look_again(w, &pending);
        int hdr_ms = cctx__mhd_headers_look(w);
        if (hdr_ms >= 0 && (wait_ms < 0 || hdr_ms < wait_ms))
            wait_ms = hdr_ms;
    }
    free(pending.v);
    return NULL;
}

int cctx__mhd_watch_start(struct mhd_watch *w, int64_t header_timeout, int64_t idle)
{
    memset(w, 0, sizeof *w);
    w->epfd = w->wakefd = -1;
    w->hdr_timeout = header_timeout > 0 ? header_timeout : 0;
    w->hdr_idle = idle;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->hangup_ready, NULL);
    w->tail = &w->head;
    int err =
        cctx__mhd_loop_start(&w->epfd, &w->wakefd, &w->thread, watch_main, w, "cctx-mhd-watch");
    if (err)
        return err;
    w->started = true;
    return 0;
}

void cctx__mhd_watch_stop(struct mhd_watch *w)
{
    /* Never this thread itself (shutdown refuses to run on it; this is the
     * defence should that check be bypassed): joining it would not return. */
    if (w->started) {
        cctx__atomic_store_release(&w->stop, true);
        uint64_t one = 1;
        while (write(w->wakefd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        if (!pthread_equal(w->thread, pthread_self()))
            pthread_join(w->thread, NULL);
        w->started = false;
    }
    /* The watcher is gone, so nothing is queued any more: the cancellers
     * finish what is (the contexts they hold must be released before the
     * server's) and exit. */
    pthread_mutex_lock(&w->lock);
    w->closing = true;
    pthread_cond_broadcast(&w->hangup_ready);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->ncancellers; i++)
        if (!pthread_equal(w->cancellers[i], pthread_self()))
            pthread_join(w->cancellers[i], NULL);
    w->ncancellers = 0;
    /* Whatever no canceller took (none could be started) is cancelled here,
     * so that its reference is released before the server's context. */
    while (w->head) {
        struct mhd_hangup *h = w->head;
        w->head = h->next;
        cancel_hangup(h->ctx, h->cancel);
        free(h);
    }
    w->tail = &w->head;
    w->queued = 0;
    pthread_cond_destroy(&w->hangup_ready);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wakefd >= 0)
        close(w->wakefd);
    w->epfd = w->wakefd = -1;
    free(w->slots);
    w->slots = NULL;
    w->nslots = 0;
    free(w->hdr_counts);
    w->hdr_counts = NULL;
    w->hdr_counts_cap = 0;
    pthread_mutex_destroy(&w->lock);
}

/* Makes the slots reach fd; w->lock held. False when memory is short. On
 * libmicrohttpd's thread only (cctx__mhd_watch_open): that thread reads
 * the table without the lock (header_timeout.c). */
static bool slots_reach(struct mhd_watch *w, int fd)
{
    if ((size_t)fd < w->nslots)
        return true;
    size_t n = w->nslots ? w->nslots : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct mhd_watch_slot *s = realloc(w->slots, n * sizeof *s);
    if (!s)
        return false;
    memset(s + w->nslots, 0, (n - w->nslots) * sizeof *s);
    w->slots = s;
    w->nslots = n;
    return true;
}

/* Registers fd for one report of its peer's end under generation gen:
 * MOD when the set holds it already (in_set), else ADD. Each falls back to
 * the other should the set not be as expected (a registration of a closed
 * descriptor that a child of fork() keeps open, say). */
static int arm(struct mhd_watch *w, int fd, uint32_t gen, bool in_set)
{
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT,
                             .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
    int op = in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(w->epfd, op, fd, &ev);
    if (rc != 0 && (errno == EEXIST || errno == ENOENT))
        rc = epoll_ctl(w->epfd, in_set ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    return rc;
}

void cctx__mhd_watch_open(struct mhd_watch *w, int fd)
{
    if (fd < 0)
        return;
    /* The slot is filled before the registration exists, so an event can
     * never find it empty; the system call itself runs outside the lock
     * (the watcher and the workers must not wait for it). */
    pthread_mutex_lock(&w->lock);
    if (!slots_reach(w, fd)) {
        pthread_mutex_unlock(&w->lock);
        return; /* not watched: its end is seen as libmicrohttpd sees it */
    }
    struct mhd_watch_slot *slot = &w->slots[fd];
    uint32_t gen = ++slot->gen;
    *slot = (struct mhd_watch_slot){.gen = gen, .open = true};
    /* The first request's header deadline counts from now. */
    cctx__atomic_store_relaxed(&slot->hdr, w->hdr_timeout ? HDR_SINCE_START : 0);
    pthread_mutex_unlock(&w->lock);
    if (arm(w, fd, gen, false) == 0)
        return;
    pthread_mutex_lock(&w->lock);
    if (w->slots[fd].gen == gen)
        w->slots[fd].open = false;
    pthread_mutex_unlock(&w->lock);
}

void cctx__mhd_watch_close(struct mhd_watch *w, int fd)
{
    /* No EPOLL_CTL_DEL: closing the descriptor, which libmicrohttpd does
     * next, takes it out of the set. The new generation drops any event
     * still on its way. */
    pthread_mutex_lock(&w->lock);
    if (fd >= 0 && (size_t)fd < w->nslots && w->slots[fd].open) {
        w->slots[fd].gen++;
        w->slots[fd].open = false;
    }
    pthread_mutex_unlock(&w->lock);
}

bool cctx__mhd_watch_add(struct mhd_watch *w, struct cctx_mhd_request *req)
{
    req->fd = -1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd < 0)
        return true; /* not watched: the request still ends by deadline or shutdown */
    int fd = ci->connect_fd;
    pthread_mutex_lock(&w->lock);
    /* Beyond the table: cctx__mhd_watch_open could not make it reach fd
     * (memory short), and only it grows the table. */
    if ((size_t)fd >= w->nslots) {
        pthread_mutex_unlock(&w->lock);
        return true;
    }
    struct mhd_watch_slot *slot = &w->slots[fd];
    slot->req = req;
    /* The connection's own watch, still armed, becomes the request's as it
     * is: its report, whenever it comes, finds the request in the slot. No
     * system call. Once it has reported (or there is none), the request
     * gets a registration of its own, under a new generation. */
    bool armed = slot->open && !slot->fired;
    if (!armed) {
        slot->gen++;
        slot->fired = false;
    }
    uint32_t gen = slot->gen;
    bool in_set = slot->open;
    pthread_mutex_unlock(&w->lock);
    if (armed || arm(w, fd, gen, in_set) == 0) {
        req->fd = fd;
        req->gen = gen;
        return !armed;
    }
    pthread_mutex_lock(&w->lock);
    if (w->slots[fd].req == req && w->slots[fd].gen == gen) {
        w->slots[fd].req = NULL;
        w->slots[fd].fired = true; /* nothing armed: the next add tries again */
    }
    pthread_mutex_unlock(&w->lock);
    return true;
}

bool cctx__mhd_peer_gone(const struct cctx_mhd_request *req)
{
    int fd = req->fd;
    if (fd < 0) { /* not watched: the connection's descriptor all the same */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || ci->connect_fd < 0)
            return false;
        fd = ci->connect_fd;
    }
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return false;
    /* Bytes still unread (a request pipelined behind this one): as for the
     * watcher, the end counts once they are read, which it sees to. */
    int queued = 0;
    return !(ioctl(fd, FIONREAD, &queued) == 0 && queued > 0);
}

void cctx__mhd_watch_remove(struct mhd_watch *w, struct cctx_mhd_request *req)
{
    if (req->fd < 0)
        return;
    /* The slot is emptied under the lock, so an event from now on finds no
     * request. The registration, of a connection watched for its own sake,
     * is the connection's again: as it stands while still armed, or armed
     * anew under a new generation once a hang-up has spent it. The peer
     * has ended then, and libmicrohttpd, which takes a resumed connection
     * for ready to read, may still stop at a short read before that end
     * (bytes of an unfinished next request that came with it, read after
     * the answer has taken libmicrohttpd's wake-up): the new registration
     * reports the end at once, and the watcher treats it as for any
     * connection (see the top). Of any other, it is deleted. Either system
     * call is made after the lock and still before the caller resumes the
     * connection (so before its descriptor can be closed and reused). */
    int fd = req->fd;
    pthread_mutex_lock(&w->lock);
    struct mhd_watch_slot *slot = &w->slots[fd];
    bool mine = slot->req == req && slot->gen == req->gen;
    bool drop = mine && !slot->open;
    bool rearm = mine && slot->open && slot->fired;
    uint32_t gen = 0;
    if (mine)
        slot->req = NULL;
    if (rearm) {
        gen = ++slot->gen;
        slot->fired = false;
    }
    pthread_mutex_unlock(&w->lock);
    req->fd = -1;
    if (drop)
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
    else if (rearm && arm(w, fd, gen, true) != 0) {
        pthread_mutex_lock(&w->lock);
        if (w->slots[fd].gen == gen)
            w->slots[fd].fired = true; /* nothing armed: as libmicrohttpd sees it */
        pthread_mutex_unlock(&w->lock);
    }
}

/* Closing connections idle between requests at shutdown, as Go's
 * Server.Shutdown does: a keep-alive client would otherwise hold its
 * connection open, unused, until libmicrohttpd stops, and could send its
 * next request into a server that refuses it. libmicrohttpd has no call
 * for it (MHD_quiesce_daemon only stops accepting, its idle timeout is the
 * daemon's, fixed at the start, or set per connection from a callback of
 * that connection, and an idle connection gets none; MHD_stop_daemon closes
 * everything, and comes at the drain's end). So the socket's write side is
 * shut down, under the lock, so that the descriptor is still the
 * connection's (see the top). The client reads the end at once, after
 * every byte already queued, and closes its side; libmicrohttpd then reads
 * that end and closes the connection.
 *
 * The write side only: an answer whose last bytes libmicrohttpd has handed
 * to the kernel may still be queued, megabytes of it. With the read side
 * shut too, a byte from the client (a request pipelined behind the answer)
 * would make the kernel reset the connection and drop that tail. With it
 * open, libmicrohttpd reads such a request and refuses it, and its answer
 * finds the write side shut: the client gets the whole first answer, then
 * the end.
 *
 * Idle: open, at least one request served on it, no request line in since
 * the last request completed (busy is set by on_uri, cleared by
 * on_completed), and no byte waiting in the socket (FIONREAD). A request
 * whose line comes later came after `stopping` was set (that store
 * precedes the scan; the line is marked busy under the lock before the
 * request looks at `stopping`): it would be refused with a 503 anyway, so
 * no request that would be served is ever cut. Bytes waiting in the socket
 * are a request on its way: libmicrohttpd reads it and refuses it with a
 * 503 that closes the connection. Bytes libmicrohttpd has already read,
 * the first of a request line not yet complete, are not seen: that client
 * gets the end instead of the 503. A connection never used is left alone,
 * as Go leaves a new one: its first request gets the 503 that closes it. */

static void close_if_idle(struct mhd_watch *w, int fd)
{
    const struct mhd_watch_slot *slot = &w->slots[fd];
    int queued = 0;
    if (!slot->open || !slot->served || slot->busy || slot->req ||
        (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0))
        return;
    (void)shutdown(fd, SHUT_WR); /* fails only if the socket is gone: nothing to do */
}

void cctx__mhd_watch_busy(struct mhd_watch *w, int fd, bool busy)
{
    if (fd < 0)
        return;
    pthread_mutex_lock(&w->lock);
    if ((size_t)fd < w->nslots && w->slots[fd].open) {
        struct mhd_watch_slot *slot = &w->slots[fd];
        /* A later request's header deadline (header_timeout.c): the
         * watcher starts it at the request's first bytes or its request
         * line, at the latest after the idle time from this completion. */
        if (w->hdr_timeout && !busy) {
            cctx__atomic_store_relaxed(&slot->hdr, HDR_SINCE_COMPLETED);
            slot->next = HDR_NEXT_COUNT;
        } else if (w->hdr_timeout && slot->next != HDR_NEXT_NONE) {
            slot->next = HDR_NEXT_LINE;
        }
        w->slots[fd].busy = busy;
        w->slots[fd].served |= !busy;
        /* Completed after the scan: an answer queued before `stopping`,
         * sent since, and the connection kept alive. */
        if (!busy && w->close_idle)
            close_if_idle(w, fd);
    }
    pthread_mutex_unlock(&w->lock);
}

void cctx__mhd_watch_close_idle(struct mhd_watch *w)
{
    pthread_mutex_lock(&w->lock);
    w->close_idle = true;
    for (size_t fd = 0; fd < w->nslots; fd++)
        close_if_idle(w, (int)fd);
    pthread_mutex_unlock(&w->lock);
}

int cctx__mhd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err == 0)
        pthread_setname_np(*t, name);
    return err;
}

int cctx__mhd_loop_start(int *epfd, int *wakefd, pthread_t *t, void *(*fn)(void *), void *arg,
                         const char *name)
{
    *epfd = epoll_create1(EPOLL_CLOEXEC);
    if (*epfd < 0)
        return errno;
    *wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (*wakefd < 0)
        return errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = CCTX__MHD_WAKE_TAG};
    if (epoll_ctl(*epfd, EPOLL_CTL_ADD, *wakefd, &ev) != 0)
        return errno;
    return cctx__mhd_thread_start(t, fn, arg, name);
}
