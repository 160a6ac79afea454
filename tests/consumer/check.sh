#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs cctx into a temporary prefix, static and shared, and builds a tiny
# program (tests/consumer/main.c) against the *installed* library both ways a
# user would: CMake's find_package(cctx) -> cctx::cctx, and
# `pkg-config --cflags --libs cctx` (with --static for the static library).
# Each program is run and its output compared with expected.txt. When the HTTP
# integrations were built (libmicrohttpd and libcurl found), the same is done
# for http.c with find_package(cctx COMPONENTS mhd curl) and
# `pkg-config cctx-mhd cctx-curl` (compared with http-expected.txt); under
# CI=true they must have been built.
#
#   usage: tests/consumer/check.sh [BUILD_TYPE]     (default: Release)
#
# Environment: CC (compiler, default cc), JOBS (default 2),
# CCTX_KEEP_TMP=1 keeps the temporary directory for inspection, and
# CCTX_CONSUMER_PREFIX=DIR checks a library already installed in DIR (a
# shared build, such as the Debian package's /usr) instead of building one.
set -euo pipefail

build_type=${1:-Release}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
jobs=${JOBS:-2}
cc=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cctx-consumer.XXXXXX")
cleanup() {
    if [[ "${CCTX_KEEP_TMP:-}" == 1 ]]; then
        echo "consumer: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

step() { printf '\n--- consumer [%s]: %s\n' "$build_type" "$*"; }
fail() { printf 'consumer [%s]: FAIL: %s\n' "$build_type" "$*" >&2; exit 1; }

# Runs a built consumer and compares its transcript with an expected one
# (default expected.txt).
run_and_compare() {
    local bin=$1 expected=${2:-expected.txt} out=$tmp/out.txt
    "$bin" >"$out" || { cat "$out"; fail "$bin exited with status $?"; }
    if ! diff -u "$here/$expected" "$out"; then
        fail "$bin: output differs from $expected (diff above)"
    fi
    echo "output matches $expected"
}

# exports_exactly LIB HEADER...: LIB exports the CCTX_API functions the
# headers declare, and nothing else of its own.
exports_exactly() {
    local lib=$1 declared exported missing stray
    shift
    declared=$(cat "$@" | tr '\n' ' ' |
        grep -oE 'CCTX_API [^;{]*' | grep -oE '\bcctx_[a-z0-9_]+ *\(' | tr -d ' (' | sort -u)
    exported=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort -u)
    stray=$(comm -13 <(echo "$declared") <(echo "$exported") | grep -v '^_' || true)
    [[ -z "$stray" ]] || fail "$lib exports non-API symbols: $(tr "\n" " " <<<"$stray")"
    missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
    [[ -z "$missing" ]] || fail "$lib does not export: $(tr '\n' ' ' <<<"$missing")"
    echo "$(basename "$lib") exports the $(wc -l <<<"$declared") CCTX_API functions of its headers and nothing else"
}

