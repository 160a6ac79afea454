/* SPDX-License-Identifier: MIT */
/*
 * The grpc-timeout and W3C Trace Context codecs, and a trace carried as a
 * context value (contract in <cctx/propagate.h>).
 *
 * Header values come from the network: every parser reads only inside the
 * length it is given, decides validity before writing anything, and rejects
 * rather than repairs, so that what a hop passes on is what it checked.
 * Besides <cctx.h> and libc it uses the fork counter (fork.c) and the
 * deadline bound of value.c.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/propagate.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

/* ---- grpc-timeout ------------------------------------------------------------ */

#define GRPC_MAX_DIGITS 8
#define GRPC_MAX_VALUE INT64_C(99999999)

static const struct {
    char unit;
    int64_t ns;
} units[] = {
    /* smallest first: the formatter takes the first that fits */
    {'n', INT64_C(1)},
    {'u', INT64_C(1000)},
    {'m', INT64_C(1000000)},
    {'S', INT64_C(1000000000)},
    {'M', INT64_C(60000000000)},
    {'H', INT64_C(3600000000000)},
};
#define NUNITS (sizeof units / sizeof units[0])

CCTX_API int cctx_grpc_timeout_parse(const char *text, size_t len, int64_t *timeout)
{
    if (!text || !timeout || len < 2 || len > GRPC_MAX_DIGITS + 1)
        return EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return EINVAL;
        v = v * 10 + (text[i] - '0');
    }
    for (size_t u = 0; u < NUNITS; u++) {
        if (text[len - 1] != units[u].unit)
            continue;
        /* 99999999H is about 11,400 years: more than int64_t nanoseconds
         * hold, and no deadline is the honest reading of it. */
        *timeout = v > INT64_MAX / units[u].ns ? CCTX_NO_DEADLINE : v * units[u].ns;
        return 0;
    }
    return EINVAL;
}

/* Writes v (at most 8 digits) and the unit; out has room for both and a NUL. */
static void put_timeout(int64_t v, char unit, char *out)
{
    char digits[GRPC_MAX_DIGITS];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    int k = 0;
    while (n > 0)
        out[k++] = digits[--n];
    out[k++] = unit;
    out[k] = '\0';
}

CCTX_API int cctx_grpc_timeout_format(int64_t timeout, char out[CCTX_GRPC_TIMEOUT_SIZE])
{
    if (!out)
        return EINVAL;
    if (timeout <= 0) {
        out[0] = '\0';
        return ETIMEDOUT;
    }
    for (size_t u = 0; u < NUNITS; u++) {
        /* Rounded up: the receiver must never get less time than was left. */
        int64_t v = timeout / units[u].ns + (timeout % units[u].ns != 0);
        if (v <= GRPC_MAX_VALUE || u + 1 == NUNITS) {
            /* INT64_MAX ns is 2562048H rounded up: H always fits. */
            put_timeout(v, units[u].unit, out);
            return 0;
        }
    }
    return EINVAL; /* not reached */
}

CCTX_API int cctx_grpc_timeout_of(const cctx_t *ctx, char out[CCTX_GRPC_TIMEOUT_SIZE])
{
    if (!out)
        return EINVAL;
    out[0] = '\0';
    if (!ctx)
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    /* Not cctx_deadline's: a deadline born under a grace context before
     * the grace context's own was set stays that context's, yet the grace
     * context's end, if earlier, ends it too, and a grace context whose
     * parent has not ended has no deadline but ends by the parent's plus
     * its grace; the receiver must not be given more time than the caller
     * has. */
    int64_t deadline;
    if (!cctx__deadline_bound(ctx, &deadline, "cctx_grpc_timeout_of"))
        return ENOENT;
    /* A deadline already passed whose timer has not fired yet reads as
     * active; the remaining time says the budget is spent. */
    return cctx_grpc_timeout_format(cctx__sat_sub(deadline, cctx_now()), out);
}

/* ---- hex -------------------------------------------------------------------- */

static const char hexdigits[] = "0123456789abcdef";

