/* SPDX-License-Identifier: MIT */
/*
 * An allocation-failure sweep, as SQLite's: a scenario that goes through a
 * broad slice of the API runs again and again, the n-th of the library's
 * allocations failing in run n, until a run makes fewer than n. After each
 * run, with everything released: every call that failed said so as its
 * header promises (NULL or -1 and ENOMEM, or ENOMEM returned), every value
 * destructor ran once, every after-function ran once or was stopped, the
 * tree the run could build still carried a cancel to each of its contexts,
 * no block of the library's is left, and a fresh tree still works.
 *
 * Also with every allocation from the n-th on failing (memory out for
 * good: the cleanup that would want memory cannot have it either), and with
 * no runner thread to be had.
 *
 * Deterministic: the fake clock, no sleeps. The threads that allocate
 * besides the main one (the group's tasks, a runner that takes a dump's
 * last reference, the test's thread that advances the clock for the waits)
 * do so only while the main thread waits for them. SWEEP_VERBOSE=1 in the
 * environment names each run on stderr.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>
#include <cctx/io.h>
#include <cctx/proc.h>
#include <cctx/propagate.h>
#include <cctx/signal.h>
#include <cctx/testing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

#define T0 CCTX_SEC(1000)

static const int key_a = 0, key_b = 0;

/* A value whose destructor must run exactly once, derivation failed or not. */
struct val {
    atomic_int destroyed;
};

static void val_destroy(void *v)
{
    atomic_fetch_add(&((struct val *)v)->destroyed, 1);
}

/* One run's record. */
struct run {
    int enomem;   /* calls that reported an allocation failure */
    bool offered; /* the values were handed to cctx_with_value */
    struct val va, vb;
};

/* A pointer result: either a context, or NULL with ENOMEM. */
static cctx_t *got(struct run *r, cctx_t *c)
{
    if (!c) {
        CHECK_EQ(errno, ENOMEM);
        r->enomem++;
    }
    return c;
}

/* An errno-valued result: 0 or ENOMEM. */
static int ok_or_enomem(struct run *r, int err)
{
    CHECK(err == 0 || err == ENOMEM);
    if (err)
        r->enomem++;
    return err;
}

/* A context that ended through a cancel with a code and message ends with
 * them; with the code and the default message when the record had no room
 * for the message; or, no record allocated, with the default cause of an
 * out-of-memory cancel ("?" as its file): never with anything else. */
static void check_ended_with(const cctx_t *c, int err, int code, const char *msg)
{
    cctx_cause_t why;
    CHECK_EQ(cctx_cause(c, &why), err);
    CHECK_EQ(why.err, err);
    CHECK(why.msg != NULL);
    if (strcmp(why.file, "?") == 0) {
        CHECK_EQ(why.code, 0);
        return;
    }
    /* A record with no room for the message keeps the code and the site. */
    CHECK_EQ(why.code, code);
    if (msg && strcmp(why.msg, msg) != 0)
        CHECK_STR(why.msg, err == ETIMEDOUT ? "context deadline exceeded" : "context canceled");
}

