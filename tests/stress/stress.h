/* SPDX-License-Identifier: MIT */
/*
 * cctx-stress: races between the calls that end contexts and everything
 * else, each scenario asserting its own invariant. See main.c for how it is
 * run and what it reports.
 */
#ifndef CCTX_STRESS_H
#define CCTX_STRESS_H

#include <cctx.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A violated invariant: said with the scenario's round and seed, then the
 * process aborts (each scenario runs in a process of its own). */
#define STRESS_CHECK(cond)                                                              \
    do {                                                                                \
        if (!(cond))                                                                    \
            stress_fail(__FILE__, __LINE__, #cond);                                     \
    } while (0)
_Noreturn void stress_fail(const char *file, int line, const char *what);

/* What a scenario is given: its seed, its time, and where to count rounds. */
struct run {
    uint64_t seed, rng;
    int64_t until; /* real monotonic time at which to stop starting rounds */
    long rounds;
};
/* Another round, while the time lasts (at least one). */
bool more_rounds(struct run *r);

uint64_t rnd(struct run *r);
unsigned rnd_below(struct run *r, unsigned n);
/* Spins for about n iterations: staggers the threads of a race by a random
 * amount, which only changes who wins, never what must hold. */
void spin(unsigned n);

int64_t real_now(void);

/* Threads that start at the same moment: team_start runs fn(arg_i) on n
 * threads (n <= TEAM_MAX) that cross one barrier together; team_join waits
 * for them. */
enum { TEAM_MAX = 8 };
struct team {
    pthread_barrier_t start;
    int n;
    pthread_t t[TEAM_MAX];
    struct {
        struct team *team;
        void (*fn)(void *);
        void *arg;
    } m[TEAM_MAX];
};
void team_init(struct team *t, int n);
void team_add(struct team *t, void (*fn)(void *), void *arg);
void team_join(struct team *t);

/* Library blocks (test hooks): the count at the start of a scenario, and the
 * check at its end that every block came back (waiting, boundedly, for the
 * timer thread to drop a context it was firing). */
void blocks_begin(void);
void blocks_end(void);

/* True when built with ThreadSanitizer, which cannot start threads in the
 * child of a multi-threaded fork. */
#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#ifndef STRESS_TSAN
#define STRESS_TSAN 0
#endif

/* The same for AddressSanitizer, whose allocator is not fork-safe. */
#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif
#ifndef STRESS_ASAN
#define STRESS_ASAN 0
#endif

/* A scenario's exit status when it cannot run here (reported as skipped). */
#define STRESS_SKIP 77

struct scenario {
    const char *name;
    const char *checks; /* the invariant, in one line */
    int (*fn)(struct run *r); /* 0, or STRESS_SKIP */
};
extern const struct scenario scenarios_cancel[], scenarios_wait[], scenarios_group[];
extern const int n_scenarios_cancel, n_scenarios_wait, n_scenarios_group;

#endif
