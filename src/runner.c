/* SPDX-License-Identifier: MIT */
/*
 * Runners: the library threads that do, for the timer thread, what it must
 * not do itself: run after-functions (user code that may block for as long
 * as it likes), drop references whose release may run value destructors,
 * and finish a firing that would have to wait for a lock (firing.c). They
 * drop, too, the last references of a dump or the laggy report, which
 * the library's inspect and laggy threads (or a program's thread in
 * cctx_dump) took only to look (cctx__runner_release), and deliver
 * signals (signal.c). Go runs
 * each AfterFunc in a goroutine of its own for the same reason.
 *
 * Work comes in two forms: registrations in cctx__runner_queue (a run queue,
 * after.c, so that cctx_after_stop can take a queued one out at once), and
 * jobs (struct cctx__job) in a list. A runner takes one item at a time.
 *
 * The pool grows on demand: each piece of work that arrives claims one idle
 * runner, or starts a new one, up to RUNNERS_MAX + RUNNERS_SPARE; so an
 * after-function that blocks holds up only itself until RUNNERS_MAX block
 * at once. Only RUNNERS_MAX runners at a time run the user's
 * after-functions (each holds a place while it does, `places`); a runner
 * that finds every place taken runs only the library's own work: jobs, and
 * the wakers of cctx__after_func_first (cctx_wait_any, cctx_cond_wait,
 * groups), which are at the front of the queue. So a program whose
 * after-functions all block still has its deadlines fired, its waits
 * woken, and its cancellations marked, by the spare runners. A runner idle
 * for IDLE_EXIT goes away, so a quiet process keeps none.
 *
 * Work that finds no idle runner and can start none (RUNNERS_MAX are alive,
 * or thread creation failed) counts itself in `unclaimed`, if a runner exists
 * to take it: the next runner that runs out of work takes one count and looks
 * at the queue and the jobs again instead of going idle. A runner may have
 * found both empty just before the work came and be on its way to the idle
 * list, so "a runner is busy, it will see the work when it is done" is not
 * enough. With no runner at all (thread creation failed and none is left, or
 * only runners whose pthread_create has not returned), the caller does the
 * work itself (cctx__runner_notify, cctx__runner_submit). With runners that
 * are all busy, the notifier runs the wakers itself, since the busy ones
 * may be blocked in after-functions for ever (cctx__runner_notify).
 *
 * Sleeping. An idle runner puts itself on the idle list and sleeps on its
 * own word. A notifier takes one runner off the list, marks it claimed and
 * wakes it: the idle count is exact at every moment (two notifiers never
 * count on the same runner) and a wake-up wakes one thread. A runner whose
 * sleep timed out takes itself off the list, unless a notifier claimed it
 * first, in which case it stays and works. `unclaimed` is non-zero only
 * while the idle list is empty (summon claims an idler rather than count,
 * and a runner takes a count rather than join the list), so a runner on the
 * list never has to look at it, and no runner leaves while it is non-zero.
 *
 * fork(). A job that finishes a firing whose context is not marked yet
 * (job->firing) is the only record of that firing, queued or taken: the
 * timer thread let go of its own record as it queued the job, under
 * `pool.lock`, and a runner that takes the job keeps it in `pool.firing`
 * until the context is marked. A child of fork() has none of the parent's
 * runners, so it queues those taken jobs again, for its own runners. Only
 * a child forked on a runner (from an after-function) has one: that one,
 * which goes on, and is counted, there.
 *
 * Locks: `pool.lock` (a word lock) guards the job list, the idle list, the
 * firing jobs taken and the counts; it is taken alone. The queue's lock is
 * the queue's own (after.c).
 */
#define _GNU_SOURCE
#include "internal.h"
#include "testhooks.h"

#define RUNNERS_MAX 256 /* runners in the user's after-functions at once */
#define RUNNERS_SPARE 4 /* more runners, for the library's own work only */
#define IDLE_EXIT CCTX_SEC(2)

struct cctx__run_queue cctx__runner_queue = {.tail = &cctx__runner_queue.head};

struct idler {
    struct idler *next;
    _Atomic uint32_t claimed; /* the word it sleeps on */
};

