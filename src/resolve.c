/* SPDX-License-Identifier: MIT */
/*
 * Name resolution that can be abandoned: cctx_getaddrinfo and cctx_dial of
 * <cctx/io.h>. Built on the public API of <cctx.h> and <cctx/io.h>.
 *
 * The protocol between the caller and the helper thread. A job is shared by
 * both and freed by whichever of the two lets go of it last, decided under
 * job->lock:
 *  - the helper resolves, then takes the lock; if the caller is still
 *    waiting it stores the result, sets `done` and signals; otherwise (the
 *    caller abandoned the job) it frees the result and the job itself;
 *  - the caller waits with cctx_cond_wait; when ctx ends before `done`, or
 *    the wait cannot be set up (no waker thread), it sets `abandoned` and
 *    returns, leaving the job to the helper; when `done` is set it takes
 *    the result and frees the job.
 * After the helper has set `done` and unlocked it never touches the job
 * again, so the caller may destroy the mutex and condition variable at once
 * (cctx_cond_wait leaves nothing registered on ctx when it returns).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include "atomics.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_internal.h"
#include "resolve_internal.h"

struct job {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, abandoned; /* under lock */
    int rc, err;
    struct addrinfo *res;
    /* Copies: the caller's strings and hints may be gone once it returns. */
    char *node, *service;
    bool has_hints;
    struct addrinfo hints;
};

/* Helper threads not finished yet, abandoned ones included: each holds one
 * of at most cctx__resolve_helpers_max slots. Without a bound, a resolver
 * that stopped answering would leave a thread per lookup for its whole
 * timeout (10 s by default), and a server making lookups with short
 * deadlines would pile up thousands, until thread creation failed for the
 * whole program (the library's own threads included). A lookup that finds
 * every slot taken waits for one, or for the end of its context, which it
 * would have met anyway in a resolver that slow. Go bounds its cgo lookups
 * in the same way. The slot is taken by a compare-and-swap (relaxed: it
 * guards a count, not data); it is given back by a release, after the
 * helper's last touch of the job, and the test hook's load is an acquire,
 * so a test that sees 0 sees every free done. A waiter sleeps under
 * slots_lock, and a helper that gives its slot back broadcasts under it, so
 * that no waiter misses the slot (nor one that a waiter leaving at its
 * deadline was woken for). */
static atomic_int in_flight;
_Atomic int cctx__resolve_helpers_max = 256;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_freed = PTHREAD_COND_INITIALIZER;
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

int cctx__resolve_in_flight(void)
{
    return cctx__atomic_load_acquire(&in_flight);
}

