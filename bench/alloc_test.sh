#!/bin/sh
# SPDX-License-Identifier: MIT
# The harness times without counting allocations and counts them in a run of
# its own: the printed note (from the timed runs) says no op moved the count,
# and the line still reports the op's one block of 24 bytes.
#   bench/alloc_test.sh BENCH_ALLOC_TEST
set -u
out=$("$1" -benchtime 1000x 2>&1)
rc=$?
fail() { printf '%s\n--- output:\n%s\n' "$1" "$out"; exit 1; }
[ "$rc" -eq 0 ] || fail "status $rc, want 0"
echo "$out" | grep -q '^# BenchmarkOneBlockPerOp[-0-9]*: ops that moved the count: 0 of 1000$' ||
    fail "the timed run counted allocations"
echo "$out" | grep -Eq '^BenchmarkOneBlockPerOp[-0-9]*[[:space:]]+1000[[:space:]].*[[:space:]]24 B/op[[:space:]]+1 allocs/op$' ||
    fail "the line does not report the op's block"
echo ok