# prefixed_only ARCHIVE: every global symbol ARCHIVE defines starts with
# cctx_: a static link puts each one in the program's namespace, where an
# internal name such as mhd_* (libmicrohttpd's own prefix) could collide.
prefixed_only() {
    local lib=$1 stray
    stray=$(nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' | grep -v '^cctx_' | sort -u || true)
    [[ -z "$stray" ]] || fail "$lib defines symbols without the cctx_ prefix: $(tr '\n' ' ' <<<"$stray")"
    echo "$(basename "$lib"): every global symbol starts with cctx_"
}

# needs_libcctx BINARY yes|no: checks whether BINARY loads libcctx.so at run time.
needs_libcctx() {
    local bin=$1 want=$2 needed
    needed=$(readelf -d "$bin" | grep NEEDED || true)
    if grep -q 'libcctx\.so' <<<"$needed"; then
        [[ "$want" == yes ]] || fail "$bin: linked against libcctx.so, expected the static library"
        echo "dynamically linked: $(grep -o 'libcctx\.so[.0-9]*' <<<"$needed")"
    else
        [[ "$want" == no ]] || fail "$bin: libcctx.so not among its NEEDED libraries"
        echo "statically linked (no libcctx.so needed)"
    fi
}

installed=${CCTX_CONSUMER_PREFIX:-}
kinds=(static shared)
[[ -z $installed ]] || kinds=(shared)
for kind in "${kinds[@]}"; do
    shared=OFF
    [[ "$kind" == shared ]] && shared=ON
    prefix=${installed:-$tmp/prefix-$kind}

    if [[ -n $installed ]]; then
        step "$kind: the library installed in $prefix"
    else
    step "$kind: configure, build and install cctx into $prefix"
    cmake -S "$src" -B "$tmp/build-$kind" \
        -DCMAKE_BUILD_TYPE="$build_type" \
        -DBUILD_SHARED_LIBS=$shared \
        -DCCTX_WERROR=ON \
        -DCCTX_BUILD_TESTS=OFF -DCCTX_BUILD_BENCH=OFF -DCCTX_BUILD_EXAMPLES=OFF \
        -DCCTX_BUILD_VET=OFF \
        -DCMAKE_INSTALL_PREFIX=/nonexistent/cctx >"$tmp/configure-$kind.log" ||
        { cat "$tmp/configure-$kind.log"; fail "configure ($kind)"; }
    cmake --build "$tmp/build-$kind" -j "$jobs"
    # The prefix is given at install time, as the README suggests: nothing
    # installed may point at the one the build was configured with.
    cmake --install "$tmp/build-$kind" --prefix "$prefix" >"$tmp/install-$kind.log" ||
        { cat "$tmp/install-$kind.log"; fail "install ($kind)"; }
    fi

    # Where GNUInstallDirs put things (lib, lib64 or lib/<multiarch>).
    pc=$(find "$prefix"/lib* -name cctx.pc -print -quit)
    [[ -n "$pc" ]] || fail "cctx.pc was not installed"
    libdir=$(dirname "$(dirname "$pc")")
    [[ -f "$prefix/include/cctx.h" ]] || fail "include/cctx.h was not installed"
    [[ -f "$prefix/include/cctx/testing.h" ]] || fail "include/cctx/testing.h was not installed"
    [[ -f "$libdir/cmake/cctx/cctxConfig.cmake" ]] || fail "cctxConfig.cmake was not installed"
    if [[ "$kind" == static ]]; then
        [[ -f "$libdir/libcctx.a" ]] || fail "libcctx.a was not installed"
        [[ ! -e "$libdir/libcctx.so" ]] || fail "a static build installed libcctx.so"
        for archive in "$libdir"/libcctx*.a; do
            prefixed_only "$archive"
        done
    else
        [[ -e "$libdir/libcctx.so" ]] || fail "libcctx.so was not installed"
        [[ ! -e "$libdir/libcctx.a" ]] || fail "a shared build installed libcctx.a"
        # Only the public API is exported, each library its own headers'.
        core_headers=()
        for h in "$prefix/include/cctx.h" "$prefix"/include/cctx/*.h; do
            case $h in */mhd.h | */curl.h) ;; *) core_headers+=("$h") ;; esac
        done
        exports_exactly "$libdir/libcctx.so" "${core_headers[@]}"
        for part in mhd curl; do
            [[ ! -e "$libdir/libcctx-$part.so" ]] ||
                exports_exactly "$libdir/libcctx-$part.so" "$prefix/include/cctx/$part.h"
        done
    fi
    [[ -n $installed ]] || echo "installed: $(cd "$prefix" && find . -type f | sort | tr '\n' ' ')"
    if [[ -z $installed ]] && grep -rl /nonexistent/cctx "$prefix" >/dev/null; then
        fail "installed files name the configure-time prefix: $(grep -rl /nonexistent/cctx "$prefix" | tr '\n' ' ')"
    fi
    http=OFF
    if [[ -f "$prefix/include/cctx/mhd.h" && -f "$prefix/include/cctx/curl.h" ]]; then
        http=ON
    elif [[ ${CI:-} == true ]]; then
        fail "the HTTP integrations were not built (CI=true: they must be)"
    else
        echo "the HTTP integrations were not built here: their consumer is skipped"
    fi

    step "$kind: find_package(cctx) + cctx::cctx"
    cmake -S "$here" -B "$tmp/consumer-cmake-$kind" \
        -DCMAKE_BUILD_TYPE="$build_type" \
        -DCMAKE_PREFIX_PATH="$prefix" -DCONSUMER_HTTP=$http \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$tmp/consumer-configure-$kind.log" ||
        { cat "$tmp/consumer-configure-$kind.log"; fail "configure the consumer ($kind)"; }
    cmake --build "$tmp/consumer-cmake-$kind" -j "$jobs"
    bin=$tmp/consumer-cmake-$kind/consumer
    needs_libcctx "$bin" "$([[ $kind == shared ]] && echo yes || echo no)"
    # The CMake build records the library's directory as its RPATH: no
    # LD_LIBRARY_PATH needed.
    (unset LD_LIBRARY_PATH; run_and_compare "$bin")
    if [[ $http == ON ]]; then
        (unset LD_LIBRARY_PATH; run_and_compare "$bin-http" http-expected.txt)
    fi

    if [[ $http == ON ]]; then
        # An optional component whose dependency is missing is not found;
        # the package itself still is. A required one fails, naming it.
        log=$tmp/consumer-optional-$kind.log
        cmake -S "$here" -B "$tmp/consumer-optional-$kind" -DCMAKE_PREFIX_PATH="$prefix" \
            -DCONSUMER_OPTIONAL=ON -DCMAKE_DISABLE_FIND_PACKAGE_CURL=ON \
            -DPKG_CONFIG_EXECUTABLE=/nonexistent/pkg-config >"$log" 2>&1 ||
            { cat "$log"; fail "find_package(cctx OPTIONAL_COMPONENTS mhd curl) without libcurl and pkg-config"; }
        grep -q "consumer: cctx_FOUND=1 mhd=FALSE curl=FALSE" "$log" ||
            { cat "$log"; fail "optional components without their dependencies: wrong answer"; }
        log=$tmp/consumer-required-$kind.log
        if cmake -S "$here" -B "$tmp/consumer-required-$kind" -DCMAKE_PREFIX_PATH="$prefix" \
            -DCONSUMER_HTTP=ON -DCMAKE_DISABLE_FIND_PACKAGE_CURL=ON >"$log" 2>&1; then
            fail "find_package(cctx COMPONENTS mhd curl) succeeded without libcurl"
        fi
        grep -q "libcurl 7.68 or later" "$log" || { cat "$log"; fail "the missing libcurl was not named"; }
        echo "a component whose dependency is missing: not found, the core still is; required, it fails"
        log=$tmp/consumer-misspelled-$kind.log
        if cmake -S "$here" -B "$tmp/consumer-misspelled-$kind" -DCMAKE_PREFIX_PATH="$prefix" \
            -DCONSUMER_COMPONENTS=mdh >"$log" 2>&1; then
            fail "find_package(cctx COMPONENTS mdh) succeeded"
        fi
        grep -q "cctx has no component 'mdh'" "$log" || { cat "$log"; fail "the misspelled component was not named"; }
        echo "a misspelled component: refused, and named"
    fi

    # Before 1.0 a minor version may break the API: asking for an older one
    # must fail, not link against an incompatible library.
    if cmake -S "$here" -B "$tmp/consumer-old-$kind" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCONSUMER_WANTS=0.2 >"$tmp/consumer-old-$kind.log" 2>&1; then
        fail "find_package(cctx 0.2) accepted version $(grep -o 'VERSION [0-9.]*' "$src/CMakeLists.txt" | head -1)"
    fi
    echo "find_package(cctx 0.2) refuses this version, as it should"

    step "$kind: pkg-config"
    pkgflags=(--cflags --libs)
    [[ "$kind" == static ]] && pkgflags+=(--static)
    flags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config "${pkgflags[@]}" cctx) ||
        fail "pkg-config ${pkgflags[*]} cctx"
    echo "pkg-config ${pkgflags[*]} cctx: $flags"
    bin=$tmp/consumer-pc-$kind
    # Strict ISO C11 here (the CMake build above uses the default dialect): the
    # public headers must not need GNU mode.
    # shellcheck disable=SC2086 # pkg-config output is meant to be split
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$bin" "$here/main.c" $flags
    needs_libcctx "$bin" "$([[ $kind == shared ]] && echo yes || echo no)"
    if [[ "$kind" == shared ]]; then
        LD_LIBRARY_PATH="$libdir" run_and_compare "$bin"
    else
        run_and_compare "$bin"
    fi
    if [[ $http == ON ]]; then
        # Without --static even for the static cctx libraries: Debian ships
        # no static build of much of libcurl's and libmicrohttpd's closure,
        # so a user links libcctx*.a with the shared system libraries, which
        # their .pc files name in Requires.
        flags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs cctx-mhd cctx-curl) ||
            fail "pkg-config --cflags --libs cctx-mhd cctx-curl"
        echo "pkg-config --cflags --libs cctx-mhd cctx-curl: $flags"
        # shellcheck disable=SC2086 # pkg-config output is meant to be split
        "$cc" -std=c11 -Wall -Wextra -Werror -o "$bin-http" "$here/http.c" $flags
        LD_LIBRARY_PATH="$libdir" run_and_compare "$bin-http" http-expected.txt
    fi
