/* SPDX-License-Identifier: MIT */
/*
 * <cctx/propagate.h>, where trace and span ids come from: random ids (zero
 * draws redrawn, one draw per pool, parent and child of a fork drawing
 * apart, interrupted draws retried, a failing source, and the /dev/urandom
 * fallback with getrandom made to fail by a seccomp filter in a child
 * process), child spans, and a trace carried by a context. The codecs are
 * tested in test_propagate.c and test_propagate_grpc.c.
 *
 * A call that fails must leave its output as it was: outputs start
 * poisoned (poison_trace) and are checked to be so still.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/propagate.h>

/* The kernel's headers, for the seccomp filter; Debian's musl-gcc does not
 * see them, and the test that needs them is not run there. */
#if __has_include(<linux/filter.h>) && __has_include(<linux/seccomp.h>)
#include <linux/filter.h>
#include <linux/seccomp.h>
#define HAVE_SECCOMP_HEADERS 1
#else
#define HAVE_SECCOMP_HEADERS 0
#endif
#include <malloc.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */

static bool zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* ---- random ids ------------------------------------------------------------------------ */

static void check_new(const cctx_trace_t *t)
{
    CHECK(!zero(t->trace_id, 16));
    CHECK(!zero(t->span_id, 8));
    CHECK(zero(t->parent_id, 8));
    CHECK_EQ(t->flags, CCTX_TRACE_SAMPLED);
    CHECK_EQ(t->state_len, 0);
    CHECK_STR(t->state, "");
}

TEST(propagate_trace_new_random)
{
    cctx_trace_t a, b;
    poison_trace(&a);
    poison_trace(&b);
    CHECK_EQ(cctx_trace_new(&a), 0);
    CHECK_EQ(cctx_trace_new(&b), 0);
    check_new(&a);
    check_new(&b);
    CHECK(memcmp(a.trace_id, b.trace_id, 16) != 0);
    CHECK(memcmp(a.span_id, b.span_id, 8) != 0);
    /* Not a constant or a counter: over many draws every byte position takes
     * many values (a fixed byte would give 1). */
    uint8_t seen[16][256];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 512; i++) {
        CHECK_EQ(cctx_trace_new(&a), 0);
        check_new(&a);
        for (int j = 0; j < 16; j++)
            seen[j][a.trace_id[j]] = 1;
    }
    for (int j = 0; j < 16; j++) {
        int n = 0;
        for (int v = 0; v < 256; v++)
            n += seen[j][v];
        CHECK(n > 100);
    }
    /* A new trace formats and parses back to itself. */
    char out[CCTX_TRACEPARENT_SIZE];
    CHECK_EQ(cctx_traceparent_format(&b, out), 0);
    cctx_trace_t c;
    CHECK_EQ(cctx_traceparent_parse(out, strlen(out), &c), 0);
    CHECK(memcmp(c.trace_id, b.trace_id, 16) == 0);
    CHECK(memcmp(c.parent_id, b.span_id, 8) == 0);
    CHECK_EQ(c.flags, b.flags);
    CHECK_EQ(cctx_trace_new(NULL), EINVAL);
}

/* This test binary's getrandom, which the library's objects linked into it
 * call instead of libc's: it passes through to the system call unless a test
 * asks it to return zeros (bit i of zero_mask: the i-th call), to be cut
 * short (EINTR, or one byte at a time), or to fail. A test that uses it
 * leaves it as it found it (all zero). */
static struct {
    unsigned zero_mask;
    int eintr, partial;
    int fail, fail_from; /* errno for every call from the fail_from-th on */
    int calls;
} fake;

ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
    int call = fake.calls++;
    if (call < 32 && (fake.zero_mask >> call & 1)) {
        memset(buf, 0, n);
        return (ssize_t)n;
    }
    if (fake.fail && call >= fake.fail_from) {
        errno = fake.fail;
        return -1;
    }
    if (fake.eintr > 0) {
        fake.eintr--;
        errno = EINTR;
        return -1;
    }
    if (fake.partial > 0 && n > 1) {
        fake.partial--;
        n = 1;
    }
    return syscall(SYS_getrandom, buf, n, flags);
}

/* Ids come from a per-thread pool that one getrandom call fills; each test
 * below empties it first (cctx__random_pool_empty), so the fake above sees
 * the draws it is set up for. */
static void fake_from_empty_pool(typeof(fake) f)
{
    cctx__random_pool_empty();
    fake = f;
}