/* Lower-case only: the W3C grammar is HEXDIGLC, and upper case is invalid. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes 2n hex characters into n bytes; false on any non-hex character. */
static bool unhex(const char *text, uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void tohex(const uint8_t *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[bytes[i] >> 4];
        out[2 * i + 1] = hexdigits[bytes[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static bool all_zero(const uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bytes[i])
            return false;
    return true;
}

/* ---- traceparent ---------------------------------------------------------------- */

/* "vv-" 32 "-" 16 "-" ff: the offsets of the fields of every version. */
enum { TP_LEN = 55, TP_TRACE = 3, TP_PARENT = 36, TP_FLAGS = 53 };

CCTX_API int cctx_traceparent_parse(const char *text, size_t len, cctx_trace_t *out)
{
    if (!text || !out || len < TP_LEN)
        return EINVAL;
    uint8_t version, trace_id[16], parent_id[8], flags;
    if (!unhex(text, &version, 1) || version == 0xff)
        return EINVAL;
    /* Version 00 is exactly 55 bytes. A later version may add fields after
     * ours, each behind a '-': read what we know, pass it on as 00. */
    if (version == 0 ? len != TP_LEN : len > TP_LEN && text[TP_LEN] != '-')
        return EINVAL;
    if (text[TP_TRACE - 1] != '-' || text[TP_PARENT - 1] != '-' || text[TP_FLAGS - 1] != '-')
        return EINVAL;
    if (!unhex(text + TP_TRACE, trace_id, sizeof trace_id) ||
        !unhex(text + TP_PARENT, parent_id, sizeof parent_id) ||
        !unhex(text + TP_FLAGS, &flags, 1))
        return EINVAL;
    if (all_zero(trace_id, sizeof trace_id) || all_zero(parent_id, sizeof parent_id))
        return EINVAL;
    memcpy(out->trace_id, trace_id, sizeof trace_id);
    memcpy(out->parent_id, parent_id, sizeof parent_id);
    memcpy(out->span_id, parent_id, sizeof parent_id);
    /* Version 00's bits other than "sampled" and "random" are reserved, and
     * whoever sends the header on must set them to zero (W3C Trace Context).
     * A later version's other bits may mean something else than 00's: of
     * its flags only "sampled" is read (the W3C rule), so that they are not
     * sent on as 00 flags they never were. */
    out->flags =
        flags & (version == 0 ? CCTX_TRACE_SAMPLED | CCTX_TRACE_RANDOM : CCTX_TRACE_SAMPLED);
    out->state_len = 0;
    out->state[0] = '\0';
    return 0;
}

CCTX_API int cctx_traceparent_format(const cctx_trace_t *trace, char out[CCTX_TRACEPARENT_SIZE])
{
    if (!out)
        return EINVAL;
    out[0] = '\0';
    if (!trace || all_zero(trace->trace_id, sizeof trace->trace_id) ||
        all_zero(trace->span_id, sizeof trace->span_id))
        return EINVAL;
    memcpy(out, "00-", 3);
    tohex(trace->trace_id, sizeof trace->trace_id, out + TP_TRACE);
    out[TP_PARENT - 1] = '-';
    tohex(trace->span_id, sizeof trace->span_id, out + TP_PARENT);
    out[TP_FLAGS - 1] = '-';
    tohex(&trace->flags, 1, out + TP_FLAGS);
    return 0;
}

/* ---- tracestate ---------------------------------------------------------------- */

#define TRACESTATE_MAX_MEMBERS 32

CCTX_API int cctx_tracestate_parse(const char *text, size_t len, cctx_trace_t *trace)
{
    if (!trace)
        return EINVAL;
    trace->state_len = 0;
    trace->state[0] = '\0';
    if (len == 0)
        return 0;
    if (!text)
        return EINVAL;
    if (len > CCTX_TRACESTATE_MAX)
        return E2BIG;
    /* Members are separated by commas with optional spaces and tabs around
     * them; an empty or blank member is allowed and does not count. */
    int members = 0;
    bool blank = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 || c > 0x7e) && c != '\t')
            return EINVAL;
        if (c == ',') {
            members += !blank;
            blank = true;
        } else if (c != ' ' && c != '\t') {
            blank = false;
        }
    }
    members += !blank;
    if (members > TRACESTATE_MAX_MEMBERS)
        return E2BIG;
    memcpy(trace->state, text, len);
    trace->state[len] = '\0';
    trace->state_len = (uint16_t)len;
    return 0;
}

/* ---- random ids ------------------------------------------------------------------ */

/* open, read and close are cancellation points: a cancel that came while
 * the descriptor was open acted at the next one and left it open. None of
 * them waits on /dev/urandom, so the whole runs with cancellation off. */
static int read_urandom_uncancelled(uint8_t *buf, size_t n)
{
    int fd;
    do
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno;
    int err = 0;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            err = EIO;
            break;
        } else if (errno != EINTR) {
            err = errno;
            break;
        }
    }
    close(fd);
    return err;
}

static int read_urandom(uint8_t *buf, size_t n)
{
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    int err = read_urandom_uncancelled(buf, n);
    pthread_setcancelstate(state, NULL);
    return err;
}

/* Fills buf from the kernel's CSPRNG. getrandom may be cut short by a signal
 * while the pool is still initialising (EINTR, or a partial read); kernels
 * before 3.17 lack it (ENOSYS), and then /dev/urandom serves. */
static int fill_random(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r >= 0)
            got += (size_t)r;
        else if (errno == ENOSYS)
            return read_urandom(buf + got, n - got);
        else if (errno != EINTR)
            return errno;
    }
    return 0;
}

/* Ids come from a per-thread pool of the kernel's CSPRNG bytes, refilled by
 * one getrandom call per POOL bytes (ten requests' worth of a server's
 * span and trace ids) instead of a system call per id, which a busy server
 * would pay twice per request. Bytes handed out are wiped from the pool, so
 * a later look at memory cannot recover ids already sent. A child of fork()
 * copies its parent's pool: the pool is tagged with the fork generation it
 * was filled in (fork.c counts forks), and a child refills before its first
 * id, so parent and child never send the same ids. */