static int task_ok(cctx_t *ctx, void *arg)
{
    (void)ctx;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static int task_fail(cctx_t *ctx, void *arg)
{
    (void)ctx;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 9;
}

/* Dumps ctx in every format into memory: 0 or ENOMEM, and on 0 some text. */
static void dump_all(struct run *r, cctx_t *ctx)
{
    for (int format = CCTX_DUMP_TEXT; format <= CCTX_DUMP_HTML; format++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        CHECK(f != NULL);
        int err = ok_or_enomem(r, cctx_dump(ctx, f, format));
        CHECK_EQ(fclose(f), 0);
        if (!err)
            CHECK(len > 0);
        free(text);
    }
}

/* A stream whose first write releases a context: the dump writing it then
 * holds the last reference, and hands the release to a runner. */
static ssize_t releasing_write(void *cookie, const char *buf, size_t len)
{
    cctx_t **c = cookie;
    (void)buf;
    cctx_release(*c);
    *c = NULL;
    return (ssize_t)len;
}

static void dump_releasing(struct run *r, cctx_t *root, cctx_t *c)
{
    cookie_io_functions_t io = {.write = releasing_write};
    FILE *f = fopencookie(&c, "w", io);
    CHECK(f != NULL);
    CHECK_EQ(setvbuf(f, NULL, _IONBF, 0), 0);
    ok_or_enomem(r, cctx_dump(root, f, CCTX_DUMP_TEXT));
    CHECK_EQ(fclose(f), 0);
    CHECK(c == NULL);
}

/* The scenario. Every context it makes is released before it returns. */
static void scenario(struct run *r)
{
    cctx_fake_clock_start(T0);
    struct rec on_root, on_c1, on_d1, on_d2, on_d4, on_g, on_stopped, on_wc, on_vb, on_lone;
    cctx_t *all[16];
    int n_all = 0;

    cctx_cancel_t *rc;
    cctx_t *root = got(r, cctx_with_cancel(cctx_background(), &rc));
    if (!root) {
        CHECK(rc == NULL);
        cctx_fake_clock_stop();
        return;
    }
    rec_watch(&on_root, root);

    /* Values: a failed derivation destroys its value at once. */
    r->offered = true;
    cctx_t *va = got(r, cctx_with_value(root, &key_a, &r->va, val_destroy));
    cctx_t *vparent = va ? va : root;
    cctx_t *vb = got(r, cctx_with_value(vparent, &key_b, &r->vb, val_destroy));
    if (vb) {
        CHECK(cctx_value(vb, &key_b) == &r->vb);
        CHECK(cctx_value(vb, &key_a) == (va ? (void *)&r->va : NULL));
        vparent = vb;
    }

    cctx_cancel_t *cc1, *dc1, *dc2, *gc, *woc;
    cctx_t *c1 = got(r, cctx_with_cancel(vparent, &cc1));
    cctx_t *p1 = c1 ? c1 : root;
    cctx_t *d1 = got(r, cctx_with_timeout(p1, CCTX_MSEC(100), &dc1));
    cctx_t *d2 = got(r, cctx_with_deadline_cause(root, T0 + CCTX_MSEC(50), 42, "d2 expired", &dc2));
    cctx_t *d3 = got(r, cctx_with_timeout_cause(d1 ? d1 : p1, CCTX_MSEC(200), 7, NULL, NULL));
    cctx_t *wo = got(r, cctx_without_cancel(vparent));
    cctx_t *wc = wo ? got(r, cctx_with_cancel(wo, &woc)) : NULL;
    cctx_t *g = got(r, cctx_with_grace(p1, CCTX_MSEC(30), &gc));
    cctx_t *gchild = g ? got(r, cctx_with_cancel(g, NULL)) : NULL;
    /* A deadline with no cause of its own: its firing makes a record. */
    cctx_t *d4 = got(r, cctx_with_timeout(root, CCTX_MSEC(55), NULL));
    cctx_t *d4k = d4 ? got(r, cctx_with_cancel(d4, NULL)) : NULL;
    if (d4)
        rec_watch(&on_d4, d4);
    /* Leaves of root's list, ended by a cancel with a site given by hand,
     * with a code, and by a release that runs an after-function. */
    cctx_cancel_t *l1c, *l2c;
    cctx_t *l1 = got(r, cctx_with_cancel(root, &l1c));
    cctx_t *l2 = got(r, cctx_with_cancel(root, &l2c));
    cctx_t *lone = got(r, cctx_with_cancel(root, NULL));
    if (l1) {
        cctx_cancel_at(l1c, "here.c", 12, "by_hand");
        check_ended_with(l1, ECANCELED, 0, NULL);
        cctx_release(l1);
    }
    if (l2) {
        cctx_cancel_cause(l2c, 11, NULL);
        check_ended_with(l2, ECANCELED, 11, NULL);
    }
    if (lone) {
        rec_watch(&on_lone, lone);
        cctx_release(lone);
        CHECK_EQ(atomic_load(&on_lone.runs), 1);
        CHECK_EQ(on_lone.err, ECANCELED);
    }
    cctx_t *born = NULL; /* derived once root's branch has ended: born done */
    if (!c1)
        cc1 = NULL;
    if (!d1)
        dc1 = NULL;
    if (!d2)
        dc2 = NULL;
    if (!g)
        gc = NULL;

    /* Names: 0 or ENOMEM, and on 0 the name reads back. */
    if (c1 && !ok_or_enomem(r, cctx_set_name(c1, "worker")))
        CHECK_STR(cctx_name(c1), "worker");
    if (d1 && !ok_or_enomem(r, cctx_set_name(d1, "fetch")))
        CHECK_STR(cctx_name(d1), "fetch");
    if (d1 && !ok_or_enomem(r, cctx_set_name(d1, "fetch again")))
        CHECK_STR(cctx_name(d1), "fetch again");

    /* After-functions: registering allocates nothing. */
    if (c1)
        rec_watch(&on_c1, c1);
    if (d1)
        rec_watch(&on_d1, d1);
    if (d2)
        rec_watch(&on_d2, d2);
    if (g)
        rec_watch(&on_g, g);
    if (wc)
        rec_on(&on_wc, wc);
    if (vb)
        rec_on(&on_vb, vb);
    rec_on(&on_stopped, root);
    CHECK(cctx_after_stop(&on_stopped.reg));

    dump_all(r, root);
    /* x's last reference is the dump's: its release, which ends x and runs
     * its after-function, goes to a runner (or is made here, if the job
     * could not be allocated). */
    struct rec on_x;
    cctx_t *x = got(r, cctx_with_cancel(root, NULL));
    if (x) {
        /* Not rec_watch: nobody holds x while its after-function runs on a
         * runner, so the function must not read x. */
        rec_on(&on_x, x);
        dump_releasing(r, root, x);
        while (atomic_load(&on_x.runs) == 0)
            sched_yield();
    }

    /* Waits that need no time to pass. */
    CHECK_EQ(cctx_wait(root, 0), 0);
    cctx_t *pair[2] = {root, vparent};
    errno = 0;
    CHECK_EQ(cctx_wait_any(pair, 2, 0), -1);
    CHECK_EQ(errno, ETIMEDOUT);

    /* d2 and d4 fire on this thread, d2 with its own code and message. */
    cctx_fake_clock_advance(CCTX_MSEC(60));
    if (d4) {
        check_ended_with(d4, ETIMEDOUT, 0, NULL);
        CHECK_EQ(atomic_load(&on_d4.runs), 1);
        CHECK_EQ(on_d4.err, ETIMEDOUT);
        if (d4k)
            check_same_cause(d4k, d4);
    }
    if (d2) {
        CHECK_EQ(cctx_wait(d2, -1), ETIMEDOUT);
        CHECK_EQ(atomic_load(&on_d2.runs), 1);
        check_ended_with(d2, ETIMEDOUT, 42, "d2 expired");
    }

    /* c1 canceled with a code and a message: its deadline descendants end
     * with it, and the grace context starts its 30 ms. */
    if (c1) {
        cctx_cancel_cause(cc1, 5, "c1 stopped");
        check_ended_with(c1, ECANCELED, 5, "c1 stopped");
        CHECK_EQ(atomic_load(&on_c1.runs), 1);
        if (d1) {
            CHECK_EQ(cctx_err(d1), ECANCELED);
            CHECK_EQ(atomic_load(&on_d1.runs), 1);
            check_ended_with(d1, ECANCELED, 5, "c1 stopped");
        }
        if (d3)
            CHECK_EQ(cctx_err(d3), ECANCELED);
        born = got(r, cctx_with_cancel(c1, NULL));
        if (born)
            check_same_cause(born, c1);
        if (g) {
            CHECK_EQ(cctx_err(g), 0);
            CHECK_EQ(cctx_wait(g, 0), 0);
        }
        dump_all(r, c1);
    }
    cctx_fake_clock_advance(CCTX_MSEC(40)); /* past the grace period */
    if (g && c1) {
        CHECK_EQ(cctx_err(g), ETIMEDOUT);
        CHECK_EQ(atomic_load(&on_g.runs), 1);
        if (gchild)
            CHECK_EQ(cctx_err(gchild), ETIMEDOUT);
    }

    /* A group under root: one task fails, the wait reports it. */
    cctx_group_t *grp = cctx_group_new(root);
    if (!grp) {
        CHECK_EQ(errno, ENOMEM);
        r->enomem++;
    } else {
        atomic_int ran = 0;
        int started = 0, err;
        err = cctx_group_go(grp, task_ok, &ran);
        CHECK(err == 0 || err == ENOMEM || err == EAGAIN);
        started += err == 0;
        err = cctx_group_go(grp, task_fail, &ran);
        CHECK(err == 0 || err == ENOMEM || err == EAGAIN || err == ECANCELED);
        bool failing = err == 0;
        started += err == 0;
        int res = cctx_group_wait(grp);
        CHECK_EQ(res, failing ? 9 : 0);
        CHECK_EQ(atomic_load(&ran), started);
        cctx_t *gctx = cctx_group_ctx(grp);
        CHECK_EQ(cctx_err(gctx), ECANCELED);
        if (failing)
            check_ended_with(gctx, ECANCELED, 9, "group task failed");
        cctx_group_free(grp);
    }

    /* Ends the rest of the tree: every context made under root is done. */
    cctx_cancel_cause(rc, 3, "shutdown");
    check_ended_with(root, ECANCELED, 3, "shutdown");
    CHECK_EQ(atomic_load(&on_root.runs), 1);
    CHECK_EQ(atomic_load(&on_stopped.runs), 0);
    cctx_t *under_root[] = {va, vb, c1, d1, d2, d3, born, d4, d4k, l2};
    for (size_t i = 0; i < sizeof under_root / sizeof *under_root; i++)
        if (under_root[i]) {
            CHECK(cctx_err(under_root[i]) != 0);
            CHECK(cctx_wait(under_root[i], -1) != 0);
            all[n_all++] = under_root[i];
        }
    if (vb)
        CHECK_EQ(atomic_load(&on_vb.runs), 1);
    /* The grace context outlives root's cancel by its grace period. */
    if (g && !c1) {
        CHECK_EQ(cctx_err(g), 0);
        cctx_fake_clock_advance(CCTX_MSEC(30));
        CHECK_EQ(cctx_err(g), ETIMEDOUT);
        CHECK_EQ(atomic_load(&on_g.runs), 1);
    }
    if (gchild)
        CHECK_EQ(cctx_err(gchild), ETIMEDOUT);
    /* The without-cancel branch is not canceled by root. */
    if (wc) {
        CHECK_EQ(cctx_err(wc), 0);
        CHECK(cctx_value(wc, &key_b) == (vb ? (void *)&r->vb : NULL));
        cctx_cancel(woc);
        CHECK_EQ(cctx_err(wc), ECANCELED);
        CHECK_EQ(atomic_load(&on_wc.runs), 1);
    }

    cctx_t *rest[] = {gchild, g, wc, wo};
    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++)
        if (rest[i])
            all[n_all++] = rest[i];

    /* Held by the run (if it made anything): a look at once says so, and
     * reports what holds it. */
    char *report = NULL;
    size_t report_len = 0;
    FILE *f = open_memstream(&report, &report_len);
    CHECK(f != NULL);
    int qerr = cctx_cancel_and_wait(rc, 0, f);
    CHECK_EQ(fclose(f), 0);
    /* (x may still be in a runner's hands, on its way out.) */
    CHECK(qerr == (n_all > 0 ? ETIMEDOUT : 0) || (x && qerr == ETIMEDOUT));
    CHECK(report_len > 0 || qerr == 0);
    free(report);

    for (int i = n_all - 1; i >= 0; i--)
        cctx_release(all[i]);
    if (vb)
        CHECK_EQ(atomic_load(&r->vb.destroyed), 1);

    /* Nothing else holds root now, or soon: x's runner lets go. */
    report = NULL;
    f = open_memstream(&report, &report_len);
    CHECK(f != NULL);
    CHECK_EQ(cctx_cancel_and_wait(rc, -1, f), 0);
    CHECK_EQ(fclose(f), 0);
    free(report);
    cctx_release(root);
    cctx_fake_clock_stop();
}

