/*
 * Runners: the library threads that do, for the timer thread, what it must
 * not do itself: run after-functions (user code that may block for as long
 * as it likes), drop references whose release may run value destructors,
 * and finish a firing that would have to wait for a lock (cancel.c). Go runs
 * each AfterFunc in a goroutine of its own for the same reason.
 *
 * Work comes in two forms: registrations in cctx__runner_queue (a run queue,
 * after.c, so that cctx_after_stop can take a queued one out at once), and
 * jobs (struct cctx__job) in a list. A runner takes one item at a time.
 *
 * The pool grows on demand: when work arrives and no runner is idle, a new
 * one is started, up to RUNNERS_MAX, so an after-function that blocks holds
 * up only itself until that many block at once. A runner idle for
 * IDLE_EXIT goes away, so a quiet process keeps none.
 *
 * Sleeping. An idle runner reads `wakes`, looks for work and, finding none,
 * sleeps on `wakes` if it has not changed; whoever adds work bumps `wakes`
 * after adding it and wakes a sleeper, so no work is left with every runner
 * asleep.
 *
 * Locks: `pool.lock` (a word lock) guards the job list and the counts; it is
 * taken alone. The queue's lock is the queue's own (after.c).
 */
#define _GNU_SOURCE
#include "internal.h"

#define RUNNERS_MAX 256
#define IDLE_EXIT CCTX_SEC(2)

struct cctx__run_queue cctx__runner_queue = {.tail = &cctx__runner_queue.head};

static struct {
    _Atomic uint32_t lock;
    struct cctx__job *jobs, **jobs_tail;
    unsigned threads; /* runners alive */
    unsigned idle;    /* of which looking for work or asleep */
    _Atomic uint32_t wakes;
} pool = {.jobs_tail = &pool.jobs};

static struct cctx__job *take_job(void)
{
    cctx__word_lock(&pool.lock);
    struct cctx__job *job = pool.jobs;
    if (job) {
        pool.jobs = job->next;
        if (!pool.jobs)
            pool.jobs_tail = &pool.jobs;
    }
    cctx__word_unlock(&pool.lock);
    return job;
}

static void *runner_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t seen = atomic_load_explicit(&pool.wakes, memory_order_acquire);
        if (cctx__run_queue_run_one(&cctx__runner_queue))
            continue;
        struct cctx__job *job = take_job();
        if (job) {
            job->run(job);
            continue;
        }
        cctx__word_lock(&pool.lock);
        pool.idle++;
        cctx__word_unlock(&pool.lock);
        int r = cctx__os_wait(&pool.wakes, seen, cctx__sat_add(cctx__os_now(), IDLE_EXIT));
        cctx__word_lock(&pool.lock);
        pool.idle--;
        /* Leave only if nothing came in meanwhile: a notifier that counted
         * us idle bumped `wakes`. */
        bool leave = r == ETIMEDOUT &&
                     atomic_load_explicit(&pool.wakes, memory_order_acquire) == seen;
        if (leave)
            pool.threads--;
        cctx__word_unlock(&pool.lock);
        if (leave)
            return NULL;
    }
}

/* Wakes an idle runner, or starts one; false if there is none and none could
 * be started. */
static bool summon(void)
{
    cctx__fork_watch();
    atomic_fetch_add_explicit(&pool.wakes, 1, memory_order_release);
    cctx__word_lock(&pool.lock);
    bool start = pool.idle == 0 && pool.threads < RUNNERS_MAX;
    if (start)
        pool.threads++;
    bool any = pool.threads > 0;
    cctx__word_unlock(&pool.lock);
    if (!start) {
        cctx__os_wake(&pool.wakes);
        return any;
    }
    if (cctx__os_thread_start(runner_main, NULL) == 0)
        return true;
    cctx__word_lock(&pool.lock);
    pool.threads--;
    any = pool.threads > 0;
    cctx__word_unlock(&pool.lock);
    return any;
}

void cctx__runner_notify(void)
{
    if (summon())
        return;
    /* No runner and none can be made: the queue must not wait for one that
     * may never come. The caller (the timer thread) runs them itself. */
    while (cctx__run_queue_run_one(&cctx__runner_queue))
        ;
}

bool cctx__runner_submit(struct cctx__job *job)
{
    job->next = NULL;
    cctx__word_lock(&pool.lock);
    *pool.jobs_tail = job;
    pool.jobs_tail = &job->next;
    cctx__word_unlock(&pool.lock);
    if (summon())
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
            break;
        }
    }
    cctx__word_unlock(&pool.lock);
    return !ours;
}

void cctx__runner_restart(void)
{
    cctx__word_lock(&cctx__runner_queue.lock);
    bool queued = cctx__runner_queue.head != NULL;
    cctx__word_unlock(&cctx__runner_queue.lock);
    cctx__word_lock(&pool.lock);
    queued |= pool.jobs != NULL;
    cctx__word_unlock(&pool.lock);
    if (queued)
        summon();
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
         * and runs when the child first needs a runner (fork.c). */
        atomic_store_explicit(&cctx__runner_queue.lock, 0, memory_order_relaxed);
        atomic_store_explicit(&pool.lock, 0, memory_order_relaxed);
        pool.threads = 0;
        pool.idle = 0;
        break;
    }
}
