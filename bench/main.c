/* SPDX-License-Identifier: MIT */
/* cctx-bench: Go's context benchmarks twinned on cctx, then cctx's own. */
#include <stdio.h>

#include "harness.h"

int main(int argc, char **argv)
{
    bench_init(argc, argv, "cctx-bench: cctx twins of Go 1.19 src/context/benchmark_test.go");
    bench_sizes();
    bench_go_twins();
    bench_handoff();
    bench_extras();
    bench_shutdown();
    bench_io();
    printf("PASS\n");
    return 0;
}