/* The waits that block on the fake clock. A thread of the test moves the
 * clock once a deadline is armed, and only then: the wait's own (the only
 * one there is), which it made before it blocked. So the allocations come
 * in one order: the wait's, then the firing's on the advancing thread while
 * the wait sleeps. */
struct advancer {
    pthread_t thread;
    atomic_bool stop;
    int64_t step;
};

static void *advancer_main(void *arg)
{
    struct advancer *a = arg;
    while (!atomic_load(&a->stop)) {
        if (cctx__test_armed_timers() > 0)
            cctx_fake_clock_advance(a->step);
        else
            sched_yield();
    }
    return NULL;
}

static void advancer_start(struct advancer *a, int64_t step)
{
    *a = (struct advancer){.step = step};
    CHECK_EQ(pthread_create(&a->thread, NULL, advancer_main, a), 0);
}

static void advancer_stop(struct advancer *a)
{
    atomic_store(&a->stop, true);
    CHECK_EQ(pthread_join(a->thread, NULL), 0);
}

static void scenario_waits(struct run *r)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *p = got(r, cctx_with_cancel(cctx_background(), &pc));
    if (!p) {
        cctx_fake_clock_stop();
        return;
    }
    cctx_t *v = got(r, cctx_with_value(p, &key_a, NULL, NULL));
    cctx_t *k = got(r, cctx_with_cancel(v ? v : p, NULL));
    struct advancer a;
    advancer_start(&a, CCTX_MSEC(10));

    /* Each is 0 (the timeout passed), or says it could not be set up. */
    int err = cctx_wait(v ? v : p, CCTX_MSEC(10));
    CHECK(err == 0 || ok_or_enomem(r, err));
    err = cctx_sleep(p, CCTX_MSEC(10));
    CHECK(err == 0 || ok_or_enomem(r, err));
    cctx_t *both[2] = {p, k ? k : p};
    errno = 0;
    CHECK_EQ(cctx_wait_any(both, 2, CCTX_MSEC(10)), -1);
    CHECK(errno == ETIMEDOUT || (errno == ENOMEM && ++r->enomem));
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    errno = 0;
    int n = cctx_poll(p, &pfd, 1, CCTX_MSEC(10));
    CHECK(n == 0 || (n == -1 && errno == ENOMEM && ++r->enomem));
    CHECK_EQ(close(fds[0]), 0);
    CHECK_EQ(close(fds[1]), 0);

    /* A trace rides on a value context. */
    cctx_trace_t tr;
    CHECK_EQ(cctx_trace_new(&tr), 0);
    cctx_t *traced = got(r, cctx_with_trace(p, &tr));
    if (traced)
        CHECK(cctx_trace_of(traced) != NULL);

    /* A signal context: canceled with p, as any child. */
    int sigs[] = {SIGUSR2};
    cctx_cancel_t *sc;
    cctx_t *sig = got(r, cctx_with_signals(p, sigs, 1, &sc));

    /* A child that ignores SIGTERM: p's end sends it, then SIGKILL on a
     * deadline of the library's (the advancing thread fires it), or at
     * once if that deadline could not be made. */
    cctx_proc_opts_t po = CCTX_PROC_OPTS_INIT;
    po.kill_after = CCTX_MSEC(50);
    char *argv[] = {"sh", "-c", "trap '' TERM; exec sleep 100", NULL};
    cctx_proc_t *proc = cctx_proc_spawn(p, "/bin/sh", argv, NULL, &po);
    CHECK(proc != NULL);

    /* Held (by k, the child's handle...): the wait for p's holders times
     * out, or could not be set up; p is canceled either way, and so is
     * every descendant. The child is waited for before the clock stops. */
    bool held = v || k || traced || sig || proc;
    err = cctx_cancel_and_wait(pc, CCTX_MSEC(10), NULL);
    CHECK(err == (held ? ETIMEDOUT : 0) || (held && ok_or_enomem(r, err)));
    int status;
    CHECK_EQ(cctx_proc_wait(proc, &status), 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM);
    cctx_proc_free(proc);
    advancer_stop(&a);
    CHECK_EQ(cctx_err(p), ECANCELED);
    cctx_t *under[] = {v, k, traced, sig};
    for (size_t i = 0; i < sizeof under / sizeof *under; i++)
        if (under[i]) {
            CHECK_EQ(cctx_err(under[i]), ECANCELED);
            CHECK_EQ(cctx_wait(under[i], -1), ECANCELED);
        }
    for (int i = (int)(sizeof under / sizeof *under) - 1; i >= 0; i--)
        cctx_release(under[i]);
    CHECK_EQ(cctx_cancel_and_wait(pc, 0, NULL), 0);
    cctx_release(p);
    cctx_fake_clock_stop();
}