static bool take_slot(void)
{
    int n = cctx__atomic_load_relaxed(&in_flight);
    while (n < cctx__atomic_load_relaxed(&cctx__resolve_helpers_max))
        if (atomic_compare_exchange_weak_explicit(&in_flight, &n, n + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* 0 with a slot taken; else ctx's error, or EAGAIN when no wait can be had
 * (see cctx_cond_wait). */
static int wait_for_slot(cctx_t *ctx)
{
    if (take_slot())
        return 0;
    int w = 0;
    pthread_mutex_lock(&slots_lock);
    while (!take_slot() && (w = cctx_cond_wait(ctx, &slots_freed, &slots_lock)) == 0)
        ;
    pthread_mutex_unlock(&slots_lock);
    return w;
}

static void give_slot(void)
{
    cctx__atomic_fetch_sub_release(&in_flight, 1);
    pthread_mutex_lock(&slots_lock);
    pthread_cond_broadcast(&slots_freed);
    pthread_mutex_unlock(&slots_lock);
}

/* The helpers of the parent are not in a child of fork(): their slots are
 * free there (their jobs' memory stays, a few hundred bytes each), and the
 * lock, which one of them may have held, is made anew. */
static void slots_after_fork_child(void)
{
    cctx__atomic_store_relaxed(&in_flight, 0);
    pthread_mutex_init(&slots_lock, NULL);
    pthread_cond_init(&slots_freed, NULL);
}

static void watch_fork(void)
{
    pthread_atfork(NULL, NULL, slots_after_fork_child);
}

static void job_free(struct job *j)
{
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j->node);
    free(j->service);
    free(j);
}

static void *helper(void *arg)
{
    struct job *j = arg;
#if CCTX_USE_THREAD_NAMES
    pthread_setname_np(pthread_self(), "cctx-resolve");
#endif
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->node, j->service, j->has_hints ? &j->hints : NULL, &res);
    int err = rc == EAI_SYSTEM ? errno : 0;
    pthread_mutex_lock(&j->lock);
    if (j->abandoned) {
        pthread_mutex_unlock(&j->lock);
        if (rc == 0)
            freeaddrinfo(res);
        job_free(j);
    } else {
        j->rc = rc;
        j->err = err;
        j->res = res;
        j->done = true;
        pthread_cond_signal(&j->cond);
        pthread_mutex_unlock(&j->lock);
    }
    give_slot();
    return NULL;
}

/* Lookups that never wait on the network: done on the calling thread. */
static bool is_local(const char *node, const struct addrinfo *hints)
{
    if (!node || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return true;
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, node, buf) == 1 || inet_pton(AF_INET6, node, buf) == 1)
        return true;
    return false;
}

static int sys_fail(int err)
{
    errno = err;
    return EAI_SYSTEM;
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

/* A service that reads as a number names a port, and a port has 16 bits:
 * glibc reads it with strtoul (blanks and a sign first, "+99999", " 99999",
 * "-1") and cuts the number to 16 bits (99999 is 34463, -1 65535); musl
 * refuses it. Both libcs' answers are made the refusal. */
static bool port_out_of_range(const char *service)
{
    if (!service)
        return false;
    const char *p = service;
    while (isspace((unsigned char)*p))
        p++;
    bool negative = *p == '-';
    int saved = errno;
    errno = 0;
    char *end;
    unsigned long port = strtoul(service, &end, 10);
    /* "-0" is 0, as glibc reads it; "-1" wraps to ULONG_MAX. */
    bool out = end != service && *end == '\0' &&
               ((negative && port != 0) || errno == ERANGE || port > 65535);
    errno = saved;
    return out;
}

/* Runs j on a helper thread and waits for its answer or for ctx's end. */
static int run_job(cctx_t *ctx, struct job *j, struct addrinfo **res)
{
    int w = wait_for_slot(ctx);
    if (w != 0) {
        job_free(j);
        return sys_fail(w);
    }

    /* The helper starts with every signal blocked (the mask is inherited
     * from the creating thread), so it never runs the application's
     * handlers at a moment the application cannot expect. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    cctx__io_create_fn create = cctx__atomic_load_relaxed(&cctx__io_thread_create);
    int rc = create(&t, &attr, helper, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        give_slot();
        job_free(j);
        return sys_fail(rc);
    }

    pthread_mutex_lock(&j->lock);
    while (!j->done) {
        int w = cctx_cond_wait(ctx, &j->cond, &j->lock);
        if (j->done)
            break;
        if (w != 0) {
            /* ctx's end, or no wait to be had (EAGAIN: no waker thread),
             * where waiting on would be deaf to ctx for as long as the
             * resolver takes. Either way abandon: from here on the job is
             * the helper's to free. */
            j->abandoned = true;
            pthread_mutex_unlock(&j->lock);
            return sys_fail(w);
        }
        /* 0: woken by the helper's signal, or spuriously. */
    }
    pthread_mutex_unlock(&j->lock);
    rc = j->rc;
    if (rc == 0)
        *res = j->res;
    else if (rc == EAI_SYSTEM)
        errno = j->err;
    int saved = errno;
    job_free(j);
    errno = saved;
    return rc;
}

