/*
 * The operating-system layer: every futex, clock and event-descriptor call of
 * the library goes through here. Linux uses futex(2) and eventfd(2); elsewhere
 * a striped table of condition variables and a pipe stand in for them.
 */
#ifndef CCTX_OS_H
#define CCTX_OS_H

#include <stdatomic.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t cctx__os_now(void);

/* Sleeps while *word == expected, until woken or until the monotonic clock
 * reaches deadline (CCTX_NO_DEADLINE: no limit). Returns 0 when woken (perhaps
 * spuriously) or when *word differed, ETIMEDOUT when the deadline passed. */
int cctx__os_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline);
/* Wakes every thread sleeping on word. */
void cctx__os_wake(_Atomic uint32_t *word);

/* Starts a detached library thread running fn(arg) with every signal
 * blocked (the program's signals are not its to take). 0 or an errno value;
 * EAGAIN (out of threads) is given as ENOMEM, the library's word for it. */
int cctx__os_thread_start(void *(*fn)(void *), void *arg);

/* A descriptor that becomes readable (POLLIN) once signalled and stays so:
 * an eventfd, or the read end of a pipe. -1 with errno on failure. */
int cctx__os_event_new(void);
void cctx__os_event_signal(int fd);
void cctx__os_event_close(int fd);

#endif
