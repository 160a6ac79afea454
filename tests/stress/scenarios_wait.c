/* SPDX-License-Identifier: MIT */
/*
 * Scenarios around what observes an ending: after-functions stopped while
 * their context is canceled, or stopping each other; waiters of every kind
 * during a cancellation; fork() while another thread cancels; grace
 * contexts (whose after-function on their parent holds no reference on
 * them) let go of while their parent ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "stress.h"
#include "testhooks.h"

/* ---- after_stop vs cancel ---------------------------------------------------------- */

enum { REGS = 32 };

struct stoppable {
    cctx_after_t reg;
    atomic_int runs, finished;
    atomic_int stopped_true; /* stops that answered true */
};

static void stoppable_fn(void *arg)
{
    struct stoppable *s = arg;
    STRESS_CHECK(atomic_fetch_add(&s->runs, 1) == 0);
    spin(200); /* long enough for a stopper to find it running */
    atomic_store(&s->finished, 1);
}

struct stop_race {
    cctx_cancel_t *cancel;
    struct stoppable regs[REGS];
    unsigned stagger[3];
};

static void stop_all(struct stop_race *sr, int from, int step)
{
    for (int i = from; i >= 0 && i < REGS; i += step) {
        struct stoppable *s = &sr->regs[i];
        if (cctx_after_stop(&s->reg)) {
            atomic_fetch_add(&s->stopped_true, 1);
        } else if (atomic_load(&s->runs) > 0) {
            /* false: it ran, and has finished (stop waits for a running fn). */
            STRESS_CHECK(atomic_load(&s->finished) == 1);
        }
    }
}

static void stop_forward(void *arg)
{
    struct stop_race *sr = arg;
    spin(sr->stagger[0]);
    stop_all(sr, 0, 1);
}

static void stop_backward(void *arg)
{
    struct stop_race *sr = arg;
    spin(sr->stagger[1]);
    stop_all(sr, REGS - 1, -1);
}

static void cancel_race(void *arg)
{
    struct stop_race *sr = arg;
    spin(sr->stagger[2]);
    cctx_cancel(sr->cancel);
}

static int after_stop_vs_cancel(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        static struct stop_race sr;
        memset(&sr, 0, sizeof sr);
        cctx_t *c = cctx_with_cancel(cctx_background(), &sr.cancel);
        cctx_t *v = cctx_with_value(c, &sr, &sr, NULL);
        STRESS_CHECK(c && v);
        for (int i = 0; i < REGS; i++)
            STRESS_CHECK(cctx_after_func(i % 2 ? v : c, &sr.regs[i].reg, stoppable_fn,
                                         &sr.regs[i]) == 0);
        for (int i = 0; i < 3; i++)
            sr.stagger[i] = rnd_below(r, 20000);
        struct team t;
        team_init(&t, 3);
        team_add(&t, stop_forward, &sr);
        team_add(&t, stop_backward, &sr);
        team_add(&t, cancel_race, &sr);
        team_join(&t);
        /* Exactly one of: stopped (one stop said true, and it never ran), or
         * ran once to the end (and no stop said true). */
        for (int i = 0; i < REGS; i++) {
            struct stoppable *s = &sr.regs[i];
            int st = atomic_load(&s->stopped_true), runs = atomic_load(&s->runs);
            STRESS_CHECK(st <= 1);
            STRESS_CHECK(st + runs == 1);
            STRESS_CHECK(runs == atomic_load(&s->finished));
        }
        cctx_release(v);
        cctx_release(c);
    }
    blocks_end();
    return 0;
}

/* ---- waiters during a cancellation --------------------------------------------------- */

/* Longer than any cancellation can take: a waiter still waiting then missed
 * its wake-up. */
#define BOUND CCTX_SEC(10)

struct waiters {
    cctx_t *c, *value, *child, *other;
    cctx_cancel_t *cancel;
    unsigned stagger;
    int wait_r, child_r, any_r, sleep_r, poll_r, fd;
};

static void w_wait(void *arg)
{
    struct waiters *w = arg;
    w->wait_r = cctx_wait(w->c, BOUND);
}

static void w_child(void *arg)
{
    struct waiters *w = arg;
    w->child_r = cctx_wait(w->child, BOUND);
}