/* A lookup of a name: copied into a job, run on a helper thread. */
static int lookup_on_helper(cctx_t *ctx, const char *node, const char *service,
                            const struct addrinfo *hints, struct addrinfo **res)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return EAI_MEMORY;
    bool oom = false;
    j->node = dup_or_null(node, &oom);
    j->service = dup_or_null(service, &oom);
    if (hints) {
        /* Only the four fields getaddrinfo reads from hints; the pointers
         * must be NULL there anyway. */
        j->has_hints = true;
        j->hints.ai_flags = hints->ai_flags;
        j->hints.ai_family = hints->ai_family;
        j->hints.ai_socktype = hints->ai_socktype;
        j->hints.ai_protocol = hints->ai_protocol;
    }
    if (oom) {
        free(j->node);
        free(j->service);
        free(j);
        return EAI_MEMORY;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    pthread_once(&fork_handler_once, watch_fork);
    return run_job(ctx, j, res);
}

CCTX_API int cctx_getaddrinfo(cctx_t *ctx, const char *node, const char *service,
                              const struct addrinfo *hints, struct addrinfo **res)
{
    if (!ctx || !res)
        return sys_fail(EINVAL);
    int err = cctx_err(ctx);
    if (err)
        return sys_fail(err);
    if (port_out_of_range(service))
        return EAI_SERVICE;
    /* No cancellation point in either way (see io.h). A name's waits are
     * cctx_cond_wait's, and a thread cancelled in one would leave a lock
     * held for good (the slots', or the job's, with its slot never given
     * back): they wait with cancellation off, as the group's do; the
     * lookup still ends with ctx. A local lookup is getaddrinfo's own, and
     * glibc's acts on a cancel where it leaves a socket open: the netlink
     * one that asks for the interfaces' addresses (AI_ADDRCONFIG, which
     * NULL hints imply), or the UDP one it connects to each address to
     * sort several. */
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    int rc = is_local(node, hints) ? getaddrinfo(node, service, hints, res)
                                   : lookup_on_helper(ctx, node, service, hints, res);
    pthread_setcancelstate(state, NULL);
    return rc;
}

/* The errno for a resolution that failed with code rc (see io.h). */
static int errno_of_gai(int rc)
{
    switch (rc) {
    case EAI_SYSTEM:
        return errno;
    case EAI_AGAIN:
        return EAGAIN;
    case EAI_MEMORY:
        return ENOMEM;
    case EAI_SERVICE:
    case EAI_SOCKTYPE:
    case EAI_FAMILY:
    case EAI_BADFLAGS:
        return EINVAL;
    default: /* EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY, EAI_FAIL */
        return EADDRNOTAVAIL;
    }
}

/* What cctx_dial holds while it connects: given back by a thread
 * cancellation (pthread_cancel) in a connect, as by a return. */
struct dialing {
    struct addrinfo *list;
    cctx_t *attempt; /* the connect's share of ctx's time, or NULL */
    int fd;          /* the socket being connected, or -1 */
    int connected;   /* the result: a connected socket, or -1 */
};

static void dial_cancelled(void *arg)
{
    struct dialing *d = arg;
    if (d->fd >= 0)
        close(d->fd);
    cctx_release(d->attempt);
    freeaddrinfo(d->list);
}

/* Go's partialDeadline (net/dial.go): the end of the next attempt when
 * `left` addresses, that one included, share the time from now to ctx's
 * deadline. An equal share, so that an address that never answers (its
 * SYNs dropped) cannot take the time of the ones after it; but at least
 * 2 s, taken from the last ones (a share too short to connect in would
 * fail every address); and all that remains once less than 2 s does. A
 * deadline already passed is returned as it is: the attempt is then ctx's
 * own. */
static int64_t attempt_deadline(int64_t now, int64_t deadline, int left)
{
    int64_t remaining;
    if (__builtin_sub_overflow(deadline, now, &remaining) || remaining <= 0)
        return deadline;
    int64_t share = remaining / left;
    if (share < CCTX_SEC(2))
        share = remaining < CCTX_SEC(2) ? remaining : CCTX_SEC(2);
    return now + share;
}