TEST(propagate_trace_new_redraws_zero_ids)
{
    cctx_trace_t t, c;
    /* The first fill is all zero: the trace id drawn from it is all zero,
     * which says the source is broken, so the pool is refilled. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 1});
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
    CHECK_EQ(fake.calls, 2);
    /* Two broken fills in a row. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 3});
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
    CHECK_EQ(fake.calls, 3);
    /* A child's span too. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 1});
    CHECK_EQ(cctx_trace_child(&t, &c), 0);
    CHECK(!zero(c.span_id, 8));
    CHECK_EQ(fake.calls, 2);
    /* A source that gives only zeros is broken for good: EIO after three
     * fills, out untouched (before: a loop for ever). */
    fake_from_empty_pool((typeof(fake)){.zero_mask = ~0u});
    cctx_trace_t before = t;
    CHECK_EQ(cctx_trace_new(&t), EIO);
    CHECK_EQ(fake.calls, 3);
    CHECK(memcmp(&t, &before, sizeof t) == 0);
    fake_from_empty_pool((typeof(fake)){.zero_mask = ~0u});
    CHECK_EQ(cctx_trace_child(&before, &c), EIO);
    fake = (typeof(fake)){0};
}

TEST(propagate_ids_come_from_one_draw_per_pool)
{
    /* One getrandom call serves ten traces (24 bytes each) from a 256-byte
     * pool, and every id differs. */
    fake_from_empty_pool((typeof(fake)){0});
    cctx_trace_t t[10];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(cctx_trace_new(&t[i]), 0);
    CHECK_EQ(fake.calls, 1);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < i; j++)
            CHECK(memcmp(t[i].trace_id, t[j].trace_id, 16) != 0 &&
                  memcmp(t[i].span_id, t[j].span_id, 8) != 0);
    CHECK_EQ(cctx_trace_new(&t[0]), 0);
    CHECK_EQ(fake.calls, 2); /* the eleventh needs a new fill */
    fake = (typeof(fake)){0};
}

CHILD(propagate_ids_after_fork)
{
    /* Parent and child start from the same pool: each must draw anew. */
    cctx_trace_t before, mine;
    CHECK_EQ(cctx_trace_new(&before), 0);
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    CHECK_EQ(cctx_trace_new(&mine), 0);
    if (pid == 0) {
        CHECK(write(p[1], &mine, sizeof mine) == (ssize_t)sizeof mine);
        _exit(0);
    }
    cctx_trace_t theirs;
    CHECK(read(p[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(memcmp(mine.trace_id, theirs.trace_id, 16) != 0);
    CHECK(memcmp(mine.span_id, theirs.span_id, 8) != 0);
    printf("fork ok\n");
    exit(0);
}

TEST(propagate_ids_differ_between_parent_and_child_of_fork)
{
    struct child c;
    run_child("propagate_ids_after_fork", NULL, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}

TEST(propagate_trace_new_retries_interrupted_draws)
{
    cctx_trace_t t;
    fake_from_empty_pool((typeof(fake)){.eintr = 3, .partial = 20});
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
    CHECK_EQ(fake.eintr, 0);
    CHECK_EQ(fake.partial, 0); /* 20 bytes came one at a time, the rest of the pool whole */
    /* Every byte was filled: over many draws each position varies. */
    uint8_t seen[24][256];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 300; i++) {
        fake_from_empty_pool((typeof(fake)){.eintr = 1, .partial = 30});
        CHECK_EQ(cctx_trace_new(&t), 0);
        for (int j = 0; j < 16; j++)
            seen[j][t.trace_id[j]] = 1;
        for (int j = 0; j < 8; j++)
            seen[16 + j][t.span_id[j]] = 1;
    }
    fake = (typeof(fake)){0};
    for (int j = 0; j < 24; j++) {
        int n = 0;
        for (int v = 0; v < 256; v++)
            n += seen[j][v];
        CHECK(n > 50);
    }
}

TEST(propagate_trace_new_random_source_fails)
{
    cctx_trace_t t, p, c;
    CHECK_EQ(cctx_trace_new(&p), 0);
    fake_from_empty_pool((typeof(fake)){.fail = EIO});
    poison_trace(&t);
    CHECK_EQ(cctx_trace_new(&t), EIO);
    CHECK(trace_poisoned(&t));
    poison_trace(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), EIO);
    CHECK(trace_poisoned(&c));
    CHECK_EQ(cctx_trace_child(NULL, &c), EIO);
    CHECK(trace_poisoned(&c));
    /* A fill that fails after an all-zero one: nothing written. */
    fake_from_empty_pool((typeof(fake)){.zero_mask = 1, .fail = EIO, .fail_from = 1});
    poison_trace(&t);
    CHECK_EQ(cctx_trace_new(&t), EIO);
    CHECK_EQ(fake.calls, 2);
    CHECK(trace_poisoned(&t));
    /* The source works again: so do ids. */
    fake = (typeof(fake)){0};
    CHECK_EQ(cctx_trace_new(&t), 0);
    check_new(&t);
}

/* getrandom fails with ENOSYS, as on a kernel that lacks it: the ids come
 * from /dev/urandom, and its descriptor is closed again. Exit 77: no seccomp. */
CHILD(propagate_no_getrandom)
{
#if !HAVE_SECCOMP_HEADERS
    exit(78); /* this build cannot write a filter */
#else
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        exit(77);
    uint8_t buf[4];
    CHECK(syscall(SYS_getrandom, buf, sizeof buf, 0) == -1 && errno == ENOSYS);
    int fds = count_open_fds();
    cctx_trace_t a, b;
    CHECK_EQ(cctx_trace_new(&a), 0);
    CHECK_EQ(cctx_trace_child(&a, &b), 0);
    check_new(&a);
    CHECK(!zero(b.span_id, 8));
    CHECK(memcmp(b.span_id, a.span_id, 8) != 0);
    CHECK_EQ(count_open_fds(), fds);
    printf("fallback ok\n");
    exit(0);
#endif
}

TEST(propagate_trace_new_urandom_fallback)
{
    struct child c;
    run_child("propagate_no_getrandom", NULL, &c);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 78) {
        child_done(&c);
        SKIP_IN_THIS_BUILD("no kernel headers for a seccomp filter with this libc");
    }
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 77) {
        child_done(&c);
        SKIP("seccomp filters are not available here");
    }
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
        fprintf(stderr, "child: status %d\n%s%s", c.status, c.out, c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.out, "fallback ok"));
    child_done(&c);
}