/* The corners: deadlines that are no deadline, past already, or later
 * than the parent's; born-done chains; a grace context of an ended parent;
 * after-functions on value and born-done contexts; many contexts waited
 * for at once; names cleared and given again. */
static void scenario_edges(struct run *r)
{
    cctx_fake_clock_start(T0);
    struct rec on_past, on_born, on_val, on_g0;
    cctx_cancel_t *pc;
    cctx_t *p = got(r, cctx_with_timeout(cctx_background(), CCTX_MSEC(100), &pc));
    if (!p) {
        cctx_fake_clock_stop();
        return;
    }
    cctx_t *made[24];
    int n = 0;
    /* Later than p's: a plain cancel context under p's deadline. */
    cctx_t *later = got(r, cctx_with_timeout(p, CCTX_SEC(10), NULL));
    if (later) {
        int64_t dl;
        CHECK(cctx_deadline(later, &dl));
        CHECK_EQ(dl, T0 + CCTX_MSEC(100));
        made[n++] = later;
    }
    cctx_t *none = got(r, cctx_with_deadline(p, CCTX_NO_DEADLINE, NULL));
    if (none)
        made[n++] = none;
    /* Past already: born done, ended by this call, its after-function run
     * at once. */
    cctx_t *past = got(r, cctx_with_deadline(p, T0 - 1, NULL));
    if (past) {
        check_ended_with(past, ETIMEDOUT, 0, NULL);
        rec_watch(&on_past, past);
        CHECK_EQ(atomic_load(&on_past.runs), 1);
        made[n++] = past;
        /* Under it, a chain of born-done contexts with its cause. */
        cctx_cancel_t *bc;
        cctx_t *born = got(r, cctx_with_cancel(past, &bc));
        if (born) {
            check_same_cause(born, past);
            rec_on(&on_born, born);
            CHECK_EQ(atomic_load(&on_born.runs), 1);
            CHECK_EQ(cctx_cancel_and_wait(bc, 0, NULL), 0);
            made[n++] = born;
            cctx_t *born2 = got(r, cctx_with_timeout_cause(born, CCTX_MSEC(5), 9, "x", NULL));
            if (born2) {
                check_same_cause(born2, past);
                made[n++] = born2;
            }
        }
    }
    /* An after-function on a value context waits for its source. */
    cctx_t *val = got(r, cctx_with_value(p, &key_a, NULL, NULL));
    if (val) {
        rec_on(&on_val, val);
        CHECK_EQ(atomic_load(&on_val.runs), 0);
        made[n++] = val;
    }
    /* Names: given, cleared, given again. */
    if (val && !ok_or_enomem(r, cctx_set_name(val, "v"))) {
        CHECK_EQ(cctx_set_name(val, NULL), 0);
        CHECK(cctx_name(val) == NULL);
        CHECK_EQ(cctx_set_name(val, "v"), 0); /* had it: costs nothing */
        CHECK_STR(cctx_name(val), "v");
    }
    /* A detached branch with a deadline of its own. */
    cctx_t *wo = got(r, cctx_without_cancel(p));
    cctx_t *wod = wo ? got(r, cctx_with_timeout(wo, CCTX_MSEC(300), NULL)) : NULL;
    if (wo)
        made[n++] = wo;
    if (wod)
        made[n++] = wod;
    /* Many at once, more than wait_any keeps on its stack; p the first. */
    cctx_t *many[12];
    for (int i = 0; i < 12; i++)
        many[i] = p;
    errno = 0;
    CHECK_EQ(cctx_wait_any(many, 12, 0), -1);
    CHECK_EQ(errno, ETIMEDOUT);

    /* p's deadline: everything under it ends, the detached branch not. */
    cctx_fake_clock_advance(CCTX_MSEC(100));
    check_ended_with(p, ETIMEDOUT, 0, NULL);
    CHECK_EQ(cctx_wait_any(many, 12, -1), 0);
    if (val)
        CHECK_EQ(atomic_load(&on_val.runs), 1);
    if (later)
        check_same_cause(later, p);
    if (wod)
        CHECK_EQ(cctx_err(wod), 0);
    /* A grace context of an ended parent, with no grace: over at once. */
    cctx_t *g0 = got(r, cctx_with_grace(p, 0, NULL));
    if (g0) {
        rec_watch(&on_g0, g0);
        CHECK_EQ(cctx_err(g0), ETIMEDOUT);
        CHECK_EQ(atomic_load(&on_g0.runs), 1);
        made[n++] = g0;
    }
    cctx_fake_clock_advance(CCTX_MSEC(200));
    if (wod)
        check_ended_with(wod, ETIMEDOUT, 0, NULL);
    dump_all(r, p);
    for (int i = n - 1; i >= 0; i--)
        cctx_release(made[i]);
    CHECK_EQ(cctx_cancel_and_wait(pc, 0, NULL), 0);
    cctx_release(p);
    cctx_fake_clock_stop();
}