/* The context the next connect waits on: ctx, or a child of it that ends
 * at the connect's share of ctx's time, kept in d->attempt for the caller
 * (or the cleanup handler) to release. Out of memory for that child the
 * connect has ctx's whole time, as it would with one address. */
static cctx_t *attempt_context(cctx_t *ctx, struct dialing *d, int left)
{
    int64_t deadline;
    if (left < 2 || !cctx_deadline(ctx, &deadline))
        return ctx;
    int64_t end = attempt_deadline(cctx_now(), deadline, left);
    if (end >= deadline)
        return ctx;
    d->attempt = cctx_with_deadline(ctx, end, NULL);
    return d->attempt ? d->attempt : ctx;
}

/* Connects to each address of d->list in turn, each within its share of
 * ctx's time: the first socket that connects, or -1 with errno. */
static int connect_to_one(cctx_t *ctx, struct dialing *d)
{
    int first = 0, left = 0;
    for (struct addrinfo *a = d->list; a; a = a->ai_next)
        left++;
    for (struct addrinfo *a = d->list; a; a = a->ai_next, left--) {
        d->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (d->fd < 0) {
            int e = errno;
            /* ctx may have ended since the resolution or the last connect:
             * its error, as the next cctx_connect would give, rather than
             * an earlier failure. */
            int ce = cctx_err(ctx);
            if (ce) {
                errno = ce;
                return -1;
            }
            if (!first)
                first = e;
            continue;
        }
        int r = cctx_connect(attempt_context(ctx, d, left), d->fd, a->ai_addr, a->ai_addrlen);
        int e = errno, state;
        cctx_release(d->attempt); /* no cancellation point: see <cctx.h> */
        d->attempt = NULL;
        if (r == 0) {
            int fd = d->fd;
            d->fd = -1;
            return fd;
        }
        /* close is a cancellation point, and a cancel acted on there would
         * leave the socket open: the handler cannot tell whether the close
         * was made. A socket that never connected does not linger, so it is
         * closed, and forgotten, with cancellation off; a pending cancel
         * acts at the next connect's wait, or after the call. */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
        close(d->fd);
        d->fd = -1;
        pthread_setcancelstate(state, NULL);
        if (e == ECANCELED || e == ETIMEDOUT) {
            /* ctx's end, or a connect that ran out of its share of ctx's
             * time or timed out in the kernel: only the former stops the
             * walk; the others are this address's ETIMEDOUT. */
            int ce = cctx_err(ctx);
            if (ce) {
                errno = ce;
                return -1;
            }
        }
        if (!first)
            first = e;
    }
    errno = first ? first : EADDRNOTAVAIL;
    return -1;
}

/* connect_to_one under a cleanup handler; its result in d->connected (no
 * local lives across the handler's setjmp). */
static void connect_holding(cctx_t *ctx, struct dialing *d)
{
    pthread_cleanup_push(dial_cancelled, d);
    d->connected = connect_to_one(ctx, d);
    pthread_cleanup_pop(0);
}

CCTX_API int cctx_dial(cctx_t *ctx, const char *host, const char *service, int socktype)
{
    if (!ctx || !host || !service) {
        errno = EINVAL;
        return -1;
    }
    if (socktype == 0)
        socktype = SOCK_STREAM;
    if (socktype != SOCK_STREAM && socktype != SOCK_DGRAM && socktype != SOCK_SEQPACKET) {
        errno = EINVAL;
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype};
    struct dialing d = {.fd = -1};
    int rc = cctx_getaddrinfo(ctx, host, service, &hints, &d.list);
    if (rc != 0) {
        errno = errno_of_gai(rc);
        return -1;
    }
    connect_holding(ctx, &d);
    int e = errno;
    freeaddrinfo(d.list);
    errno = e;
    return d.connected;
}
