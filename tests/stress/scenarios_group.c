/* SPDX-License-Identifier: MIT */
/*
 * Scenarios around groups (<cctx/group.h>): tasks handed to the pool's
 * reused threads by several threads at once, and by the tasks themselves,
 * while the group is waited for, freed, or its parent canceled.
 *
 * A round makes a group over a cancelable parent, with no limit or a limit
 * of 1 to 3, and a team of threads that call cctx_group_go in a burst, so
 * that threads of the pool go back to sleep and are handed the next task
 * while others finish. Each task records that it ran (once), how many ran at
 * the same time, and whether it failed. Tasks that wait for the group's
 * context to end are given only in rounds where something ends it early (a
 * canceller of the parent, or free), and tasks call go on their own group
 * only without a limit, so no round can deadlock by design: a round that
 * hangs is a lost wake-up in the library, which the supervisor reports.
 *
 * Short of threads: the same races while the pool's thread creations fail
 * in turn (through the hook cctx__group_thread_create), so that go returns
 * EAGAIN now and then, and the task it was given must never run.
 */
#define _GNU_SOURCE
#include <cctx/group.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "stress.h"
#include "testhooks.h"

/* Longer than any round can take: a task still blocked then missed the
 * end of its context. */
#define BOUND CCTX_SEC(10)

enum { GOERS = 3, GOS = 16, TOP = GOERS * GOS, TASKS = 2 * TOP };

struct round;

struct task {
    struct round *rd;
    int code;      /* returned: 0, or a code no other task returns */
    unsigned work; /* spin before returning */
    bool nest;     /* calls go on its own group once */
    bool block;    /* waits for the group's context to end */
    atomic_int runs;
    atomic_int accepted; /* its go returned 0 */
};

struct goer {
    struct round *rd;
    int first; /* its tasks are tasks[first .. first + GOS) */
};

struct round {
    cctx_group_t *g;
    cctx_t *ctx; /* the group's */
    cctx_cancel_t *parent_cancel;
    int limit;
    bool cancels; /* a thread cancels the parent during the round */
    bool short_of_threads; /* creations may fail: go may return EAGAIN */
    struct task tasks[TASKS];
    atomic_int next_nested; /* the next free slot in tasks[TOP ..] */
    atomic_int running, ran;
    unsigned stagger_cancel, stagger_wait[2];
    int wait_r[2], ran_at_wait[2];
};

static int task_fn(cctx_t *ctx, void *arg)
{
    struct task *t = arg;
    struct round *rd = t->rd;
    STRESS_CHECK(atomic_fetch_add(&t->runs, 1) == 0);
    STRESS_CHECK(ctx == rd->ctx);
    int now = atomic_fetch_add(&rd->running, 1) + 1;
    STRESS_CHECK(rd->limit == 0 || now <= rd->limit);
    spin(t->work);
    if (t->nest) {
        int i = atomic_fetch_add(&rd->next_nested, 1);
        STRESS_CHECK(i < TASKS);
        struct task *c = &rd->tasks[i];
        int e = cctx_group_go(rd->g, task_fn, c);
        STRESS_CHECK(e == 0 || e == ECANCELED || (e == EAGAIN && rd->short_of_threads));
        if (e == 0)
            atomic_store(&c->accepted, 1);
    }
    if (t->block)
        STRESS_CHECK(cctx_wait(ctx, BOUND) == ECANCELED);
    atomic_fetch_sub(&rd->running, 1);
    /* Counted before it returns: a wait that saw the group idle sees it. */
    atomic_fetch_add(&rd->ran, 1);
    return t->code;
}

static void go_burst(void *arg)
{
    struct goer *gr = arg;
    bool ended = false;
    for (int i = gr->first; i < gr->first + GOS; i++) {
        int e = cctx_group_go(gr->rd->g, task_fn, &gr->rd->tasks[i]);
        STRESS_CHECK(e == 0 || e == ECANCELED || (e == EAGAIN && gr->rd->short_of_threads));
        /* Once a group has ended, it stays ended (a failed creation ends
         * nothing). */
        STRESS_CHECK(!ended || e == ECANCELED);
        ended = e == ECANCELED;
        if (e == 0)
            atomic_store(&gr->rd->tasks[i].accepted, 1);
    }
}