/* ---- child spans ---------------------------------------------------------------------- */

TEST(propagate_trace_child)
{
    cctx_trace_t p, c;
    static const char parent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    CHECK_EQ(traceparent_parse_exact(parent, strlen(parent), &p), 0);
    CHECK_EQ(cctx_tracestate_parse("a=1,b=2", 7, &p), 0);
    poison_trace(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), 0);
    CHECK(memcmp(c.trace_id, p.trace_id, 16) == 0);
    CHECK(memcmp(c.parent_id, p.span_id, 8) == 0);
    CHECK(!zero(c.span_id, 8));
    CHECK(memcmp(c.span_id, p.span_id, 8) != 0);
    CHECK_EQ(c.flags, 0x03);
    CHECK_EQ(c.state_len, 7);
    CHECK_STR(c.state, "a=1,b=2");
    char out[CCTX_TRACEPARENT_SIZE], span[CCTX_SPAN_ID_HEX_SIZE];
    CHECK_EQ(cctx_traceparent_format(&c, out), 0);
    cctx_span_id_hex(c.span_id, span);
    CHECK(strncmp(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
    CHECK(strncmp(out + 36, span, 16) == 0);
    CHECK_STR(out + 52, "-03");

    /* A grandchild: its parent is the child's span. */
    cctx_trace_t g;
    CHECK_EQ(cctx_trace_child(&c, &g), 0);
    CHECK(memcmp(g.parent_id, c.span_id, 8) == 0);
    CHECK(memcmp(g.span_id, c.span_id, 8) != 0);

    /* In place. */
    cctx_trace_t same = c;
    CHECK_EQ(cctx_trace_child(&same, &same), 0);
    CHECK(memcmp(same.parent_id, c.span_id, 8) == 0);
    CHECK(memcmp(same.span_id, c.span_id, 8) != 0);
    CHECK(memcmp(same.trace_id, c.trace_id, 16) == 0);
    CHECK_STR(same.state, "a=1,b=2");

    /* No parent: a new trace. */
    poison_trace(&c);
    CHECK_EQ(cctx_trace_child(NULL, &c), 0);
    check_new(&c);
    CHECK(memcmp(c.trace_id, p.trace_id, 16) != 0);

    CHECK_EQ(cctx_trace_child(&p, NULL), EINVAL);
    p.state_len = CCTX_TRACESTATE_MAX + 1; /* a broken trace is refused */
    poison_trace(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), EINVAL);
    CHECK(trace_poisoned(&c));
    /* An all-zero trace-id is no trace: before, its child was made, and
     * could not be formatted. */
    p.state_len = 0;
    memset(p.trace_id, 0, sizeof p.trace_id);
    poison_trace(&c);
    CHECK_EQ(cctx_trace_child(&p, &c), EINVAL);
    CHECK(trace_poisoned(&c));
}