static struct {
    _Atomic uint32_t lock;
    struct cctx__job *jobs, **jobs_tail;
    struct cctx__job *firing; /* firing jobs taken, their contexts not yet marked */
    struct idler *idle;       /* runners asleep, waiting to be claimed */
    unsigned threads;         /* runners alive, or being started */
    unsigned starting;        /* of those, how many pthread_create has not returned for */
    unsigned unclaimed;       /* work that found no idler and started no runner */
} pool = {.jobs_tail = &pool.jobs};

/* Runners that hold a place to run a user's after-function (see the top). */
static _Atomic uint32_t places;
/* Runners that found every place taken and no waker to run (work_once). */
static _Atomic uint32_t turned_away;

/* Test hooks (testhooks.h). */
_Atomic(cctx__plain_hook_fn) cctx__runner_found_nothing;
_Atomic(cctx__plain_hook_fn) cctx__runner_was_turned_away;

static void call_hook(_Atomic(cctx__plain_hook_fn) *hook)
{
    cctx__plain_hook_fn fn = cctx__atomic_load_relaxed(hook);
    if (cctx__unlikely(fn != NULL))
        fn();
}

/* How a runner is started (testhooks.h). */
_Atomic(cctx__thread_start_fn) cctx__runner_thread_start = cctx__os_thread_start;

static struct cctx__job *take_job(void)
{
    cctx__word_lock(&pool.lock);
    struct cctx__job *job = pool.jobs;
    if (job) {
        pool.jobs = job->next;
        if (!pool.jobs)
            pool.jobs_tail = &pool.jobs;
        if (job->firing) {
            job->next = pool.firing;
            pool.firing = job;
        }
    }
    cctx__word_unlock(&pool.lock);
    return job;
}

void cctx__runner_job_marked(struct cctx__job *job)
{
    cctx__word_lock(&pool.lock);
    struct cctx__job **pp = &pool.firing;
    while (*pp != job)
        pp = &(*pp)->next;
    *pp = job->next;
    job->firing = NULL;
    cctx__word_unlock(&pool.lock);
}

/* The job this thread runs: a child of fork() forked from inside it goes on
 * with it, and its block, if a spare one, stays taken there. */
static _Thread_local struct cctx__job *running_job;

/* Jobs first: a job finishes a firing (marking, releases) that waiters and
 * stoppers may be waiting for, and runs no user code but destructors; or
 * it delivers a signal (signal.c), whose cancellations run after-functions
 * as a registration would. Then a registration: any, with a place; else
 * only a library waker.
 *
 * A runner that holds a place, finds the queue empty and has not yet given
 * the place back may miss a registration queued just after its look; the
 * runner summoned for it may then find every place taken and go idle, and
 * the registration would wait for one of the other after-functions to
 * return (for ever, if they wait for it). So the two see each other: the
 * one turned away counts itself in `turned_away` and then reads `places`,
 * the one giving its place back writes `places` and then takes the count,
 * all seq_cst; at least one of them sees the other and looks again. */
static bool work_once(void)
{
    struct cctx__job *job = take_job();
    if (job) {
        struct cctx__job *outer = running_job;
        running_job = job;
        job->run(job); /* may free job */
        running_job = outer;
        return true;
    }
    /* Never past RUNNERS_MAX, not even for a moment: a count that read too
     * high would turn away a runner whose place was free, and the user's
     * work it would have taken could stay queued with nobody to take it. */
    uint32_t p = cctx__atomic_load_relaxed(&places);
    do {
        if (p >= RUNNERS_MAX) {
            if (cctx__run_queue_run_waker(&cctx__runner_queue))
                return true;
            call_hook(&cctx__runner_was_turned_away);
            cctx__atomic_fetch_add_seq_cst(&turned_away, 1);
            return cctx__atomic_load_seq_cst(&places) < RUNNERS_MAX;
        }
    } while (!cctx__atomic_cas_weak_relaxed(&places, &p, p + 1));
    cctx__runner_placeless = false;
    bool ran = cctx__run_queue_run_one(&cctx__runner_queue);
    cctx__runner_placeless = true;
    if (!ran)
        call_hook(&cctx__runner_found_nothing);
    cctx__atomic_fetch_sub_seq_cst(&places, 1);
    return ran || cctx__atomic_exchange_seq_cst(&turned_away, 0) != 0;
}