static void cancel_parent(void *arg)
{
    struct round *rd = arg;
    spin(rd->stagger_cancel);
    cctx_cancel(rd->parent_cancel);
}

static void wait_group(struct round *rd, int k)
{
    spin(rd->stagger_wait[k]);
    rd->wait_r[k] = cctx_group_wait(rd->g);
    rd->ran_at_wait[k] = atomic_load(&rd->ran);
}

static void wait_first(void *arg)
{
    wait_group(arg, 0);
}

static void wait_second(void *arg)
{
    wait_group(arg, 1);
}

/* The round's tasks, drawn before any thread starts (the PRNG is not shared
 * between threads). */
static void draw_tasks(struct run *r, struct round *rd)
{
    bool failures = rnd_below(r, 3) == 0;
    for (int i = 0; i < TASKS; i++) {
        struct task *t = &rd->tasks[i];
        t->rd = rd;
        if (i >= TOP)
            continue; /* started by a task: returns 0 at once */
        t->code = failures && rnd_below(r, 8) == 0 ? 1000 + i : 0;
        t->work = rnd_below(r, 2000);
        t->nest = rd->limit == 0 && rnd_below(r, 4) == 0;
        t->block = rd->cancels && rnd_below(r, 4) == 0;
    }
    atomic_init(&rd->next_nested, TOP);
}

/* Every go that returned 0 ran its task exactly once; no other task ran.
 * Returns how many ran. */
static int check_tasks(struct round *rd)
{
    int ran = 0;
    for (int i = 0; i < TASKS; i++) {
        struct task *t = &rd->tasks[i];
        STRESS_CHECK(atomic_load(&t->runs) == atomic_load(&t->accepted));
        ran += atomic_load(&t->runs);
    }
    STRESS_CHECK(ran == atomic_load(&rd->ran));
    STRESS_CHECK(atomic_load(&rd->running) == 0);
    return ran;
}

static struct round *new_round(struct run *r, cctx_t **parent)
{
    static struct round rd;
    memset(&rd, 0, sizeof rd);
    *parent = cctx_with_cancel(cctx_background(), &rd.parent_cancel);
    STRESS_CHECK(*parent);
    rd.g = cctx_group_new(*parent);
    STRESS_CHECK(rd.g);
    rd.ctx = cctx_group_ctx(rd.g);
    rd.limit = (int)rnd_below(r, 4);
    STRESS_CHECK(cctx_group_limit(rd.g, rd.limit) == 0);
    rd.cancels = rnd_below(r, 2) == 0;
    rd.stagger_cancel = rnd_below(r, 60000);
    rd.stagger_wait[0] = rnd_below(r, 40000);
    rd.stagger_wait[1] = rnd_below(r, 40000);
    draw_tasks(r, &rd);
    return &rd;
}

static void add_goers(struct team *t, struct round *rd, struct goer *goers)
{
    for (int i = 0; i < GOERS; i++) {
        goers[i] = (struct goer){.rd = rd, .first = i * GOS};
        team_add(t, go_burst, &goers[i]);
    }
}

/* ---- go vs wait ----------------------------------------------------------------- */

/* Of the pool's thread creations, every fail_every-th fails (0: none). */
static atomic_int creates_tried, fail_every;

static int short_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                        void *arg)
{
    int every = atomic_load(&fail_every);
    if (every != 0 && (atomic_fetch_add(&creates_tried, 1) + 1) % every == 0)
        return EAGAIN;
    return pthread_create(thread, attr, fn, arg);
}

