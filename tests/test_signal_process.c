/* SPDX-License-Identifier: MIT */
/*
 * Signal contexts (<cctx/signal.h>) across processes: a child of fork()
 * watches anew, keeps what it inherited, starts no thread before exec, runs
 * none of the parent's deliveries, and a fault in a watched signal still
 * crashes; and a real process shuts down
 * cleanly on SIGTERM (the test execs this binary, as ThreadSanitizer does not
 * run threads in a forked child).
 *
 * Each test runs in its own process (ctest), so a signal raised here reaches
 * no other test.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "signal_internal.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ---------------------------------------------------------------- */

/* Nobody catches sig: its disposition is the default action. */
static bool is_default(int sig)
{
    struct sigaction sa;
    CHECK_EQ(sigaction(sig, NULL, &sa), 0);
    return !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
}

/* ---- fork ------------------------------------------------------------------------- */

/* Forks once every other thread of the process is asleep (the library's
 * signal thread blocked in read, the timer thread in its wait). A fork while
 * another thread is inside AddressSanitizer's allocator leaves that
 * allocator's lock held in the child (glibc's own malloc guards against
 * this; the sanitizer's does not), and the child's first thread start-up
 * blocks on it for good. "Asleep" is the kernel's word for it: state S in
 * /proc/self/task/TID/stat, five times in a row, 1 ms apart. */
static bool others_asleep(void)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d);
    bool asleep = true;
    for (struct dirent *e; asleep && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == (int)thread_id())
            continue;
        char state = thread_state(atoi(e->d_name));
        asleep = state == 'S' || state == '?'; /* '?': exited meanwhile */
    }
    closedir(d);
    return asleep;
}

static void wait_until_others_asleep(void)
{
    for (int streak = 0, tries = 0; streak < 5; tries++) {
        CHECK(tries < 10000); /* 10 s: some thread never went to sleep */
        streak = others_asleep() ? streak + 1 : 0;
        real_sleep_ms(1);
    }
}

static pid_t fork_when_quiet(void)
{
    wait_until_others_asleep();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    return pid;
}

static int wait_child(pid_t pid)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

TEST(signal_fork_child_can_watch_anew)
{
    /* The parent's thread does not exist in the child: the child's first
     * cctx_with_signals starts one of its own. ThreadSanitizer does not run
     * threads started after a multi-threaded fork (it reports and exits
     * 66); the exec test below covers TSan builds. */
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    static const int usr1[] = {SIGUSR1};
    cctx_release(cctx_with_signals(cctx_background(), usr1, 1, NULL)); /* thread runs */
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
        if (!c || raise(SIGUSR1) != 0 || cctx_wait(c, CCTX_SEC(10)) != ECANCELED)
            _exit(10);
        if (!is_default(SIGUSR1))
            _exit(11);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid), 0);
    /* The parent's thread is unharmed. */
    cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ECANCELED);
    cctx_release(c);
}

/* The number of threads of this process, from /proc/self/status, with
 * async-signal-safe calls only (a fork child calls it before exec); -1 if
 * unreadable. */
static int threads_now(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nThreads:");
    if (!p)
        return -1;
    p += strlen("\nThreads:");
    while (*p == ' ' || *p == '\t')
        p++;
    int t = 0;
    while (*p >= '0' && *p <= '9')
        t = t * 10 + (*p++ - '0');
    return t;
}

/* The exec'd side of the next test: exec put SIGUSR2 back to its default
 * and the new program runs one thread. */
CHILD(signal_after_exec)
{
    if (!is_default(SIGUSR2) || threads_now() != 1)
        exit(3);
}

/* A child of fork() starts no thread at fork time, even with a watch
 * inherited and the parent's signal thread running, and a signal that
 * arrives before exec is only flagged; then it execs. (This child starts
 * no thread, so it runs under ThreadSanitizer too.) */
TEST(signal_fork_child_starts_no_thread_before_exec)
{
    static const int usr2[] = {SIGUSR2};
    cctx_t *inherited = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(inherited != NULL);
    CHECK(threads_now() >= 2); /* at least ours and the signal thread */
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        if (threads_now() != 1)
            _exit(10);
        if (raise(SIGUSR2) != 0 || cctx_err(inherited) != 0 || threads_now() != 1)
            _exit(11);
        execl("/proc/self/exe", "cctx-tests", "--child", "signal_after_exec", (char *)NULL);
        _exit(12);
    }
    CHECK_EQ(wait_child(pid), 0);
    /* The parent's watch is untouched, and its thread still works. */
    check_active(inherited);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(cctx_wait(inherited, CCTX_SEC(10)), ECANCELED);
    cctx_release(inherited);
}