static void w_any(void *arg)
{
    struct waiters *w = arg;
    cctx_t *arr[2] = {w->other, w->c};
    w->any_r = cctx_wait_any(arr, 2, BOUND);
}

static void w_sleep(void *arg)
{
    struct waiters *w = arg;
    w->sleep_r = cctx_sleep(w->c, BOUND);
}

static void w_poll(void *arg)
{
    struct waiters *w = arg;
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    w->poll_r = poll(&p, 1, (int)(BOUND / CCTX_MSEC(1)));
}

static void w_cancel(void *arg)
{
    struct waiters *w = arg;
    spin(w->stagger);
    cctx_cancel_cause(w->cancel, 6, "waiters");
}

static int wait_during_cancel(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        struct waiters w = {0};
        /* Half of the rounds end by a deadline of the timer thread instead. */
        bool timed = r->rounds % 2;
        w.c = timed ? cctx_with_timeout(cctx_background(), CCTX_USEC(rnd_below(r, 300)), &w.cancel)
                    : cctx_with_cancel(cctx_background(), &w.cancel);
        w.value = cctx_with_value(w.c, &w, &w, NULL);
        w.child = cctx_with_cancel(w.value, NULL);
        w.other = cctx_with_cancel(cctx_background(), NULL);
        STRESS_CHECK(w.c && w.value && w.child && w.other);
        w.fd = cctx_done_fd(w.c);
        STRESS_CHECK(w.fd >= 0);
        w.stagger = rnd_below(r, 30000);
        struct team t;
        team_init(&t, 6);
        team_add(&t, w_wait, &w);
        team_add(&t, w_child, &w);
        team_add(&t, w_any, &w);
        team_add(&t, w_sleep, &w);
        team_add(&t, w_poll, &w);
        team_add(&t, w_cancel, &w);
        team_join(&t);
        int err = cctx_err(w.c);
        STRESS_CHECK(err == ECANCELED || (timed && err == ETIMEDOUT));
        /* Every waiter woke with the error, none at its bound. */
        STRESS_CHECK(w.wait_r == err);
        STRESS_CHECK(w.child_r == err);
        STRESS_CHECK(w.any_r == 1);
        STRESS_CHECK(w.sleep_r == err);
        STRESS_CHECK(w.poll_r == 1);
        STRESS_CHECK(cctx_err(w.other) == 0);
        cctx_release(w.other);
        cctx_release(w.child);
        cctx_release(w.value);
        cctx_release(w.c);
    }
    blocks_end();
    return 0;
}

/* ---- fork during a cancellation --------------------------------------------------------- */

struct forking {
    cctx_cancel_t *cancel;
    unsigned stagger;
    atomic_int running;
};

static void f_cancel(void *arg)
{
    struct forking *f = arg;
    atomic_store(&f->running, 1);
    spin(f->stagger);
    cctx_cancel(f->cancel); /* NULL in the rounds where the timer thread cancels */
}

/* In the child: a deadline made after the fork must fire, promptly. In the
 * rounds where the timer thread ends p (timed), p must end here too, whether
 * the fork fell before its deadline (p still armed), while the timer thread
 * had it in hand, while a runner did (p's lock was busy: a derivation's),
 * or after it was marked; unless a thread the child lacks holds p's lock,
 * which stalls whoever takes it (looked at before the child starts a thread
 * of its own). */
static int child_checks(cctx_t *p, bool timed)
{
    bool p_lock_free = timed && cctx__try_lock(p);
    if (p_lock_free)
        cctx__unlock(p);
    int64_t t0 = real_now();
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    if (!c)
        return 10;
    if (cctx_wait(c, CCTX_SEC(5)) != ETIMEDOUT)
        return 11;
    if (real_now() - t0 > CCTX_SEC(4))
        return 12;
    if (p_lock_free && cctx_wait(p, CCTX_SEC(5)) != ETIMEDOUT)
        return 13;
    return 0;
}