done

if [[ -n $installed ]]; then
    printf '\nconsumer [%s]: PASS (the library installed in %s)\n' "$build_type" "$installed"
    exit 0
fi
step "as a subproject (add_subdirectory): only the libraries, no tests of its own"
mkdir -p "$tmp/super"
cat >"$tmp/super/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(super LANGUAGES C)
enable_testing()
add_subdirectory("$src" cctx)
add_executable(consumer "$here/main.c")
target_link_libraries(consumer PRIVATE cctx::cctx)
add_test(NAME super_consumer COMMAND consumer)
EOF
cmake -S "$tmp/super" -B "$tmp/super/build" -DCMAKE_BUILD_TYPE="$build_type" \
    >"$tmp/super-configure.log" || { cat "$tmp/super-configure.log"; fail "configure the superproject"; }
cmake --build "$tmp/super/build" -j "$jobs" >"$tmp/super-build.log" ||
    { cat "$tmp/super-build.log"; fail "build the superproject"; }
tests=$(ctest --test-dir "$tmp/super/build" -N | awk '/Total Tests:/ {print $3}')
[[ "$tests" == 1 ]] || fail "the superproject lists $tests tests, expected only its own"
run_and_compare "$tmp/super/build/consumer"

# Once (with the Release run): it does not depend on the build type.
if [[ $build_type == Release ]]; then
    step "as a subproject: the parent's build type, warnings and install stay its own"
    # A parent with no build type, ISO C's warnings as errors, shared
    # libraries, and an assert: cctx must build under those flags, leave the
    # build type (and so the parent's asserts) alone, and add to the parent's
    # install only the run-time files its program loads.
    mkdir -p "$tmp/parent"
    cat >"$tmp/parent/app.c" <<'EOF'