/* The copy a context carries ends its state at state_len, whatever the
 * caller's struct held there. */
TEST(propagate_with_trace_terminates_the_state)
{
    cctx_trace_t t;
    CHECK_EQ(cctx_trace_new(&t), 0);
    memset(t.state, 'x', sizeof t.state);
    t.state_len = 3;
    cctx_t *ctx = cctx_with_trace(cctx_background(), &t);
    CHECK(ctx != NULL);
    CHECK_STR(cctx_trace_of(ctx)->state, "xxx");
    cctx_release(ctx);
}

/* ---- a trace carried by a context ------------------------------------------------------ */

TEST(propagate_with_trace_nearest)
{
    cctx_t *bg = cctx_background();
    CHECK_ERRNO(cctx_trace_of(bg), NULL, 0); /* no trace: errno untouched */
    CHECK_ERRNO(cctx_trace_of(NULL), NULL, EINVAL);

    cctx_trace_t a, b;
    CHECK_EQ(cctx_trace_new(&a), 0);
    CHECK_EQ(cctx_tracestate_parse("k=a", 3, &a), 0);
    CHECK_EQ(cctx_trace_child(&a, &b), 0);
    cctx_trace_t a_copy = a;

    cctx_cancel_t *cancel;
    cctx_t *c0 = cctx_with_cancel(bg, &cancel);
    cctx_t *c1 = cctx_with_trace(c0, &a);
    CHECK(c1);
    memset(&a, 0, sizeof a); /* the context holds its own copy */
    const cctx_trace_t *got = cctx_trace_of(c1);
    CHECK(got && got != &a);
    CHECK(memcmp(got, &a_copy, sizeof a_copy) == 0);
    CHECK(cctx_trace_of(c0) == NULL);

    static const char other_key;
    cctx_t *c2 = cctx_with_value(c1, &other_key, (void *)&other_key, NULL);
    cctx_t *c3 = cctx_with_timeout(c2, CCTX_SEC(60), NULL);
    CHECK(cctx_trace_of(c3) == got); /* through other contexts */
    cctx_t *c4 = cctx_with_trace(c3, &b);
    cctx_t *c5 = cctx_with_cancel(c4, NULL);
    const cctx_trace_t *near = cctx_trace_of(c5);
    CHECK(near && near != got);
    CHECK(memcmp(near->span_id, b.span_id, 8) == 0);
    CHECK(memcmp(near->parent_id, a_copy.span_id, 8) == 0);
    CHECK(cctx_trace_of(c3) == got); /* the outer one is unchanged */
    /* Still readable after cancellation. */
    cctx_cancel(cancel);
    CHECK(cctx_trace_of(c5) == near);
    CHECK_STR(near->state, "k=a");

    cctx_release(c5);
    cctx_release(c4);
    cctx_release(c3);
    cctx_release(c2);
    cctx_release(c1);
    cctx_release(c0);
}

TEST(propagate_with_trace_frees)
{
    cctx_trace_t t;
    CHECK_EQ(cctx_trace_new(&t), 0);
    CHECK_ERRNO(cctx_with_trace(NULL, &t), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_trace(cctx_background(), NULL), NULL, EINVAL);
    t.state_len = CCTX_TRACESTATE_MAX + 1;
    CHECK_ERRNO(cctx_with_trace(cctx_background(), &t), NULL, EINVAL);
    t.state_len = 0;

    /* The derivation fails after the copy was made: it is freed then too
     * (LeakSanitizer sees it under ASan; the heap count below otherwise). */
    cctx__test_fail_alloc(1);
    CHECK_ERRNO(cctx_with_trace(cctx_background(), &t), NULL, ENOMEM);
    cctx__test_fail_alloc(0);

    /* Each copy goes with its context: a thousand of them leave nothing. */
    cctx_t *warm = cctx_with_trace(cctx_background(), &t);
    cctx_release(warm);
    long long before = heap_in_use();
    for (int i = 0; i < 1000; i++) {
        cctx_t *c = cctx_with_trace(cctx_background(), &t);
        CHECK(c);
        CHECK(cctx_trace_of(c) != NULL);
        cctx_release(c);
    }
    for (int i = 0; i < 1000; i++) {
        cctx__test_fail_alloc(1);
        CHECK(cctx_with_trace(cctx_background(), &t) == NULL);
    }
    cctx__test_fail_alloc(0);
    long long after = heap_in_use();
    if (before >= 0) /* a leak would be 1000 or 2000 copies */
        CHECK(after < before + 100 * (long long)sizeof t);
}