static int fork_during_cancel(struct run *r)
{
    /* ThreadSanitizer cannot run threads in the child of a multi-threaded
     * fork, and the library starts its timer thread again there. */
    if (STRESS_TSAN) {
        printf("skipped: ThreadSanitizer cannot start threads after a multi-threaded fork\n");
        return STRESS_SKIP;
    }
    /* GCC 12's AddressSanitizer does not hold its allocator's locks across
     * fork(): when the canceller is inside malloc at the fork, the child's
     * first malloc (its timer thread's, firing the new deadline) waits
     * forever, which looks exactly like the bug this scenario looks for. */
    if (STRESS_ASAN) {
        printf("skipped: AddressSanitizer's allocator is not fork-safe (a malloc in another "
               "thread at the fork leaves its lock held in the child)\n");
        return STRESS_SKIP;
    }
    enum { WIDE = 200 };
    while (more_rounds(r)) {
        struct forking f = {0};
        /* Half of the rounds, the timer thread does the cancelling: the
         * parent's deadline falls within the fork's random window. */
        bool timed = r->rounds % 2 == 0;
        cctx_cancel_t *cancel;
        cctx_t *p = cctx_with_timeout(cctx_background(),
                                      timed ? CCTX_USEC(rnd_below(r, 200)) : CCTX_SEC(3600),
                                      &cancel);
        f.cancel = timed ? NULL : cancel;
        static cctx_t *kids[WIDE];
        for (int i = 0; i < WIDE; i++)
            STRESS_CHECK((kids[i] = i % 2 ? cctx_with_cancel(p, NULL)
                                          : cctx_with_timeout(p, CCTX_SEC(60), NULL)) != NULL);
        f.stagger = rnd_below(r, 50000);
        struct team t;
        team_init(&t, 1);
        team_add(&t, f_cancel, &f);
        /* Fork once the canceller runs, so that the two random spins place
         * the fork before, during or after its cancellation (rather than in
         * the thread's creation, which says nothing about the library). */
        int64_t bound = real_now() + CCTX_SEC(1);
        while (!atomic_load(&f.running) && real_now() < bound)
            ;
        spin(rnd_below(r, 50000));
        fflush(NULL);
        pid_t pid = fork();
        STRESS_CHECK(pid >= 0);
        if (pid == 0)
            _exit(child_checks(p, timed)); /* touches nothing else the canceller had */
        team_join(&t);
        /* The child's bound is 5 s of waiting; give it twice that. */
        int64_t until = real_now() + CCTX_SEC(10);
        int status;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && real_now() < until) {
            struct timespec ts = {0, 1000000L}; /* polling the child, not a timing guess */
            nanosleep(&ts, NULL);
        }
        if (w == 0) {
            fprintf(stderr, "round %ld: the child of fork() never saw its new deadline fire\n",
                    r->rounds);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            STRESS_CHECK(!"the child's deadline fired");
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "round %ld: the child of fork() exited with status %d (%s)\n",
                    r->rounds, status,
                    !WIFEXITED(status)          ? "killed by a signal"
                    : WEXITSTATUS(status) == 10 ? "could not make a context"
                    : WEXITSTATUS(status) == 11 ? "its 20 ms deadline had not fired after 5 s"
                    : WEXITSTATUS(status) == 12 ? "its 20 ms deadline fired after more than 4 s"
                    : WEXITSTATUS(status) == 13 ? "the parent's deadline never fired in it"
                                                : "?");
        STRESS_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        for (int i = 0; i < WIDE; i++)
            cctx_release(kids[i]);
        cctx_release(p);
    }
    return 0;
}

/* ---- after-functions that stop each other ------------------------------------------------ */

struct mutual {
    cctx_after_t reg;
    struct mutual *peer;
    atomic_int runs;
    int peer_stopped; /* what stopping the peer answered: 1 true, 0 false */
    atomic_int *entered; /* the functions that started (two-context rounds) */
};

static void mutual_fn(void *arg)
{
    struct mutual *m = arg;
    STRESS_CHECK(atomic_fetch_add(&m->runs, 1) == 0);
    if (m->entered) {
        /* Meet the other function, for at most 1 ms, so that each stop finds
         * the other running on its own thread: the case that must not
         * deadlock. A miss only makes the round a milder one. */
        atomic_fetch_add(m->entered, 1);
        int64_t until = real_now() + CCTX_MSEC(1);
        while (atomic_load(m->entered) < 2 && real_now() < until)
            ;
    }
    m->peer_stopped = cctx_after_stop(&m->peer->reg);
}