TEST(signal_fork_child_keeps_inherited_watches)
{
    /* The child's thread starts with its first cctx_with_signals, and
     * first delivers the signal that arrived before it existed to the
     * inherited watch, but not to the watch that call makes. */
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    static const int usr2[] = {SIGUSR2};
    cctx_t *inherited = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(inherited != NULL);
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        if (threads_now() != 1)
            _exit(10);
        /* No thread yet: remembered, nothing canceled. */
        if (raise(SIGUSR2) != 0 || cctx_err(inherited) != 0)
            _exit(11);
        /* The signal thread starts, and may have started a runner for
         * the delivery it hands over at once. */
        cctx_t *c = cctx_with_signals(cctx_background(), usr2, 1, NULL);
        if (!c || threads_now() < 2)
            _exit(12);
        if (cctx_wait(inherited, CCTX_SEC(10)) != ECANCELED)
            _exit(13);
        if (cctx_err(c) != 0) /* that signal predates c */
            _exit(14);
        /* ...and new signals reach the new watch. */
        if (raise(SIGUSR2) != 0 || cctx_wait(c, CCTX_SEC(10)) != ECANCELED)
            _exit(15);
        if (!is_default(SIGUSR2))
            _exit(16);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid), 0);
    /* The parent's watch is untouched, and its thread still works. */
    check_active(inherited);
    CHECK(!is_default(SIGUSR2));
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(cctx_wait(inherited, CCTX_SEC(10)), ECANCELED);
    cctx_release(inherited);
}

/* An after-function of an inherited watch re-arms (cctx_with_signals)
 * while the child's new thread makes its first pass: it runs on that
 * thread, which must not wait for its own pass to end. */
static cctx_t *_Atomic rearmed_in_child;
static atomic_int rearm_ran;
static void rearm_in_child(void *arg)
{
    (void)arg;
    static const int usr2[] = {SIGUSR2};
    atomic_store(&rearmed_in_child, cctx_with_signals(cctx_background(), usr2, 1, NULL));
    atomic_store(&rearm_ran, 1);
}

TEST(signal_fork_child_rearms_during_first_pass)
{
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    static const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    cctx_t *inherited = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(inherited != NULL);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(inherited, &reg, rearm_in_child, NULL), 0);
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        alarm(10); /* a hang dies of SIGALRM, which fails the test */
        if (raise(SIGUSR2) != 0)
            _exit(10);
        cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
        if (!c || cctx_wait(inherited, CCTX_SEC(10)) != ECANCELED)
            _exit(11);
        /* The after-function runs after the marking that woke the wait:
         * wait for it to have run, not stop it before it starts. */
        for (int i = 0; i < 10000 && !atomic_load(&rearm_ran); i++)
            real_sleep_ms(1);
        cctx_t *rearmed = atomic_load(&rearmed_in_child);
        if (!rearmed || cctx_err(rearmed) != 0)
            _exit(12);
        if (raise(SIGUSR2) != 0 || cctx_wait(rearmed, CCTX_SEC(10)) != ECANCELED)
            _exit(13);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid), 0);
    CHECK(cctx_after_stop(&reg));
    cctx_release(inherited);
}

/* A signal sent to the child as it is forked (here raised by a child fork
 * handler registered before the library's, so it runs first) is the
 * child's: it must not be cleared with the parent's flags. */
static bool raise_in_child;
static void raise_usr2_in_child(void)
{
    if (raise_in_child)
        raise(SIGUSR2);
}

static bool blocked(int sig)
{
    sigset_t cur;
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    return sigismember(&cur, sig);
}

TEST(signal_fork_child_keeps_a_signal_that_arrives_as_it_forks)
{
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    /* Before the library's first cctx_with_signals registers its own (each
     * test runs in a process of its own: run after another signal test in
     * one process, this would test nothing). */
    CHECK_EQ(pthread_atfork(NULL, NULL, raise_usr2_in_child), 0);
    static const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    cctx_t *inherited = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(inherited != NULL);
    raise_in_child = true;
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        alarm(20); /* a hang dies of SIGALRM, which fails the test */
        if (blocked(SIGUSR1) || blocked(SIGUSR2))
            _exit(10); /* the mask is the parent's again */
        cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL); /* the thread */
        if (!c)
            _exit(11);
        if (cctx_wait(inherited, CCTX_SEC(10)) != ECANCELED)
            _exit(12);
        _exit(0);
    }
    raise_in_child = false;
    CHECK(!blocked(SIGUSR1) && !blocked(SIGUSR2)); /* the parent's mask is back */
    CHECK_EQ(wait_child(pid), 0);
    check_active(inherited); /* the signal was the child's only */
    cctx_release(inherited);
}

