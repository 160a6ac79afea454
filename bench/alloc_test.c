/* SPDX-License-Identifier: MIT */
/*
 * bench-alloc-test: the harness's allocation count (alloc.c, harness.c), run
 * by alloc_test.sh. One benchmark allocates through each counted entry point
 * per op (malloc, calloc, realloc, memalign) and notes how many of its ops
 * moved the count: none may in the timed runs, whose note is the one
 * printed, while the line's allocs/op, from the run that counts, must still
 * show the four.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

static void four_blocks_per_op(bench_b *b, void *arg)
{
    (void)arg;
    long long moved = 0;
    for (int64_t i = 0; i < b->n; i++) {
        uint64_t before, after, bytes;
        bench_alloc_totals(&before, &bytes);
        void *p = malloc(24), *q = calloc(1, 24), *r = memalign(16, 24);
        BENCH_KEEP(p); /* or the compiler may drop the pairs */
        BENCH_KEEP(q);
        BENCH_KEEP(r);
        if (!p || !q || !r)
            bench_fatal("out of memory");
        void *grown = realloc(p, 4096); /* counted as a new block, as Go's append */
        if (!grown)
            bench_fatal("out of memory");
        free(grown);
        free(q);
        free(r);
        bench_alloc_totals(&after, &bytes);
        moved += after != before;
    }
    bench_note(b, "ops that moved the count: %lld of %lld", moved, (long long)b->n);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "bench-alloc-test: the harness's allocation count");
    bench_run("BenchmarkFourBlocksPerOp", four_blocks_per_op, NULL);
    printf("PASS\n");
    return 0;
}
