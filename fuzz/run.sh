#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the fuzz targets built in BUILD_DIR (CCTX_BUILD_FUZZ=ON):
#   0. the JSON validator's own test;
#   1. every reproducer under fuzz/regressions/<target>/, once each;
#   2. each target for SECONDS (default 60), from a copy of its seed corpus
#      (fuzz/corpus/<target>/, with fuzz/<target>.dict if there is one), new
#      inputs going to BUILD_DIR/fuzz-work.
# A crash, a hang (10 s on one input), a leak or a violated invariant is a
# finding: its input is saved under BUILD_DIR/fuzz-findings/<target>/ and the
# script exits 1 after running everything. A target left out of the build
# for want of its dependency (fuzz_mhd without libmicrohttpd) is skipped with
# a word why, except under CI=true, where that fails too.
# Usage: fuzz/run.sh BUILD_DIR [SECONDS]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${1:?usage: fuzz/run.sh BUILD_DIR [SECONDS]}
seconds=${2:-60}
targets=(fuzz_api fuzz_dump fuzz_grpc_timeout fuzz_traceparent fuzz_mhd)
# One input may take at most 10 s (a hang is a finding); memory per process is
# bounded so that a runaway allocation is a finding too, not a dead machine.
common=(-timeout=10 -rss_limit_mb=2048)
export UBSAN_OPTIONS=print_stacktrace=1
failed=()
report=()

# A validator that accepted too much would hide findings: test it first.
"$build/fuzz/json_check_test" || failed+=("json_check_test: the JSON validator is wrong")

for t in "${targets[@]}"; do
    bin=$build/fuzz/$t
    # A target whose dependency was not found (fuzz_mhd: libmicrohttpd) is
    # not built, and its build says why; CI installs every dependency, so
    # there (CI=true) a target not built is a failure.
    if [[ ! -x $bin && -f $bin.skipped ]]; then
        why=$(cat "$bin.skipped")
        if [[ ${CI:-} == true ]]; then
            failed+=("$t: not built ($why), under CI=true")
            report+=("$(printf '%-18s NOT BUILT: %s' "$t" "$why")")
        else
            echo "== $t: skipped, not built: $why"
            report+=("$(printf '%-18s skipped: %s' "$t" "$why")")
        fi
        continue
    fi
    [[ -x $bin ]] || { echo "missing $bin: build with -DCCTX_BUILD_FUZZ=ON" >&2; exit 2; }
    findings=$build/fuzz-findings/$t
    mkdir -p "$findings"

    n=0 bad=0
    for f in fuzz/regressions/"$t"/*; do
        [[ -f $f ]] || continue
        n=$((n + 1))
        if ! "$bin" "${common[@]}" "$f" >"$findings/replay.log" 2>&1; then
            bad=$((bad + 1))
            failed+=("$t: reproducer $f")
            echo "== $t: reproducer $f FAILS:"
            grep -E 'invariant|runtime error|ERROR|SUMMARY|invalid JSON|timeout' \
                "$findings/replay.log" | head -n 8
        fi
    done
    report+=("$(printf '%-18s reproducers: %d replayed, %d failed' "$t" "$n" "$bad")")

    work=$build/fuzz-work/$t
    rm -rf "$work"
    mkdir -p "$work"
    log=$build/fuzz-findings/$t.log
    echo "== $t: fuzzing for $seconds s"
    start=$(date +%s)
    dict=()
    [[ ! -f fuzz/$t.dict ]] || dict=(-dict="fuzz/$t.dict")
    "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$findings/" "$work" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
    if [[ $rc -ne 0 ]]; then
        failed+=("$t: fuzzing (status $rc)")
        echo "== $t: FINDING after $took s; the end of its log:"
        tail -n 60 "$log"
        ls -l "$findings"
        report+=("$(printf '%-18s fuzzing: FINDING after %d s (%s), input in %s' "$t" "$took" \
            "${cov:-cov ?}" "$findings")")
    else
        report+=("$(printf '%-18s fuzzing: %d s, %s inputs, %s, nothing found' "$t" "$took" \
            "${execs:-?}" "${cov:-cov ?}")")
    fi
done

echo
printf '%s\n' "${report[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf '\nfindings:\n'
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