enum { POOL = 256 };
static _Thread_local struct {
    uint8_t bytes[POOL];
    size_t used;        /* bytes handed out from the front; POOL: empty */
    uint32_t fork_gen;  /* cctx__fork_generation when filled */
} pool = {.used = POOL};

void cctx__random_pool_empty(void)
{
    memset(pool.bytes, 0, sizeof pool.bytes);
    pool.used = POOL;
}

/* An all-zero id means "invalid" to every receiver. From a CSPRNG it would
 * be a 2^-64 event, so it says the source is broken: the pool is dropped
 * and refilled; three such ids in a row (the last two from fresh pools)
 * say it is broken for good (EIO), rather than a loop for ever. */
static int random_id(uint8_t *id, size_t n)
{
    cctx__fork_watch();
    for (int zeros = 0; zeros < 3; zeros++) {
        uint32_t gen = cctx__atomic_load_relaxed(&cctx__fork_generation);
        if (POOL - pool.used < n || pool.fork_gen != gen) {
            int err = fill_random(pool.bytes, POOL);
            if (err) {
                cctx__random_pool_empty();
                return err;
            }
            pool.used = 0;
            pool.fork_gen = gen;
        }
        memcpy(id, pool.bytes + pool.used, n);
        memset(pool.bytes + pool.used, 0, n);
        pool.used += n;
        if (!all_zero(id, n))
            return 0;
        cctx__random_pool_empty();
    }
    return EIO;
}

CCTX_API int cctx_trace_new(cctx_trace_t *out)
{
    if (!out)
        return EINVAL;
    uint8_t trace_id[16], span_id[8];
    int err = random_id(trace_id, sizeof trace_id);
    if (!err)
        err = random_id(span_id, sizeof span_id);
    if (err)
        return err;
    memcpy(out->trace_id, trace_id, sizeof trace_id);
    memcpy(out->span_id, span_id, sizeof span_id);
    memset(out->parent_id, 0, sizeof out->parent_id);
    out->flags = CCTX_TRACE_SAMPLED;
    out->state_len = 0;
    out->state[0] = '\0';
    return 0;
}

CCTX_API int cctx_trace_child(const cctx_trace_t *parent, cctx_trace_t *child)
{
    if (!child)
        return EINVAL;
    if (!parent)
        return cctx_trace_new(child);
    /* An all-zero trace-id is no trace (W3C): its child could not be sent. */
    if (parent->state_len > CCTX_TRACESTATE_MAX ||
        all_zero(parent->trace_id, sizeof parent->trace_id))
        return EINVAL;
    uint8_t span_id[8];
    int err = random_id(span_id, sizeof span_id);
    if (err)
        return err;
    /* parent and child may be the same struct: take the parent's span
     * before the new one overwrites it. */
    memcpy(child->parent_id, parent->span_id, sizeof span_id);
    memcpy(child->span_id, span_id, sizeof span_id);
    if (child != parent) {
        memcpy(child->trace_id, parent->trace_id, sizeof child->trace_id);
        child->flags = parent->flags;
        child->state_len = parent->state_len;
        memcpy(child->state, parent->state, parent->state_len);
        child->state[parent->state_len] = '\0';
    }
    return 0;
}

CCTX_API void cctx_trace_id_hex(const cctx_trace_t *trace, char out[CCTX_TRACE_ID_HEX_SIZE])
{
    if (!out)
        return;
    if (!trace) {
        out[0] = '\0';
        return;
    }
    tohex(trace->trace_id, sizeof trace->trace_id, out);
}

CCTX_API void cctx_span_id_hex(const uint8_t id[8], char out[CCTX_SPAN_ID_HEX_SIZE])
{
    if (!out)
        return;
    if (!id) {
        out[0] = '\0';
        return;
    }
    tohex(id, 8, out);
}

/* ---- a trace carried by a context ---------------------------------------------------- */

/* Compared by address only: its value is never read. */
static const char trace_key;

CCTX_API cctx_t *cctx_with_trace_at(cctx_t *parent, const cctx_trace_t *trace, const char *file,
                                    int line, const char *func)
{
    if (!parent || !trace || trace->state_len > CCTX_TRACESTATE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    cctx_trace_t *copy = malloc(sizeof *copy);
    if (!copy) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(copy, trace, sizeof *copy);
    copy->state[copy->state_len] = '\0'; /* whatever the caller's held there */
    /* On ENOMEM the derivation has already run free(copy); on EINVAL (not
     * expected: the arguments were checked) it has not. */
    cctx_t *ctx = cctx_with_value_at(parent, &trace_key, copy, free, file, line, func);
    if (!ctx && errno == EINVAL)
        free(copy);
    return ctx;
}

CCTX_API const cctx_trace_t *cctx_trace_of(const cctx_t *ctx)
{
    return cctx_value(ctx, &trace_key); /* NULL ctx: EINVAL */
}