struct mutual_race {
    cctx_cancel_t *ca, *cb;
    unsigned stagger[2];
};

static void cancel_a(void *arg)
{
    struct mutual_race *m = arg;
    spin(m->stagger[0]);
    cctx_cancel(m->ca);
}

static void cancel_b(void *arg)
{
    struct mutual_race *m = arg;
    spin(m->stagger[1]);
    cctx_cancel(m->cb);
}

static int after_functions_stop_each_other(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        static struct mutual a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        a.peer = &b;
        b.peer = &a;
        struct mutual_race m;
        /* On two contexts ended by two threads at once, or (one round in
         * four) on one context, where both run on the same thread. */
        bool one = r->rounds % 4 == 0;
        cctx_t *ca = cctx_with_cancel(cctx_background(), &m.ca);
        cctx_t *cb = one ? cctx_ref(ca) : cctx_with_cancel(cctx_background(), &m.cb);
        if (one)
            m.cb = m.ca;
        STRESS_CHECK(ca && cb);
        a.peer_stopped = b.peer_stopped = -1;
        static atomic_int entered;
        atomic_store(&entered, 0);
        a.entered = b.entered = one ? NULL : &entered;
        STRESS_CHECK(cctx_after_func(ca, &a.reg, mutual_fn, &a) == 0);
        STRESS_CHECK(cctx_after_func(cb, &b.reg, mutual_fn, &b) == 0);
        m.stagger[0] = rnd_below(r, 3000);
        m.stagger[1] = rnd_below(r, 3000);
        struct team t;
        team_init(&t, 2);
        team_add(&t, cancel_a, &m);
        team_add(&t, cancel_b, &m);
        team_join(&t);
        /* Each ran, or was stopped by the other; a stop that said true
         * means its target never ran. */
        int ra = atomic_load(&a.runs), rb = atomic_load(&b.runs);
        STRESS_CHECK(ra + rb >= 1);
        if (ra)
            STRESS_CHECK(a.peer_stopped == !rb);
        if (rb)
            STRESS_CHECK(b.peer_stopped == !ra);
        STRESS_CHECK(ra || (rb && b.peer_stopped == 1));
        STRESS_CHECK(rb || (ra && a.peer_stopped == 1));
        cctx_release(cb);
        cctx_release(ca);
    }
    blocks_end();
    return 0;
}

/* ---- grace contexts let go of while their parent ends ----------------------------- */

/* A grace context's after-function on its parent holds no reference on it.
 * In each round one grace context's last reference goes in a runner's job:
 * a deadline under it fires, and the timer thread's hook lets go of the
 * user's references while the firing holds the deadline's, so that the job
 * that drops it frees the grace context too (and hands the grace context's
 * own after-function to another runner). The parent ends at a random moment
 * just after the hook, and another thread makes and lets go of more grace
 * contexts under it meanwhile, each with a deadline under it. */
enum { EXTRA_GRACES = 4 };

struct grace_race {
    cctx_t *parent;
    cctx_cancel_t *end_parent;
    _Atomic(cctx_t *) grace, deadline; /* the user's, let go by the hook */
    atomic_int let_go;                 /* 1: by the hook; 2: by the round, the hook too late;
                                        * 3: the hook has let go */
    int64_t extra_grace[EXTRA_GRACES], extra_deadline[EXTRA_GRACES];
    unsigned stagger[2];
};

static _Atomic(struct grace_race *) grace_round;

/* On the timer thread, holding the firing's reference on a deadline. */
static void grace_let_go_in_the_firing(struct cctx__timer *t)
{
    struct grace_race *gr = atomic_load(&grace_round);
    cctx_t *g = gr ? atomic_load(&gr->grace) : NULL;
    int none = 0;
    if (!g || t->c.head.parent != g || !atomic_compare_exchange_strong(&gr->let_go, &none, 1))
        return;
    cctx_t *d;
    while ((d = atomic_load(&gr->deadline)) == NULL) /* fired before it was set */
        sched_yield();
    cctx_release(d);
    cctx_release(g);
    atomic_store(&gr->let_go, 3); /* the round may end */
}