/* A child's signal thread starts while the inherited watches and handlers
 * are live: a signal that comes once the new thread has made its first
 * look at the flags and sleeps, but before the creating call returned,
 * must still wake it. The hook raises it at that moment. */
static int create_then_raise(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg)
{
    int err = pthread_create(thread, attr, fn, arg);
    if (err)
        return err;
    /* The child's one other thread is the new one. */
    wait_until_others_asleep();
    raise(SIGUSR2); /* blocked here until the caller restores its mask */
    return 0;
}

TEST(signal_fork_child_thread_start_loses_no_signal)
{
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    static const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    cctx_t *inherited = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(inherited != NULL);
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        alarm(30);
        atomic_store_explicit(&cctx__signal_thread_create, create_then_raise, memory_order_relaxed);
        cctx_t *c = cctx_with_signals(cctx_background(), usr1, 1, NULL);
        if (!c)
            _exit(10);
        if (cctx_wait(inherited, CCTX_SEC(10)) != ECANCELED)
            _exit(11);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid), 0);
    check_active(inherited);
    cctx_release(inherited);
}

/* A signal's delivery still queued for a runner as the process forks is the
 * parent's: the child's copy of the queue runs it on the child's first
 * runner, and there it must cancel nothing. The parent's first runner start
 * is held until the child exists, so the delivery waits in the queue at the
 * fork. The child knows the copy has run once its runners have all left (a
 * runner leaves only when it finds no job, after two idle seconds). */
static pid_t held_parent;
static atomic_int held_start_entered, held_start_go;
static atomic_int child_runners_started, child_runners_alive;
static cctx__thread_start_fn start_runner_for_real;
static void *(*child_runner_main)(void *);

static void *child_runner(void *arg)
{
    void *r = child_runner_main(arg);
    atomic_fetch_sub(&child_runners_alive, 1);
    return r;
}

static int start_runner_held_in_parent(void *(*fn)(void *), void *arg)
{
    if (getpid() == held_parent) {
        atomic_store(&held_start_entered, 1);
        for (int i = 0; i < 10000 && !atomic_load(&held_start_go); i++)
            real_sleep_ms(1);
        return start_runner_for_real(fn, arg);
    }
    child_runner_main = fn;
    atomic_fetch_add(&child_runners_alive, 1);
    int err = start_runner_for_real(child_runner, arg);
    if (err)
        atomic_fetch_sub(&child_runners_alive, 1);
    else
        atomic_fetch_add(&child_runners_started, 1);
    return err;
}

TEST(signal_delivery_queued_as_the_process_forks_cancels_nothing_in_the_child)
{
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    static const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    held_parent = getpid();
    start_runner_for_real = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, start_runner_held_in_parent);
    cctx_t *queued = cctx_with_signals(cctx_background(), usr1, 1, NULL);
    cctx_t *childs = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(queued && childs);
    CHECK_EQ(raise(SIGUSR1), 0);
    for (int i = 0; i < 10000 && !atomic_load(&held_start_entered); i++)
        real_sleep_ms(1);
    CHECK(atomic_load(&held_start_entered)); /* the delivery waits in the queue */
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        alarm(30);
        /* The child's signal thread starts here; SIGUSR2's delivery starts
         * the child's runners. */
        if (raise(SIGUSR2) != 0)
            _exit(10);
        cctx_t *c = cctx_with_signals(cctx_background(), usr2, 1, NULL);
        if (!c)
            _exit(11);
        if (cctx_wait(childs, CCTX_SEC(10)) != ECANCELED)
            _exit(12);
        for (int i = 0; i < 10000 && atomic_load(&child_runners_alive) > 0; i++)
            real_sleep_ms(1);
        if (atomic_load(&child_runners_started) < 1 || atomic_load(&child_runners_alive) != 0)
            _exit(13); /* the inherited copy may not have run yet */
        if (cctx_err(queued) != 0)
            _exit(14); /* the parent's SIGUSR1 reached the child's watch */
        _exit(0);
    }
    atomic_store(&held_start_go, 1);
    CHECK_EQ(wait_child(pid), 0);
    /* The parent's delivery was only late. */
    CHECK_EQ(cctx_wait(queued, CCTX_SEC(10)), ECANCELED);
    check_active(childs);
    atomic_store(&cctx__runner_thread_start, start_runner_for_real);
    cctx_release(childs);
    cctx_release(queued);
}

