/* SPDX-License-Identifier: MIT */
/*
 * Shared by the signal part's files (signal.c, signal_names.c), and its test
 * hook. Not installed; with the library's hidden visibility nothing here is
 * exported.
 */
#ifndef CCTX_SIGNAL_INTERNAL_H
#define CCTX_SIGNAL_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

/* Writes the message of a context ended by signal sig into buf. */
void cctx__signal_message(int sig, char *buf, size_t len);

/* The signal thread is created through this pointer (pthread_create unless a
 * test swaps it, to act at the moment the thread has just started). Atomic
 * because a test swaps it while other threads may read it. */
typedef int (*cctx__signal_create_fn)(pthread_t *thread, const pthread_attr_t *attr,
                                      void *(*fn)(void *), void *arg);
extern _Atomic(cctx__signal_create_fn) cctx__signal_thread_create;

#endif
