#!/bin/sh
# SPDX-License-Identifier: MIT
# Code nested deep, as generated code is, never crashes the checker: an
# expression of 16,000 terms (which clang parses) is checked, and a function
# nested deeper than the checker lowers (50,000 levels) is skipped with a
# message and status 2, the file's other functions still checked.
# usage: deep.sh CCTX_VET INCLUDE_DIR WORK_DIR
vet=$1 inc=$2 work=$3
if [ -n "${VET_DEEP_SKIP:-}" ]; then
    echo "skipped in this build: $VET_DEEP_SKIP"
    exit 77
fi
mkdir -p "$work" || exit 1
flat=$work/flat.c
{
    printf 'int f(int k)\n{\n    return k'
    i=0
    while [ $i -lt 16000 ]; do
        printf ' | k'
        i=$((i + 1))
    done
    printf ';\n}\n'
} >"$flat"
"$vet" "$flat" -- -std=gnu11
rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: an expression of 16,000 terms: status $rc"; exit 1; }
echo "an expression of 16,000 terms: checked"
nested=$work/nested.c
{
    printf '#include <cctx.h>\nint work(cctx_t *c);\nint deep(int k)\n{\n'
    awk 'BEGIN { n = 50001; for (i = 0; i < n; i++) printf "{"; printf "k++;"
                 for (i = 0; i < n; i++) printf "}"; printf "\n" }'
    printf '    return k;\n}\nint leak(cctx_t *p)\n{\n    cctx_t *c = cctx_with_cancel(p, NULL);\n'
    printf '    return work(c);\n}\n'
} >"$nested"
out=$("$vet" "$nested" -- -std=gnu11 -I"$inc" -fbracket-depth=60000 2>"$work/err")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'cctx-vet:lostrelease')
[ "$rc" -eq 2 ] && [ "$n" -eq 2 ] && grep -q 'deep is too complex to check' "$work/err" ||
    { cat "$work/err"; printf '%s\n' "$out"; echo "FAIL: nested 50,001 deep: status $rc, $n"; exit 1; }
echo "nested 50,001 deep: skipped, said, the other function checked"
