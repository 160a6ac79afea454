#!/bin/sh
# SPDX-License-Identifier: MIT
# A file of many findings is reported in time about linear in their number:
# 80000 calls of cctx_background() in a function handed 16 contexts, each
# call a finding reported once for each of them (1.3 million reports, 80000
# findings), within 15 s (about 1.5 s now, 3 s under AddressSanitizer).
# Before, each report was compared with every finding of its file reported
# before it, and each finding kept with every one kept before it when the
# comments were read: 60000 calls took 18 s, 80000 took 40 s.
# usage: scale_findings.sh CCTX_VET INCLUDE_DIR WORK_DIR
vet=$1 inc=$2 work=$3
mkdir -p "$work" || exit 1
file=$work/findings.c
awk 'BEGIN {
    printf "#include <cctx.h>\nvoid big("
    for (i = 0; i < 16; i++)
        printf "%scctx_t *c%d", i ? ", " : "", i
    printf ")\n{\n"
    for (i = 0; i < 80000; i++)
        printf "    cctx_background();\n"
    printf "}\n"
}' >"$file"
start=$(date +%s)
"$vet" "$file" -- -std=gnu11 -I"$inc" >"$work/findings.out"
rc=$?
took=$(($(date +%s) - start))
n=$(grep -c 'cctx-vet:background' "$work/findings.out")
[ "$rc" -eq 1 ] && [ "$n" -eq 80000 ] || { echo "FAIL: status $rc, $n findings"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 80000 findings took $took s (at most 15)"; exit 1; }
echo "80000 findings in one file, each reported 16 times: each one kept once, in $took s"
