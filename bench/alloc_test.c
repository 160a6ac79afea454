/* SPDX-License-Identifier: MIT */
/*
 * bench-alloc-test: the harness's allocation count (alloc.c, harness.c), run
 * by alloc_test.sh. One benchmark allocates one block per op and notes how
 * many of its ops moved the count: none may in the timed runs, whose note is
 * the one printed, while the line's B/op and allocs/op, from the run that
 * counts, must still show the block.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

static void one_block_per_op(bench_b *b, void *arg)
{
    (void)arg;
    long long moved = 0;
    for (int64_t i = 0; i < b->n; i++) {
        uint64_t before, after, bytes;
        bench_alloc_totals(&before, &bytes);
        void *p = malloc(24);
        BENCH_KEEP(p); /* or the compiler may drop the pair */
        free(p);
        bench_alloc_totals(&after, &bytes);
        moved += after != before;
    }
    bench_note(b, "ops that moved the count: %lld of %lld", moved, (long long)b->n);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "bench-alloc-test: the harness's allocation count");
    bench_run("BenchmarkOneBlockPerOp", one_block_per_op, NULL);
    printf("PASS\n");
    return 0;
}