/* Sleeps until claimed (true) or idle too long (false: the runner leaves). */
static bool idle_wait(void)
{
    struct idler me = {.claimed = 0};
    cctx__word_lock(&pool.lock);
    /* Work that came after we last looked and found no idler either started
     * a runner of its own or counted itself here: take one count, and look
     * again, as if claimed. */
    if (pool.unclaimed > 0) {
        pool.unclaimed--;
        cctx__word_unlock(&pool.lock);
        return true;
    }
    me.next = pool.idle;
    pool.idle = &me;
    cctx__word_unlock(&pool.lock);
    int64_t until = cctx__sat_add(cctx__os_now(), IDLE_EXIT);
    while (!cctx__atomic_load_acquire(&me.claimed))
        if (cctx__os_wait(&me.claimed, 0, until) == ETIMEDOUT)
            break;
    cctx__word_lock(&pool.lock);
    bool claimed = cctx__atomic_load_acquire(&me.claimed);
    if (!claimed) {
        struct idler **pp = &pool.idle;
        while (*pp != &me)
            pp = &(*pp)->next;
        *pp = me.next;
        pool.threads--;
    }
    cctx__word_unlock(&pool.lock);
    return claimed;
}

/* A runner holds a place while on_a_runner && !cctx__runner_placeless. */
static _Thread_local bool on_a_runner;
_Thread_local bool cctx__runner_placeless;

static void *runner_main(void *arg)
{
    (void)arg;
    on_a_runner = true;
    cctx__runner_placeless = true;
    do {
        while (work_once())
            ;
    } while (idle_wait());
    return NULL;
}

/* What summon did for a piece of work. */
enum summoned {
    SUMMON_NONE,    /* no runner exists and none could be started */
    SUMMON_COUNTED, /* counted unclaimed: a runner takes it once it is free */
    SUMMON_CAME,    /* an idle runner claimed, or a new one started */
};

/* Claims an idle runner, or starts one, or else counts the work as
 * unclaimed for the next runner that runs out of work. Unless `recount`,
 * it counts nothing when a count waits already: the runner that takes that
 * one works until the queue and the jobs are empty, so a fork child's
 * restart that tries again and again (cctx__runner_restart) does not pile
 * up counts for a runner that may be busy for long. */
static enum summoned summon(bool recount)
{
    cctx__fork_watch();
    cctx__word_lock(&pool.lock);
    bool tried = false;
    for (;;) {
        struct idler *idler = pool.idle;
        if (idler) {
            pool.idle = idler->next;
            /* Under the lock: the idler frees its frame only after taking it. */
            cctx__atomic_store_release(&idler->claimed, 1);
            cctx__os_wake(&idler->claimed);
            cctx__word_unlock(&pool.lock);
            return SUMMON_CAME;
        }
        if (tried || pool.threads >= RUNNERS_MAX + RUNNERS_SPARE)
            break;
        pool.threads++;
        pool.starting++;
        cctx__word_unlock(&pool.lock);
        cctx__thread_start_fn start = cctx__atomic_load_relaxed(&cctx__runner_thread_start);
        int err = start(runner_main, NULL);
        cctx__word_lock(&pool.lock);
        pool.starting--;
        if (err == 0) {
            cctx__word_unlock(&pool.lock);
            return SUMMON_CAME;
        }
        pool.threads--;
        tried = true; /* a runner may have gone idle meanwhile: look again */
    }
    /* Only a runner that exists will come back for the work: one whose
     * pthread_create has not returned may never. */
    bool any = pool.threads > pool.starting;
    if (any && (recount || pool.unclaimed == 0))
        pool.unclaimed++;
    cctx__word_unlock(&pool.lock);
    return any ? SUMMON_COUNTED : SUMMON_NONE;
}

/* Set while this thread runs the library's wakers for runners that could
 * not come (cctx__runner_notify): a cancellation one of them makes (a
 * grace period with no time left) queues more, which that loop takes. */
static _Thread_local bool running_wakers;

