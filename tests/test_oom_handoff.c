/* SPDX-License-Identifier: MIT */
/*
 * Work the library hands to a runner so that user code never runs on its
 * own threads (the timer thread) nor inside cctx_dump: a value destructor
 * that the release of a deadline's firing, or of a dump's last reference,
 * would run. Handing it over takes a small block; out of memory for that
 * block, the work must still go to a runner while one exists, not be done
 * on the spot, where a destructor that waits (for a deadline, say, which
 * only the timer thread fires) would hold up every deadline of the process,
 * or the dump's caller (the inspect thread). The same for a signal's
 * delivery, which runs after-functions: not on the library's signal thread.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cctx_config.h" /* CCTX_USE_PRCTL */
#include "harness.h"
#include "support.h"
#include "testhooks.h"

static const int key = 0;

/* Where the value's destructor ran. */
static pthread_t destroyer;
static atomic_bool destroyed_flag;

static void note_destroy(void *value)
{
    (void)value;
    destroyer = pthread_self();
    atomic_store(&destroyed_flag, true);
}

static void wait_destroyed(void)
{
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&destroyed_flag)) {
        CHECK(real_now() < until);
        sched_yield();
    }
}

/* ---- a deadline's firing ----------------------------------------------------- */

static _Atomic(cctx_t *) popped_ctx;
static pthread_t timer_thread;

/* On the timer thread, the deadline just taken off the heap and referenced:
 * the owner lets go, so the firing's reference is the last, and the two
 * allocations the firing makes next (its cause record, then the block that
 * hands the rest to a runner) are made to fail from the second. The
 * deadline may be due before its derivation has returned: the owner's
 * reference is let go only once the test has it. */
static void let_go_when_popped(struct cctx__timer *t)
{
    (void)t;
    timer_thread = pthread_self();
    cctx_t *c;
    while (!(c = atomic_load(&popped_ctx)))
        sched_yield();
    cctx_release(c);
    cctx__test_fail_alloc(2);
}

TEST(oom_firing_release_goes_to_runner)
{
    atomic_store(&destroyed_flag, false);
    atomic_store(&cctx__timer_popped, let_go_when_popped);
    /* v's last reference is d's: freeing d, the firing frees v. */
    cctx_t *v = cctx_with_value(cctx_background(), &key, NULL, note_destroy);
    CHECK(v != NULL);
    cctx_t *d = armed_timeout(v, CCTX_MSEC(1));
    CHECK(d != NULL);
    cctx_release(v);
    atomic_store(&popped_ctx, d);
    wait_destroyed();
    atomic_store(&cctx__timer_popped, NULL);
    cctx__test_fail_alloc(0);
    CHECK(!pthread_equal(destroyer, timer_thread));
}

/* ---- a dump's last reference ------------------------------------------------ */

/* The first write of the dump lets go of x (the dump holds it now) and
 * makes the next allocation fail: the one that hands x's release to a
 * runner, once the dump has written x. */
static ssize_t let_go_on_write(void *cookie, const char *buf, size_t len)
{
    cctx_t **x = cookie;
    (void)buf;
    if (*x) {
        cctx_release(*x);
        *x = NULL;
        cctx__test_fail_alloc(1);
    }
    return (ssize_t)len;
}

/* root -> v (value, destroyed by `destroy`) -> x: x is in root's list, and
 * v's last reference is x's. A dump of root lets go of x on its first write
 * (let_go_on_write) and fails the allocation that hands x's release to a
 * runner. Returns root. */
static cctx_t *dump_holding_the_last_reference(cctx_cancel_t **rc, void (*destroy)(void *))
{
    atomic_store(&destroyed_flag, false);
    cctx_t *root = cctx_with_cancel(cctx_background(), rc);
    CHECK(root != NULL);
    cctx_t *v = cctx_with_value(root, &key, NULL, destroy);
    CHECK(v != NULL);
    cctx_t *x = cctx_with_cancel(v, NULL);
    CHECK(x != NULL);
    cctx_release(v);

    cookie_io_functions_t io = {.write = let_go_on_write};
    FILE *f = fopencookie(&x, "w", io);
    CHECK(f != NULL);
    CHECK_EQ(setvbuf(f, NULL, _IONBF, 0), 0);
    CHECK_EQ(cctx_dump(root, f, CCTX_DUMP_TEXT), 0);
    CHECK_EQ(fclose(f), 0);
    CHECK(x == NULL);
    cctx__test_fail_alloc(0);
    return root;
}

TEST(oom_dump_release_goes_to_runner)
{
    cctx_cancel_t *rc;
    cctx_t *root = dump_holding_the_last_reference(&rc, note_destroy);
    wait_destroyed();
    CHECK(!pthread_equal(destroyer, pthread_self()));
    CHECK_EQ(cctx_cancel_and_wait(rc, -1, NULL), 0);
    cctx_release(root);
}

/* ---- a signal's delivery ---------------------------------------------------- */

static _Atomic pid_t after_tid;

static void note_thread(void *arg)
{
    (void)arg;
    atomic_store(&after_tid, thread_id());
}

/* The library's signal thread: the one thread named so, as long as it has
 * started no runner (a runner takes its creator's name); 0 until it has
 * named itself. */