/* After a run, with no failure set: a fresh tree still carries a cancel
 * down, deadlines on the fake clock still fire, and frees every block. */
static void check_healthy(void)
{
    long start = cctx__test_live_allocs();
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v = cctx_with_value(p, &key_a, NULL, NULL);
    cctx_t *d = cctx_with_timeout(v, CCTX_MSEC(10), NULL);
    cctx_t *k = cctx_with_cancel(d, NULL);
    cctx_t *q = cctx_with_cancel(p, NULL);
    CHECK(p && v && d && k && q);
    struct rec on_k;
    rec_watch(&on_k, k);
    cctx_fake_clock_advance(CCTX_MSEC(10));
    CHECK_EQ(cctx_err(d), ETIMEDOUT);
    CHECK_EQ(cctx_err(k), ETIMEDOUT);
    CHECK_EQ(atomic_load(&on_k.runs), 1);
    CHECK_EQ(cctx_err(q), 0);
    cctx_cancel(pc);
    CHECK_EQ(cctx_err(q), ECANCELED);
    CHECK_EQ(cctx_wait(q, -1), ECANCELED);
    cctx_release(q);
    cctx_release(k);
    cctx_release(d);
    cctx_release(v);
    cctx_release(p);
    cctx_fake_clock_stop();
    CHECK_EQ(cctx__test_live_allocs(), start);
}