static void grace_end_parent(void *arg)
{
    struct grace_race *gr = arg;
    int64_t until = real_now() + CCTX_MSEC(200);
    while (!atomic_load(&gr->let_go) && real_now() < until)
        sched_yield();
    spin(gr->stagger[0]);
    cctx_cancel(gr->end_parent);
}

static void grace_make_and_let_go(void *arg)
{
    struct grace_race *gr = arg;
    spin(gr->stagger[1]);
    for (int i = 0; i < EXTRA_GRACES; i++) {
        cctx_t *g = cctx_with_grace(gr->parent, gr->extra_grace[i], NULL);
        STRESS_CHECK(g != NULL);
        cctx_t *d = cctx_with_timeout(g, gr->extra_deadline[i], NULL);
        STRESS_CHECK(d != NULL);
        cctx_release(d);
        cctx_release(g);
    }
}

static int grace_release_vs_parent_end(struct run *r)
{
    blocks_begin();
    /* A grace of none, of a few microseconds (fired by the timer thread) or
     * of an hour (disarmed by its release). */
    static const int64_t graces[] = {0, CCTX_USEC(2), CCTX_USEC(30), CCTX_SEC(3600)};
    static struct grace_race gr;
    long through_a_job = 0;
    atomic_store(&cctx__timer_popped, grace_let_go_in_the_firing);
    while (more_rounds(r)) {
        /* Field by field: a firing of the last round's extra deadlines may
         * still read the atomic ones through the hook. */
        atomic_store(&grace_round, NULL);
        atomic_store(&gr.grace, NULL);
        atomic_store(&gr.deadline, NULL);
        atomic_store(&gr.let_go, 0);
        gr.parent = cctx_with_cancel(cctx_background(), &gr.end_parent);
        STRESS_CHECK(gr.parent != NULL);
        for (int i = 0; i < EXTRA_GRACES; i++) {
            gr.extra_grace[i] = graces[rnd_below(r, 4)];
            gr.extra_deadline[i] = rnd_below(r, 20000);
        }
        gr.stagger[0] = rnd_below(r, 3000);
        gr.stagger[1] = rnd_below(r, 20000);
        cctx_t *g = cctx_with_grace(gr.parent, graces[rnd_below(r, 4)], NULL);
        STRESS_CHECK(g != NULL);
        atomic_store(&gr.grace, g);
        atomic_store(&grace_round, &gr);
        /* Not so short that it is born done (then it never fires). */
        cctx_t *d = cctx_with_timeout(g, CCTX_USEC(30) + rnd_below(r, 20000), NULL);
        STRESS_CHECK(d != NULL);
        atomic_store(&gr.deadline, d);
        struct team t;
        team_init(&t, 2);
        team_add(&t, grace_end_parent, &gr);
        team_add(&t, grace_make_and_let_go, &gr);
        team_join(&t);
        /* The deadline fired first in nearly every round; in a round where
         * it did not (a slow start), the round lets go itself. */
        int none = 0;
        if (atomic_compare_exchange_strong(&gr.let_go, &none, 2)) {
            cctx_release(d);
            cctx_release(g);
        } else {
            while (atomic_load(&gr.let_go) != 3)
                sched_yield();
            through_a_job++;
        }
        cctx_release(gr.parent);
    }
    atomic_store(&grace_round, NULL);
    atomic_store(&cctx__timer_popped, NULL);
    printf("%ld of %ld rounds let go of the grace context in the firing\n", through_a_job,
           r->rounds);
    blocks_end();
    return 0;
}

const struct scenario scenarios_wait[] = {
    {"after_stop_vs_cancel", "stopped (true, never ran) or ran once to the end",
     after_stop_vs_cancel},
    {"wait_during_cancel", "wait, wait_any, sleep, done fd all wake with the error",
     wait_during_cancel},
    {"fork_during_cancel", "in the child, a new deadline and an inherited due one fire",
     fork_during_cancel},
    {"after_functions_stop_each_other", "no deadlock; stop's answers agree",
     after_functions_stop_each_other},
    {"grace_release_vs_parent_end", "a grace context freed as its parent ends: nothing used after",
     grace_release_vs_parent_end},
};
const int n_scenarios_wait = sizeof scenarios_wait / sizeof *scenarios_wait;