#include <assert.h>
#include <cctx.h>
int main(void)
{
    assert(!"the parent's assert");
    return cctx_err(cctx_background());
}
EOF
    cat >"$tmp/parent/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(parent LANGUAGES C)
add_subdirectory("$src" cctx)
add_executable(app app.c)
target_link_libraries(app PRIVATE cctx::cctx)
install(TARGETS app)
EOF
    cmake -S "$tmp/parent" -B "$tmp/parent/build" -DCMAKE_C_FLAGS="-Wall -Wextra -Wpedantic -Werror" \
        -DBUILD_SHARED_LIBS=ON \
        >"$tmp/parent-configure.log" || { cat "$tmp/parent-configure.log"; fail "configure the parent"; }
    grep -q '^CMAKE_BUILD_TYPE:STRING=$' "$tmp/parent/build/CMakeCache.txt" ||
        fail "cctx set the parent's build type: $(grep '^CMAKE_BUILD_TYPE' "$tmp/parent/build/CMakeCache.txt")"
    cmake --build "$tmp/parent/build" -j "$jobs" >"$tmp/parent-build.log" 2>&1 ||
        { grep -E 'error|warning' "$tmp/parent-build.log" | head -n 20; fail "build under -Wpedantic -Werror"; }
    # It must abort; the subshell, not this shell, says so, to /dev/null.
    if ("$tmp/parent/build/app"; exit $?) 2>/dev/null; then
        fail "the parent's assert was compiled out"
    fi
    cmake --install "$tmp/parent/build" --prefix "$tmp/parent/inst" >"$tmp/parent-install.log" ||
        { cat "$tmp/parent-install.log"; fail "install the parent"; }
    # The program and the shared libraries' run-time files (no links for
    # the linker, headers, package files or tools).
    extra=$(cd "$tmp/parent/inst" && find . -type f -o -type l | sort |
        grep -v -E '^\./bin/app$|^\./lib[^/]*/libcctx(-mhd|-curl)?\.so\.[0-9.]+$' || true)
    [[ -z $extra ]] || fail "the subproject installed files of its own: $(echo $extra)"
    status=0
    (LD_LIBRARY_PATH=$(dirname "$(find "$tmp/parent/inst" -name 'libcctx.so.*' | head -n 1)") \
        "$tmp/parent/inst/bin/app"; exit $?) 2>/dev/null || status=$?
    [[ $status == 134 ]] || fail "the installed program did not run to its assert (status $status)"
fi

printf '\nconsumer [%s]: PASS (static and shared; find_package and pkg-config)\n' "$build_type"