static pid_t find_signal_thread(void)
{
    pid_t found = 0;
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char path[320], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f) && strcmp(name, "cctx-signal\n") == 0) {
            CHECK_EQ(found, 0);
            found = (pid_t)atoi(e->d_name);
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

static pid_t signal_thread(void)
{
    int64_t until = real_now() + CCTX_SEC(10);
    pid_t tid;
    while ((tid = find_signal_thread()) == 0) {
        CHECK(real_now() < until);
        sched_yield();
    }
    return tid;
}

TEST(oom_signal_delivery_goes_to_runner)
{
    if (!CCTX_USE_PRCTL)
        SKIP_IN_THIS_BUILD("the signal thread names itself with prctl, which this build does "
                           "not use: the test cannot tell it from the runners");
    int sigs[] = {SIGUSR1};
    cctx_t *s = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(s != NULL);
    pid_t signal_tid = signal_thread();
    cctx_after_t reg = {{0}};
    CHECK_EQ(cctx_after_func(s, &reg, note_thread, NULL), 0);
    /* The next allocation is the signal thread's block for the delivery:
     * the main thread only waits from here. */
    cctx__test_fail_alloc(1);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(s, CCTX_SEC(10)), ECANCELED);
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&after_tid)) {
        CHECK(real_now() < until);
        sched_yield();
    }
    cctx__test_fail_alloc(0);
    CHECK(atomic_load(&after_tid) != signal_tid);
    cctx_release(s);
}

/* ---- a spare block at fork() ------------------------------------------------- */

/* A child of fork() has none of the parent's other threads: a spare block
 * one of them held (here: the runner running a dump's handed-off release,
 * held up in a value destructor) is free in the child, or eight forks from
 * such moments would leave it none. The block of the job the forking thread
 * runs itself stays taken: that job goes on in the child. */
static atomic_bool destructor_entered, destructor_may_return;
static atomic_bool fork_in_destructor;
static _Atomic int child_status = -1;

static int exit_status_of(pid_t pid)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void held_destroy(void *value)
{
    (void)value;
    if (atomic_load(&fork_in_destructor)) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0)
            _exit(cctx__test_spare_jobs_used() == 1 ? 0 : 1);
        atomic_store(&child_status, pid > 0 ? exit_status_of(pid) : 99);
    }
    atomic_store(&destructor_entered, true);
    while (!atomic_load(&destructor_may_return))
        real_sleep_ms(1);
    atomic_store(&destroyed_flag, true);
}

/* A dump hands the last release of x, and with it v's destructor, to a
 * runner, in a spare block (the heap's block fails); returns once the
 * destructor runs there. */
static cctx_t *destructor_held_in_a_spare_block(cctx_cancel_t **rc)
{
    atomic_store(&destructor_entered, false);
    atomic_store(&destructor_may_return, false);
    CHECK_EQ(cctx__test_spare_jobs_used(), 0);
    cctx_t *root = dump_holding_the_last_reference(rc, held_destroy);
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&destructor_entered)) {
        CHECK(real_now() < until);
        real_sleep_ms(1);
    }
    return root;
}

static void let_the_destructor_return(cctx_t *root, cctx_cancel_t *rc)
{
    atomic_store(&destructor_may_return, true);
    wait_destroyed();
    int64_t until = real_now() + CCTX_SEC(10);
    while (cctx__test_spare_jobs_used() != 0) { /* given back after the job */
        CHECK(real_now() < until);
        real_sleep_ms(1);
    }
    CHECK_EQ(cctx_cancel_and_wait(rc, -1, NULL), 0);
    cctx_release(root);
}

TEST(oom_spare_block_another_thread_held_is_free_in_a_child_of_fork)
{
    atomic_store(&fork_in_destructor, false);
    cctx_cancel_t *rc;
    cctx_t *root = destructor_held_in_a_spare_block(&rc);
    CHECK_EQ(cctx__test_spare_jobs_used(), 1);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(cctx__test_spare_jobs_used() == 0 ? 0 : 1);
    CHECK(pid > 0);
    CHECK_EQ(exit_status_of(pid), 0);
    let_the_destructor_return(root, rc);
}

/* No runner can be started: a submitted job stays queued for the one that
 * exists. */
static int no_new_runner(void *(*fn)(void *), void *arg)
{
    (void)fn;
    (void)arg;
    return EAGAIN;
}

TEST(oom_spare_block_of_a_queued_job_stays_taken_in_a_child_of_fork)
{
    atomic_store(&fork_in_destructor, false);
    cctx_cancel_t *rc, *rc2;
    cctx_t *root = destructor_held_in_a_spare_block(&rc); /* block 1: the runner's */
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, no_new_runner);
    /* Block 2: a second dump's release, queued behind the held runner. */
    cctx_t *root2 = dump_holding_the_last_reference(&rc2, note_destroy);
    atomic_store(&cctx__runner_thread_start, start);
    CHECK_EQ(cctx__test_spare_jobs_used(), 2);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) /* the queued job's block stays taken, the runner's is free */
        _exit(cctx__test_spare_jobs_used() == 1 ? 0 : 1);
    CHECK(pid > 0);
    CHECK_EQ(exit_status_of(pid), 0);
    let_the_destructor_return(root, rc); /* and the runner then runs the queued job */
    CHECK_EQ(cctx_cancel_and_wait(rc2, -1, NULL), 0);
    cctx_release(root2);
}

/* The forking thread's own job goes on in the child: its block stays taken
 * there (this guards against a child that frees every block). */
TEST(oom_spare_block_of_the_job_that_forks_stays_taken_in_the_child)
{
    atomic_store(&fork_in_destructor, true);
    atomic_store(&child_status, -1);
    cctx_cancel_t *rc;
    cctx_t *root = destructor_held_in_a_spare_block(&rc);
    CHECK_EQ(atomic_load(&child_status), 0);
    let_the_destructor_return(root, rc);
}
