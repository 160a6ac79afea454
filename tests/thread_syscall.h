/* What a thread of this process is doing in the kernel, read off
 * /proc/self/task/TID/syscall: the tests that must see a thread asleep in
 * one call, on one address, before they act. A header of its own (not
 * support.c) because the curl peer code that uses it is also linked into a
 * bench, without the tests' support file. */
#ifndef CCTX_TESTS_THREAD_SYSCALL_H
#define CCTX_TESTS_THREAD_SYSCALL_H

#include <stdio.h>
#include <sys/types.h>

#include "harness.h"

/* The call's number and its first two arguments; false while the thread
 * runs ("running") or has none. Skips the test where /proc has no such
 * file (an old kernel, a sandbox). */
static inline bool thread_syscall(pid_t tid, long *nr, unsigned long *arg0, unsigned long *arg1)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        SKIP("no %s (a kernel without it, or a sandbox)", path);
    *nr = -1;
    int got = fscanf(f, "%ld %lx %lx", nr, arg0, arg1);
    fclose(f);
    return got == 3;
}

#endif
