#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs cctx-vet on one corpus file and compares its findings, as rule@line,
# with the file's first line: "// expect: rule@line ..." or "// expect: none".
# An optional second line "// args: ..." gives cctx-vet options. Each line
# "// says: TEXT" names a text that some finding's message must hold.
# usage: run.sh CCTX_VET FILE INCLUDE_DIR
vet=$1 file=$2 inc=$3
expect=$(sed -n '1s|^// expect: *||p' "$file")
if [ -z "$expect" ]; then
    echo "$file: the first line names no expected findings"
    exit 1
fi
args=$(sed -n '2s|^// args: *||p' "$file")
# shellcheck disable=SC2086 # args is a list of options
out=$("$vet" $args "$file" -- -std=gnu11 -D_GNU_SOURCE -I"$inc")
rc=$?
[ -z "$out" ] || printf "%s\n" "$out"
got=$(printf '%s\n' "$out" |
    sed -n 's|^[^:]*:\([0-9]*\):[0-9]*: warning: .*\[cctx-vet:\([a-z-]*\)\]$|\2@\1|p' |
    sort | tr '\n' ' ')
want=""
[ "$expect" = none ] || want=$(printf '%s\n' $expect | sort | tr '\n' ' ')
if [ "$got" != "$want" ]; then
    echo "FAIL $file"
    echo "  expected: ${want:-none}"
    echo "  got:      ${got:-none}"
    exit 1
fi
says=$(sed -n 's|^// says: *||p' "$file")
if [ -n "$says" ]; then
    missing=$(printf '%s\n' "$says" | while IFS= read -r text; do
        printf '%s\n' "$out" | grep -qF -- "$text" || printf '%s\n' "$text"
    done)
    if [ -n "$missing" ]; then
        echo "FAIL $file: no finding says"
        printf '%s\n' "$missing" | sed 's|^|  |'
        exit 1
    fi
fi
want_rc=0
[ -z "$want" ] || want_rc=1
if [ "$rc" -ne "$want_rc" ]; then
    echo "FAIL $file: exit status $rc, expected $want_rc"
    exit 1
fi
echo "ok $file: ${want:-no findings}"