static int go_vs_wait(struct run *r, bool short_of_threads)
{
    blocks_begin();
    if (short_of_threads)
        atomic_store(&cctx__group_thread_create, short_create);
    while (more_rounds(r)) {
        cctx_t *parent;
        struct round *rd = new_round(r, &parent);
        if (short_of_threads) {
            rd->short_of_threads = true;
            atomic_store(&fail_every, 2 + (int)rnd_below(r, 3));
        }
        int waiters = 1 + (int)rnd_below(r, 2);
        struct goer goers[GOERS];
        struct team t;
        team_init(&t, GOERS + waiters + rd->cancels);
        add_goers(&t, rd, goers);
        team_add(&t, wait_first, rd);
        if (waiters == 2)
            team_add(&t, wait_second, rd);
        if (rd->cancels)
            team_add(&t, cancel_parent, rd);
        team_join(&t);

        /* The wait waited for every task that was started, tasks started by
         * tasks included, and none started after it. */
        int ran = check_tasks(rd);
        for (int k = 0; k < waiters; k++) {
            STRESS_CHECK(rd->ran_at_wait[k] == ran);
            STRESS_CHECK(rd->wait_r[k] == rd->wait_r[0]);
        }
        /* It returns a failure iff a task failed, and one that did. */
        int w = rd->wait_r[0], failed = 0;
        for (int i = 0; i < TASKS; i++)
            failed += atomic_load(&rd->tasks[i].runs) && rd->tasks[i].code != 0;
        STRESS_CHECK((w != 0) == (failed > 0));
        STRESS_CHECK(w == 0 || (w >= 1000 && atomic_load(&rd->tasks[w - 1000].runs) == 1));
        /* The failing task canceled the context before the wait could: its
         * cause is the task's unless the parent's cancel came first. */
        cctx_cause_t c;
        STRESS_CHECK(cctx_cause(rd->ctx, &c) == ECANCELED);
        if (w != 0 && !rd->cancels) {
            STRESS_CHECK(c.code == w);
            STRESS_CHECK(strcmp(c.msg, "group task failed") == 0);
        }
        STRESS_CHECK(c.code == w || c.code == 0);
        /* Finished: no go starts anything, every wait says the same. */
        STRESS_CHECK(cctx_group_go(rd->g, task_fn, &rd->tasks[0]) == ECANCELED);
        STRESS_CHECK(cctx_group_wait(rd->g) == w);
        cctx_group_free(rd->g);
        cctx_release(parent);
    }
    atomic_store(&cctx__group_thread_create, pthread_create);
    blocks_end();
    return 0;
}

static int group_go_vs_wait(struct run *r)
{
    return go_vs_wait(r, false);
}

static int group_go_short_of_threads(struct run *r)
{
    return go_vs_wait(r, true);
}

/* ---- free with tasks running -------------------------------------------------------- */

static int group_free_vs_tasks(struct run *r)
{
    blocks_begin();
    while (more_rounds(r)) {
        cctx_t *parent;
        struct round *rd = new_round(r, &parent);
        struct goer goers[GOERS];
        struct team t;
        team_init(&t, GOERS + rd->cancels);
        add_goers(&t, rd, goers);
        if (rd->cancels)
            team_add(&t, cancel_parent, rd);
        team_join(&t);
        /* Tasks still run (some wait for the end, some start others); free
         * cancels, waits for all of them and joins the pool. */
        cctx_group_free(rd->g);
        check_tasks(rd);
        STRESS_CHECK(cctx_err(parent) == (rd->cancels ? ECANCELED : 0));
        cctx_release(parent);
    }
    blocks_end();
    return 0;
}

const struct scenario scenarios_group[] = {
    {"group_go_vs_wait", "each accepted task runs once, before the wait; a failure is the cause",
     group_go_vs_wait},
    {"group_go_short_of_threads",
     "as go vs wait, creations failing in turn: a go that gets EAGAIN ran nothing",
     group_go_short_of_threads},
    {"group_free_vs_tasks", "free waits for every task; a go on a full group wakes at the end",
     group_free_vs_tasks},
};
const int n_scenarios_group = sizeof scenarios_group / sizeof *scenarios_group;
