/* SPDX-License-Identifier: MIT */
/*
 * The operating-system layer: every futex, clock and event-descriptor call of
 * the library goes through here. Linux uses futex(2) and eventfd(2); elsewhere
 * (and on Linux with CCTX_PORTABLE) a striped table of condition variables
 * and a pipe stand in for them.
 */
#ifndef CCTX_OS_H
#define CCTX_OS_H

/* CCTX_USE_LINUX and the other answers of cmake/features.cmake. */
#include "cctx_config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t cctx__os_now(void);

/* Whether the calling thread may run on more than one CPU (its affinity
 * mask on Linux, the CPUs online elsewhere): a spin that waits for another
 * thread is pure loss where that thread cannot run at the same time. */
bool cctx__os_several_cpus(void);

/* Sleeps while *word == expected, until woken or until the monotonic clock
 * reaches deadline (CCTX_NO_DEADLINE: no limit). Returns 0 when woken (perhaps
 * spuriously) or when *word differed, ETIMEDOUT when the deadline passed. */
int cctx__os_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline);
/* Wakes every thread sleeping on word. */
void cctx__os_wake(_Atomic uint32_t *word);
/* Makes the waits above safe in a child of fork(). Called by fork.c before
 * it registers its own fork handlers, so that the child's handlers, which
 * may wake and wait, run after this layer's (they run in registration
 * order). */
void cctx__os_fork_watch(void);

/* Starts a detached library thread running fn(arg) with every signal
 * blocked (the program's signals are not its to take). 0 or an errno value;
 * EAGAIN (out of threads) is given as ENOMEM, the library's word for it. */
int cctx__os_thread_start(void *(*fn)(void *), void *arg);

/* getenv, except in a program that runs with privileges its caller lacks
 * (set-user-ID or set-group-ID, or with file capabilities), where it is
 * NULL: the debugging switches write files, make directories and print
 * addresses, and the caller must not be able to steer them there. */
const char *cctx__os_getenv_unprivileged(const char *name);

/* Initializes c to measure timed waits on CLOCK_MONOTONIC. */
void cctx__os_cond_init_monotonic(pthread_cond_t *c);

/* A descriptor that becomes readable (POLLIN) once signalled and stays so:
 * an eventfd, or the read end of a pipe. -1 with errno on failure. */
int cctx__os_event_new(void);
void cctx__os_event_signal(int fd);
void cctx__os_event_close(int fd);

#endif
