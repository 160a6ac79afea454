#!/bin/sh
# SPDX-License-Identifier: MIT
# The harness's -timeout: a run that goes on past it is stopped with status 2
# and a line naming it; -timeout 0 lets the same run finish.
#   bench/timeout_test.sh CCTX_BENCH
# DeadlineLateness waits for a 1 to 2 ms deadline per op, so 1000 ops cannot
# take less than a second, ten times the limit given.
set -u
bench=$1
out=$("$bench" -bench 'DeadlineLateness/timers=100000$' -benchtime 1000x -timeout 100ms 2>&1)
rc=$?
fail() { printf '%s\n--- output:\n%s\n' "$1" "$out"; exit 1; }
[ "$rc" -eq 2 ] || fail "status $rc after the limit, want 2"
echo "$out" | grep -q '^goos: linux' || fail "the header was lost"
echo "$out" | grep -q 'BenchmarkDeadlineLateness/timers=100000[-0-9]* still running after -timeout 100ms: stopped' ||
    fail "no line names the run that was stopped"
out=$("$bench" -bench 'DeadlineLateness/timers=100000$' -benchtime 50x -timeout 0 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "status $rc with -timeout 0, want 0"
echo "$out" | grep -q '^BenchmarkDeadlineLateness/timers=100000' || fail "-timeout 0 printed no result"
out=$("$bench" -timeout 5x 2>&1)
rc=$?
[ "$rc" -ne 0 ] && echo "$out" | grep -q -- "-timeout: bad unit in '5x'" || fail "-timeout 5x was taken"
echo ok