/* Runs the library's wakers of the shared queue here, as a spare runner
 * would: without a place, so the user's after-functions of what they end
 * go to the runners with places. They do not wait for user code (a last
 * release among them may run value destructors, as on any runner), so this
 * thread is held up no longer than a runner would be. */
static void run_wakers_here(void)
{
    if (running_wakers)
        return;
    running_wakers = true;
    bool placeless = cctx__runner_placeless;
    cctx__runner_placeless = true;
    while (cctx__run_queue_run_waker(&cctx__runner_queue))
        ;
    cctx__runner_placeless = placeless;
    running_wakers = false;
}

void cctx__runner_notify(unsigned n)
{
    bool counted = false;
    for (; n > 0; n--) {
        enum summoned s = summon(true);
        if (s == SUMMON_NONE) {
            /* No runner and none can be made: the queue must not wait for
             * one that may never come. The caller runs them itself. */
            while (cctx__run_queue_run_one(&cctx__runner_queue))
                ;
            return;
        }
        counted |= s == SUMMON_COUNTED;
    }
    /* Every runner is busy and no more can start (a thread limit, or all
     * RUNNERS_MAX + RUNNERS_SPARE alive): the busy ones may be blocked in
     * after-functions for as long as those like, and the library's wakers
     * of this end (a wait to end, a grace period's clock) must not wait
     * for them. */
    if (counted)
        run_wakers_here();
}

static bool submit(struct cctx__job *job, bool at_once)
{
    job->next = NULL;
    cctx__word_lock(&pool.lock);
    *pool.jobs_tail = job;
    pool.jobs_tail = &job->next;
    if (job->firing)
        cctx__timer_fire_committed(); /* the job is its record now */
    cctx__word_unlock(&pool.lock);
    enum summoned summoned = summon(true);
    if (summoned == SUMMON_CAME || (summoned == SUMMON_COUNTED && !at_once))
        return true;
    /* Take it back, unless a runner that was just leaving took it. */
    cctx__word_lock(&pool.lock);
    bool ours = false;
    for (struct cctx__job **pp = &pool.jobs; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            if (pool.jobs_tail == &job->next)
                pool.jobs_tail = pp;
            ours = true;
            if (job->firing)
                cctx__timer_fire_in_hand(job->firing);
            break;
        }
    }
    cctx__word_unlock(&pool.lock);
    return !ours;
}

bool cctx__runner_submit(struct cctx__job *job)
{
    return submit(job, false);
}

bool cctx__runner_submit_at_once(struct cctx__job *job)
{
    return submit(job, true);
}

/* Spare blocks for jobs (cctx__job_block): bit i of spare_used is set while
 * spare_jobs[i] is a job's. Few are needed: a job lives only until a runner
 * takes it, and the heap is rarely out for long. */
enum { SPARE_JOBS = 8 };
static union {
    max_align_t align;
    unsigned char bytes[CCTX__JOB_BLOCK];
} spare_jobs[SPARE_JOBS];
static _Atomic uint32_t spare_used;

/* The bit of the spare block that holds p, or 0 if none does. */
static uint32_t spare_bit(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)spare_jobs;
    if (a < base || a >= base + sizeof spare_jobs)
        return 0;
    return 1u << (unsigned)((a - base) / sizeof spare_jobs[0]);
}

unsigned cctx__test_spare_jobs_used(void)
{
    return (unsigned)__builtin_popcount(cctx__atomic_load_relaxed(&spare_used));
}

void *cctx__job_block(size_t size)
{
    if (size > CCTX__JOB_BLOCK)
        return cctx__alloc(size);
    void *p = cctx__alloc(size);
    if (cctx__likely(p != NULL))
        return p;
    uint32_t used = cctx__atomic_load_relaxed(&spare_used);
    for (;;) {
        uint32_t free_ones = ~used & ((1u << SPARE_JOBS) - 1);
        if (!free_ones)
            return NULL;
        unsigned i = (unsigned)__builtin_ctz(free_ones);
        /* Acquire: the last job's accesses to the block happen before ours
         * (its free is a release). */
        if (cctx__atomic_cas_weak_acquire(&spare_used, &used, used | 1u << i))
            return spare_jobs[i].bytes;
    }
}