/* A signal caught while its watch was live, and delivered after that watch
 * ended (its release put the default disposition back meanwhile), was the
 * watch's: it is dropped, not raised again for the default action, which
 * would end the process. In a child, whose death would show it. */
TEST(signal_caught_during_a_watch_that_ends_before_its_delivery_is_dropped)
{
    if (TEST_UNDER_TSAN)
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        alarm(20);
        signal(SIGUSR1, SIG_DFL);
        static const int sigs[] = {SIGUSR1};
        for (int i = 0; i < 5; i++) {
            cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
            if (!c)
                _exit(20);
            kill(getpid(), SIGUSR1); /* caught by the library: the watch is live */
            cctx_release(c);         /* the watch ends, most likely before the delivery */
            struct timespec t = {0, 100 * 1000 * 1000};
            nanosleep(&t, NULL); /* time for that delivery: a wrong one ends us */
        }
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

TEST(signal_fault_in_watched_signal_still_crashes)
{
    /* A real SIGSEGV cannot be returned from: the process must die as it
     * would without the watch, not spin. */
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    pid_t pid = fork_when_quiet();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* dying of SIGSEGV is the point */
        alarm(10); /* a spinning child dies of SIGALRM, which fails the test */
        static const int sigs[] = {SIGSEGV};
        cctx_t *c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
        if (!c)
            _exit(20);
        /* kill() is relayed to the context... */
        if (raise(SIGSEGV) != 0 || cctx_wait(c, CCTX_SEC(10)) != ECANCELED)
            _exit(21);
        c = cctx_with_signals(cctx_background(), sigs, 1, NULL);
        /* ...a fault is not. */
        volatile uintptr_t nowhere = 8; /* not NULL: UBSan would stop first */
        *(volatile int *)nowhere = 1;
        _exit(22);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (TEST_UNDER_ASAN) {
        /* AddressSanitizer's own SIGSEGV handler was the previous one: it
         * reports the fault and exits 1. */
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 1);
    } else {
        CHECK(WIFSIGNALED(status));
        CHECK_EQ(WTERMSIG(status), SIGSEGV);
    }
}

/* A program's handler that repairs a fault (a guard page made writable)
 * gets the fault, as before the watch, and the watch goes on: a SIGSEGV
 * sent afterwards still cancels the context. Before, the real fault put
 * the program's handler back for good: the next sent SIGSEGV went to it
 * and cancelled nothing. */
static char *guard_page;
static atomic_int faults_repaired, sent_seen;

static void repair_fault(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    if (info->si_code > 0) {
        mprotect(guard_page, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE);
        atomic_fetch_add(&faults_repaired, 1);
    } else {
        atomic_fetch_add(&sent_seen, 1);
    }
}

TEST(signal_fault_repaired_by_the_programs_handler_leaves_the_watch_on)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_page = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(guard_page != MAP_FAILED);
    struct sigaction repair = {.sa_sigaction = repair_fault, .sa_flags = SA_SIGINFO}, before;
    sigemptyset(&repair.sa_mask);
    CHECK_EQ(sigaction(SIGSEGV, &repair, &before), 0);
    static const int sigs[] = {SIGSEGV};
    cctx_t *ctx = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(ctx != NULL);
    *(volatile char *)guard_page = 1; /* faults once; the handler repairs it */
    CHECK_EQ(atomic_load(&faults_repaired), 1);
    CHECK_EQ(cctx_err(ctx), 0); /* a fault cancels nothing */
    CHECK_EQ(raise(SIGSEGV), 0);
    CHECK_EQ(cctx_wait(ctx, CCTX_SEC(10)), ECANCELED);
    CHECK_EQ(atomic_load(&sent_seen), 0); /* the watch's, not the program's */
    cctx_release(ctx);
    CHECK_EQ(sigaction(SIGSEGV, &before, NULL), 0);
    munmap(guard_page, page);
}

/* The program's fault handler runs under the mask it asked for, as the
 * kernel would have run it without the watch: its sa_mask is blocked, and
 * the fault's own signal too unless it asked for SA_NODEFER. What it saw
 * is read back after it returns. */
static atomic_int saw_own_blocked, saw_masked_blocked;

