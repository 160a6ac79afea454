#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The portability builds (docs/portability.md), each configured, built with
# -Werror and tested with `ctest -j2`:
#   clang     clang-14, everything found: the HTTP integrations, cctx-vet,
#             the examples and the benchmarks
#   musl      musl-gcc (Debian's musl-tools): the core and its tests; no
#             HTTP integrations (libmicrohttpd and libcurl are glibc builds)
#   portable  gcc with CCTX_PORTABLE=ON: the paths of systems other than
#             Linux (condition variables for futex, a pipe for eventfd, poll
#             before read and write...), run on Linux so that they are tested
#   m32       gcc -m32 (Debian's gcc-multilib): a 32-bit target, which cctx
#             does not support; passes when the build stops with the
#             layout's "needs a 64-bit target", not at some later check
#   gcc       gcc, everything found: the README's build, which CI's stage 2
#             runs already, so only on request
# then prints a summary of each (tests passed, failed, not run; time).
#
#   usage: tests/portability/run.sh [BUILD...]   (default: clang musl portable m32)
#
# These builds leave out the four tests that load cctx_dump's HTML page in
# headless Chromium (ctest -E chromium): about a minute of browser time per
# build, for a page that depends on neither the compiler, the libc nor the
# wait primitives; the gcc build (CI's stage 2) runs them.
#
# Environment: CCTX_PORT_DIR (build directories, default build-port/ in the
# source tree; each build starts from an empty one), JOBS (default 2), CI.
# Exit status: 0 when every build passed; 1 when one failed; 77 when a
# compiler is missing (clang-14, musl-gcc, gcc -m32) and CI is not "true" (under
# CI=true a missing compiler is a failure), the other builds still run.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
root=${CCTX_PORT_DIR:-$src/build-port}
jobs=${JOBS:-2}
in_ci=false
[[ "${CI:-}" == true ]] && in_ci=true

builds=("$@")
[[ ${#builds[@]} -gt 0 ]] || builds=(clang musl portable m32)

# The core alone: what the musl and portable builds are about.
core_only=(-DCCTX_WITH_MHD=OFF -DCCTX_WITH_CURL=OFF -DCCTX_BUILD_VET=OFF
    -DCCTX_BUILD_BENCH=OFF -DCCTX_BUILD_EXAMPLES=OFF)

declare -A verdict=() detail=() took=()
start_all=$(date +%s)

# run_build NAME CC EXCLUDE_REGEX CMAKE_ARGS...
run_build() {
    local name=$1 cc=$2 exclude=$3
    shift 3
    local dir=$root/$name start log
    start=$(date +%s)
    if ! command -v "$cc" >/dev/null 2>&1; then
        took[$name]=0
        if $in_ci; then
            verdict[$name]=FAILED
            detail[$name]="$cc not found (CI=true: install it)"
        else
            verdict[$name]=SKIPPED
            detail[$name]="$cc not found"
        fi
        return
    fi
    printf '\n== %s: CC=%s cmake %s\n' "$name" "$cc" "$*"
    rm -rf "$dir"
    mkdir -p "$dir"
    log=$dir/ctest.log
    if ! CC=$cc cmake -S "$src" -B "$dir" -DCCTX_WERROR=ON "$@" >"$dir/configure.log" 2>&1; then
        tail -n 30 "$dir/configure.log"
        verdict[$name]=FAILED detail[$name]="configure failed ($dir/configure.log)"
        took[$name]=$(($(date +%s) - start))
        return
    fi
    if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
        grep -E 'error|warning' "$dir/build.log" | head -n 30
        verdict[$name]=FAILED detail[$name]="build failed ($dir/build.log)"
        took[$name]=$(($(date +%s) - start))
        return
    fi
    local args=(--test-dir "$dir" -j"$jobs" --output-on-failure)
    [[ -z "$exclude" ]] || args+=(-E "$exclude")
    ctest "${args[@]}" >"$log" 2>&1
    local rc=$?
    took[$name]=$(($(date +%s) - start))
    # "N% tests passed, F tests failed out of T" and the "did not run" list.
    local line notrun
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$log" | tail -n 1)
    notrun=$(sed -n '/The following tests did not run:/,/^$/p' "$log" | grep -cE '^\s+[0-9]+ - ')
    detail[$name]="${line:-no ctest summary}; not run: $notrun"
    if [[ $rc -eq 0 ]]; then
        verdict[$name]=ok
    else
        verdict[$name]=FAILED
        sed -n '/The following tests FAILED:/,/^$/p' "$log"
    fi
    sed -n '/The following tests did not run:/,/^$/p' "$log"
}

# refuse_build NAME CFLAGS: a target cctx does not support; the build must
# stop, and with the layout's message.
refuse_build() {
    local name=$1 cflags=$2 dir=$root/$1 start probe
    start=$(date +%s)
    probe=$(mktemp -d)
    printf 'int main(void) { return 0; }\n' >"$probe/p.c"
    if ! gcc $cflags "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
        rm -rf "$probe"
        took[$name]=0
        if $in_ci; then
            verdict[$name]=FAILED detail[$name]="gcc $cflags cannot link (CI=true: install gcc-multilib)"
        else
            verdict[$name]=SKIPPED detail[$name]="gcc $cflags cannot link (gcc-multilib)"
        fi
        return
    fi
    rm -rf "$probe"
    printf '\n== %s: CC=gcc CFLAGS=%s, expected to stop\n' "$name" "$cflags"
    rm -rf "$dir"
    mkdir -p "$dir"
    if CC=gcc CFLAGS=$cflags cmake -S "$src" -B "$dir" "${core_only[@]}" -DCCTX_BUILD_TESTS=OFF \
        >"$dir/configure.log" 2>&1 &&
        ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1 &&
        grep -q 'cctx needs a 64-bit target' "$dir/build.log"; then
        verdict[$name]=ok detail[$name]="stopped: $(grep -m1 -o 'cctx needs a 64-bit target[^"]*' "$dir/build.log")"
    else
        verdict[$name]=FAILED detail[$name]="did not stop with the 64-bit message ($dir/build.log)"
        grep -E 'error' "$dir/build.log" 2>/dev/null | head -n 10
    fi
    took[$name]=$(($(date +%s) - start))
}

for b in "${builds[@]}"; do
    case $b in
    gcc) run_build gcc gcc "" ;;
    clang) run_build clang clang-14 chromium ;;
    musl) run_build musl musl-gcc chromium "${core_only[@]}" ;;
    portable) run_build portable gcc chromium -DCCTX_PORTABLE=ON "${core_only[@]}" ;;
    m32) refuse_build m32 -m32 ;;
    *)
        echo "unknown build: $b (gcc, clang, musl, portable, m32)" >&2
        exit 2
        ;;
    esac
done

printf '\n== portability summary\n'
status=0
for b in "${builds[@]}"; do
    printf '  %-9s %-8s %4ss  %s\n' "$b" "${verdict[$b]}" "${took[$b]}" "${detail[$b]}"
    case ${verdict[$b]} in
    ok) ;;
    SKIPPED) [[ $status -ne 0 ]] || status=77 ;;
    *) status=1 ;;
    esac
done
printf '  %-9s %-8s %4ss\n' total "" $(($(date +%s) - start_all))
exit $status
