#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Instructions per operation, counted by valgrind's callgrind: exact and
# repeatable whatever else the machine is doing, where nanoseconds on a
# shared VM move by more than the differences being looked for.
#
#   bench/instructions.sh BENCH_BINARY... [-- BENCH_REGEX...]
#
# For each regex (default: the hot paths) and each binary it runs the
# benchmark at N and 2N iterations (-benchtime Nx) under callgrind and prints
# (Ir(2N) - Ir(N)) / N: the instructions one iteration costs, set-up excluded.
# Environment variables given before the command (CCTX_DEBUG=...) apply to
# every run.
set -euo pipefail
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do bins+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#bins[@]} -gt 0 ] || { echo "usage: $0 BENCH_BINARY... [-- BENCH_REGEX...]" >&2; exit 2; }
patterns=("$@")
[ ${#patterns[@]} -gt 0 ] || patterns=('CancelTree/depth=1$/Root=Background' 'CancelTree/depth=1$/Root=OpenCanceler'
    'CancelTree/depth=10$/Root=Background' 'CheckCanceled/Err' 'CheckCanceled/Done'
    'ContextCancelDone' 'DeepValueSameGoRoutine/depth=10$')
N=${N:-20000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ir() { # ir BINARY REGEX ITERATIONS: total instructions of one run
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$1" -bench "$2" \
        -benchtime "$3x" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    sed -n 's/^summary: //p' "$tmp/out"
}

printf '| Benchmark |'
for b in "${bins[@]}"; do printf ' %s |' "$b"; done
printf '\n|---|'
for b in "${bins[@]}"; do printf -- '---:|'; done
printf '\n'
for p in "${patterns[@]}"; do
    printf '| %s |' "$p"
    for b in "${bins[@]}"; do
        a=$(ir "$b" "$p" "$N")
        c=$(ir "$b" "$p" $((2 * N)))
        printf ' %s |' "$(awk -v a="$a" -v c="$c" -v n="$N" 'BEGIN { printf "%.1f", (c - a) / n }')"
    done
    printf '\n'
done