static void note_fault_mask(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    atomic_store(&saw_own_blocked, sigismember(&now, sig));
    atomic_store(&saw_masked_blocked, sigismember(&now, SIGUSR2));
    if (info->si_code > 0)
        mprotect(guard_page, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE);
}

static void fault_under_watch_with(int flags)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_page = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(guard_page != MAP_FAILED);
    struct sigaction note = {.sa_sigaction = note_fault_mask, .sa_flags = SA_SIGINFO | flags};
    struct sigaction before;
    sigemptyset(&note.sa_mask);
    sigaddset(&note.sa_mask, SIGUSR2);
    CHECK_EQ(sigaction(SIGSEGV, &note, &before), 0);
    static const int sigs[] = {SIGSEGV};
    cctx_t *ctx = cctx_with_signals(cctx_background(), sigs, 1, NULL);
    CHECK(ctx != NULL);
    atomic_store(&saw_own_blocked, -1);
    *(volatile char *)guard_page = 1; /* faults once; the handler repairs it */
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    CHECK_EQ(sigaction(SIGSEGV, &before, NULL), 0);
    munmap(guard_page, page);
}

TEST(signal_fault_forwarded_with_the_handlers_mask)
{
    fault_under_watch_with(0);
    CHECK_EQ(atomic_load(&saw_own_blocked), 1);
    CHECK_EQ(atomic_load(&saw_masked_blocked), 1);
}

TEST(signal_fault_forwarded_with_sa_nodefer_leaves_its_signal_open)
{
    fault_under_watch_with(SA_NODEFER);
    CHECK_EQ(atomic_load(&saw_own_blocked), 0);
    CHECK_EQ(atomic_load(&saw_masked_blocked), 1);
}

/* ---- a real process shutting down on SIGTERM ------------------------------------------ */

/* The child's side of the next test (a CHILD: ctest never runs it as a
 * test of its own, which passed at once). */
CHILD(sigterm_role)
{
    static const int sigs[] = {SIGTERM, SIGINT};
    int line = __LINE__ + 1;
    cctx_t *ctx = cctx_with_signals(cctx_background(), sigs, 2, NULL);
    if (!ctx)
        exit(3);
    printf("ready\n");
    fflush(stdout);
    int err = cctx_wait(ctx, CCTX_SEC(10));
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    bool restored = is_default(SIGTERM) && is_default(SIGINT);
    printf("err=%d code=%d msg=%s site=%s:%d restored=%d line=%d\n", err, c.code,
           c.msg ? c.msg : "-", c.file ? c.file : "-", c.line, restored, line);
    fflush(stdout);
    cctx_release(ctx); /* the cause's strings live as long as the context */
    CHECK_EQ(err, ECANCELED);
    printf("done\n"); /* then the runner exits 0 */
    fflush(stdout);
}

static bool read_until(int fd, char *buf, size_t cap, size_t *len, const char *want)
{
    int64_t until = real_now() + CCTX_SEC(20);
    while (!strstr(buf, want)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = until - real_now();
        if (left <= 0 || poll(&p, 1, (int)(left / 1000000)) <= 0)
            return false;
        ssize_t r = read(fd, buf + *len, cap - 1 - *len);
        if (r <= 0)
            return false;
        *len += (size_t)r;
        buf[*len] = '\0';
    }
    return true;
}

TEST(signal_child_process_shuts_down_on_sigterm)
{
    extern char **environ;
    char *argv[] = {"cctx-tests", "--child", "sigterm_role", NULL};

    int out[2];
    CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. The child starts from a
         * clean slate: default dispositions are kept across exec, the mask
         * too, so unblock the signals it waits for. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        dup2(out[1], STDOUT_FILENO);
        execve("/proc/self/exe", argv, environ);
        _exit(127);
    }
    close(out[1]);
    char buf[1024] = "";
    size_t len = 0;
    CHECK(read_until(out[0], buf, sizeof buf, &len, "ready\n"));
    CHECK_EQ(kill(pid, SIGTERM), 0);
    CHECK(read_until(out[0], buf, sizeof buf, &len, "done\n"));
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    close(out[0]);
    printf("child said:\n%s", buf);
    if (!WIFEXITED(status))
        fprintf(stderr, "child ended by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    char want[160];
    const char *line = strstr(buf, "line=");
    CHECK(line != NULL);
    snprintf(want, sizeof want,
             "err=%d code=%d msg=signal: terminated site=tests/test_signal_process.c:%d restored=1",
             ECANCELED, SIGTERM, atoi(line + 5));
    CHECK(strstr(buf, want) != NULL);
}
