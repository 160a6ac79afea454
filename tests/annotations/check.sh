#!/bin/sh
# SPDX-License-Identifier: MIT
# Compiles ignored_results.c with -DCCTX_VET and checks that the compiler
# warns on every line of it that throws away an owned context: a call whose
# declaration lacks CCTX__OWNED fails this test.
#
#   check.sh CC INCLUDE_DIR
set -u
cc=$1 inc=$2
src=$(dirname "$0")/ignored_results.c
# Not -fsyntax-only: GCC warns about unused results only when it compiles.
# It reports the warning at the macro's definition in the header and the
# call's line in a "note: in expansion of macro"; Clang the other way round.
out=$("$cc" -std=gnu11 -DCCTX_VET -Wunused-result -c -o /dev/null -I "$inc" "$src" 2>&1)
status=0
if printf '%s\n' "$out" | grep -q 'error:'; then
    echo "ignored_results.c does not compile"
    status=1
fi
calls=0
for line in $(grep -n '^    cctx_with' "$src" | cut -d: -f1); do
    calls=$((calls + 1))
    if ! printf '%s\n' "$out" | grep -q "ignored_results\.c:$line:[0-9]*: \(warning\|note\)"; then
        echo "no warning for the ignored result on line $line: $(sed -n "${line}p" "$src")"
        status=1
    fi
done
[ "$calls" -ge 8 ] || { echo "found only $calls calls in $src"; status=1; }
if ! printf '%s\n' "$out" | grep -q 'Wunused-result'; then
    echo "no unused-result warning at all"
    status=1
fi
[ $status -eq 0 ] || printf '%s\n' "--- compiler output:" "$out"
exit $status