/* Runs the scenario with its n-th allocation failing for n = 1, 2, ...
 * until a run makes fewer than n; returns how many runs failed a call.
 * Persistent: every allocation from the n-th on fails, as when memory has
 * run out for good, and cleanup that would need memory cannot have it. */
static int sweep(void (*run_scenario)(struct run *r), long min_runs, bool persistent)
{
    cctx__test_count_allocs(true);
    /* A first run without failures: what it leaves for good (a thread's
     * first use of the runners or the timer) is not a leak of a later run. */
    struct run first = {0};
    run_scenario(&first);
    CHECK_EQ(first.enomem, 0);
    long start = cctx__test_live_allocs();

    long n;
    int failures_seen = 0;
    for (n = 1;; n++) {
        struct run r = {0};
        if (getenv("SWEEP_VERBOSE"))
            fprintf(stderr, "run %ld\n", n);
        if (persistent)
            cctx__test_fail_allocs_from(n);
        else
            cctx__test_fail_alloc(n);
        run_scenario(&r);
        bool injected = cctx__test_fail_alloc_pending() == 0;
        cctx__test_fail_alloc(0);
        if (!injected) {
            CHECK_EQ(r.enomem, 0);
            break;
        }
        if (getenv("SWEEP_VERBOSE"))
            fprintf(stderr, "  enomem %d\n", r.enomem);
        failures_seen += r.enomem > 0;
        CHECK(persistent || r.enomem <= 1);
        CHECK_EQ(atomic_load(&r.va.destroyed), r.offered);
        CHECK_EQ(atomic_load(&r.vb.destroyed), r.offered);
        if (cctx__test_live_allocs() != start)
            fprintf(stderr, "run %ld: %ld blocks left\n", n, cctx__test_live_allocs() - start);
        CHECK_EQ(cctx__test_live_allocs(), start);
        check_healthy();
    }
    /* The sweep went through the scenario's allocations. */
    CHECK(n > min_runs);
    cctx__test_count_allocs(false);
    return failures_seen;
}

TEST(alloc_sweep_api)
{
    CHECK(sweep(scenario, 20, false) > 10);
}

TEST(alloc_sweep_api_persistent)
{
    CHECK(sweep(scenario, 20, true) > 10);
}

/* No runner can be started (as when pthread_create finds no memory): what
 * a runner would have done is done on the thread at hand. */
static int refuse_start(void *(*fn)(void *), void *arg)
{
    (void)fn;
    (void)arg;
    return ENOMEM;
}

TEST(alloc_sweep_api_no_runners)
{
    cctx__thread_start_fn start = cctx__runner_thread_start;
    cctx__runner_thread_start = refuse_start;
    CHECK(sweep(scenario, 20, true) > 10);
    CHECK(sweep(scenario, 20, false) > 10);
    cctx__runner_thread_start = start;
}

TEST(alloc_sweep_edges)
{
    CHECK(sweep(scenario_edges, 10, false) > 5);
    CHECK(sweep(scenario_edges, 10, true) > 5);
}

TEST(alloc_sweep_waits)
{
    CHECK(sweep(scenario_waits, 8, false) > 5);
}

TEST(alloc_sweep_waits_persistent)
{
    CHECK(sweep(scenario_waits, 8, true) > 5);
}