void cctx__job_block_free(void *p)
{
    uint32_t bit = spare_bit(p);
    if (bit)
        cctx__atomic_fetch_and_release(&spare_used, ~bit);
    else
        cctx__free(p);
}

struct release_job {
    struct cctx__job job;
    struct cctx *c;
    const char *file, *func;
    int line;
};

static void run_release(struct cctx__job *job)
{
    struct release_job *r = container_of(job, struct release_job, job);
    cctx_release_at(r->c, r->file, r->line, r->func);
    cctx__job_block_free(r);
    cctx__dump_release_dropped();
}

void cctx__runner_release(struct cctx *c, const char *file, int line, const char *func)
{
    struct cctx *left = cctx__release_quietly(c, file, line, func);
    if (!left)
        return;
    struct release_job *r = cctx__job_block(sizeof *r);
    if (r) {
        *r = (struct release_job){
            .job.run = run_release, .c = left, .file = file, .line = line, .func = func};
        cctx__dump_release_queued(); /* before a runner can drop it */
        if (cctx__runner_submit(&r->job))
            return;
        cctx__job_block_free(r);
        cctx__dump_release_dropped();
    }
    /* Out of threads (or of memory and of spare blocks): here, rather than
     * never. */
    cctx_release_at(left, file, line, func);
}

bool cctx__runner_restart(void)
{
    unsigned n = 0;
    cctx__word_lock(&cctx__runner_queue.lock);
    for (struct cctx__node *q = cctx__runner_queue.head; q; q = q->next)
        n++;
    cctx__word_unlock(&cctx__runner_queue.lock);
    cctx__word_lock(&pool.lock);
    for (struct cctx__job *j = pool.jobs; j; j = j->next)
        n++;
    cctx__word_unlock(&pool.lock);
    /* No runner came for some of the work: there is none, or the only
     * ones are busy. In a child forked on a runner that one is, in the
     * after-function that forked it, which it may never leave here; a
     * count for it left the work waiting for it, and nothing tried again.
     * So the restart has failed either way, and the next call that
     * restarts, and a wait in progress every 10 ms, try again. */
    bool came = true;
    while (came && n-- > 0)
        came = summon(false) == SUMMON_CAME;
    return came;
}

void cctx__runner_run_wakers(void)
{
    run_wakers_here();
}

void cctx__runner_fork(int phase)
{
    switch (phase) {
    case FORK_PREPARE:
        cctx__word_lock(&pool.lock);
        cctx__word_lock(&cctx__runner_queue.lock);
        break;
    case FORK_PARENT:
        cctx__word_unlock(&cctx__runner_queue.lock);
        cctx__word_unlock(&pool.lock);
        break;
    default:
        /* The runners stayed in the parent; what was queued stays queued
         * and runs when the child first needs a runner (fork.c). So do the
         * firing jobs they had taken, ahead of the rest (their contexts
         * are not marked: a runner here runs them again). */
        cctx__atomic_store_relaxed(&cctx__runner_queue.lock, 0);
        cctx__atomic_store_relaxed(&pool.lock, 0);
        /* Forked from an after-function on a runner, the child goes on as
         * that runner, which counts itself out when it leaves. */
        pool.threads = on_a_runner ? 1 : 0;
        cctx__atomic_store_relaxed(&places, on_a_runner && !cctx__runner_placeless ? 1 : 0);
        while (pool.firing) {
            struct cctx__job *job = pool.firing;
            pool.firing = job->next;
            job->again = true;
            job->next = pool.jobs;
            if (!pool.jobs)
                pool.jobs_tail = &job->next;
            pool.jobs = job;
        }
        pool.starting = 0;
        pool.unclaimed = 0;
        pool.idle = NULL;
        /* A spare block stays taken by a queued job, or by the job this
         * thread runs; one that another thread held (a job it ran, a
         * hand-off it was making) has nobody in the child to give it back.
         * A block this thread took and had not queued yet can only be in
         * hand here if fork() came from a signal handler, which these
         * handlers (they take locks) do not support anyway. */
        {
            uint32_t used = spare_bit(running_job);
            for (struct cctx__job *j = pool.jobs; j; j = j->next)
                used |= spare_bit(j);
            cctx__atomic_store_relaxed(&spare_used, used);
        }
        break;
    }
}
