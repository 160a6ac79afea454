#!/bin/sh
# SPDX-License-Identifier: MIT
# The harness times without counting allocations and counts them in a run of
# its own: the printed note (from the timed runs) says no op moved the count,
# and the line still reports the op's four blocks (malloc, calloc, memalign,
# realloc), each rounded up to its chunk: 24 + 24 + 24 + 4104 bytes.
#   bench/alloc_test.sh BENCH_ALLOC_TEST
set -u
out=$("$1" -benchtime 1000x 2>&1)
rc=$?
fail() { printf '%s\n--- output:\n%s\n' "$1" "$out"; exit 1; }
[ "$rc" -eq 0 ] || fail "status $rc, want 0"
echo "$out" | grep -q '^# BenchmarkFourBlocksPerOp[-0-9]*: ops that moved the count: 0 of 1000$' ||
    fail "the timed run counted allocations"
echo "$out" | grep -Eq '^BenchmarkFourBlocksPerOp[-0-9]*[[:space:]]+1000[[:space:]].*[[:space:]]4176 B/op[[:space:]]+4 allocs/op$' ||
    fail "the line does not report the op's blocks"
echo ok
