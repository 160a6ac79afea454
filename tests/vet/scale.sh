#!/bin/sh
# SPDX-License-Identifier: MIT
# The path search grows with the function, not with its square: one function
# with 6000 guarded cctx_ref/cctx_release pairs, then a leak, is checked
# within 15 s (before, where each release's line made a state of its own,
# 6000 pairs took minutes).
# And 30000 silenced blocking calls in one function, within 15 s: a second
# each before, where every call found the place of its macro call, a walk of the
# whole function, before asking whether it was the library's.
# And 20000 silenced dropped derivations in one function, within 15 s of
# their own: each derivation's name is read from the macro call that wrote
# it, and finding that call with clang_getCursor, a walk of the function,
# made them quadratic (67 s; now about 1 s).
# And 10000 guarded derivations of one variable, each tested and released,
# then a leak, within 15 s: where each derivation's line told the states of
# its released context apart, they made n^2 states (4000 took 34 s).
# And 10000 variables, each made, tested and released in a block of its
# own, within 15 s: each variable's search walked the whole function, and
# each use looked its variable up among all of them (4000 took 9 s).
# And 10000 guarded, silenced releases of one CCTX_AUTO variable, then one
# more, within 15 s: its released states are told apart by the release's
# line only while it has few releases (3000 took 22 s without that bound).
# usage: scale.sh CCTX_VET INCLUDE_DIR WORK_DIR
vet=$1 inc=$2 work=$3
mkdir -p "$work" || exit 1
file=$work/pairs.c
{
    printf '#include <cctx.h>\nint work(cctx_t *ctx);\nint big(cctx_t *parent, int n)\n{\n'
    printf '    cctx_t *c = cctx_with_cancel(parent, NULL);\n    if (!c)\n        return -1;\n'
    i=0
    while [ $i -lt 6000 ]; do
        printf '    if (n == %d) {\n        cctx_ref(c);\n        cctx_release(c);\n    }\n' $i
        i=$((i + 1))
    done
    printf '    if (work(c) < 0)\n        return -1;\n    cctx_release(c);\n    return 0;\n}\n'
} >"$file"
start=$(date +%s)
out=$("$vet" "$file" -- -std=gnu11 -I"$inc")
rc=$?
took=$(($(date +%s) - start))
n=$(printf '%s\n' "$out" | grep -c 'cctx-vet:lostrelease')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { printf '%s\n' "$out"; echo "FAIL: status $rc, $n findings"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 6000 pairs took $took s (at most 15)"; exit 1; }
echo "6000 pairs and a leak: the leak found, in $took s"

file=$work/blocking.c
{
    printf '#include <cctx.h>\n#include <unistd.h>\nint big(cctx_t *parent, int n)\n{\n'
    i=0
    while [ $i -lt 30000 ]; do
        printf '    if (n == %d)\n        usleep(1); // cctx-vet:ignore=blocking\n' $i
        i=$((i + 1))
    done
    printf '    return 0;\n}\n'
} >"$file"
start=$(date +%s)
out=$("$vet" "$file" -- -std=gnu11 -I"$inc")
rc=$?
took=$(($(date +%s) - start))
[ "$rc" -eq 0 ] && [ -z "$out" ] || { printf '%s\n' "$out"; echo "FAIL: status $rc"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 30000 silenced blocking calls took $took s (at most 15)"; exit 1; }
echo "30000 silenced blocking calls: nothing to say, in $took s"

file=$work/derivations.c
{
    printf '#include <cctx.h>\nint big(cctx_t *parent, int n)\n{\n'
    i=0
    while [ $i -lt 20000 ]; do
        printf '    if (n == %d)\n        cctx_with_cancel(parent, NULL); // cctx-vet:ignore=unchecked\n' $i
        i=$((i + 1))
    done
    printf '    return 0;\n}\n'
} >"$file"
start=$(date +%s)
out=$("$vet" "$file" -- -std=gnu11 -I"$inc")
rc=$?
took=$(($(date +%s) - start))
[ "$rc" -eq 0 ] && [ -z "$out" ] || { printf '%s\n' "$out"; echo "FAIL: status $rc"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 20000 derivations took $took s (at most 15)"; exit 1; }
echo "20000 silenced derivations: nothing to say, in $took s"

file=$work/rederived.c
{
    printf '#include <cctx.h>\nint work(cctx_t *ctx);\nint big(cctx_t *parent, int n)\n{\n'
    printf '    cctx_t *c;\n'
    i=0
    while [ $i -lt 10000 ]; do
        printf '    if (n == %d) {\n        c = cctx_with_cancel(parent, NULL);\n' $i
        printf '        if (c == NULL)\n            return -1;\n        work(c);\n'
        printf '        cctx_release(c);\n    }\n'
        i=$((i + 1))
    done
    printf '    c = cctx_with_cancel(parent, NULL);\n    if (work(c) < 0)\n        return -1;\n'
    printf '    cctx_release(c);\n    return 0;\n}\n'
} >"$file"
start=$(date +%s)
out=$("$vet" "$file" -- -std=gnu11 -I"$inc")
rc=$?
took=$(($(date +%s) - start))
n=$(printf '%s\n' "$out" | grep -c 'cctx-vet:lostrelease')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { printf '%s\n' "$out"; echo "FAIL: status $rc, $n findings"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 10000 derivations of one variable took $took s (at most 15)"; exit 1; }
echo "10000 derivations of one variable and a leak: the leak found, in $took s"

file=$work/blocks.c
{
    printf '#include <cctx.h>\nint work(cctx_t *ctx);\nint big(cctx_t *parent, int n)\n{\n'
    i=0
    while [ $i -lt 10000 ]; do
        printf '    if (n == %d) {\n        cctx_t *c = cctx_with_cancel(parent, NULL);\n' $i
        printf '        if (!c)\n            return -1;\n        work(c);\n'
        printf '        cctx_release(c);\n    }\n'
        i=$((i + 1))
    done
    printf '    cctx_t *c = cctx_with_cancel(parent, NULL);\n    if (work(c) < 0)\n        return -1;\n'
    printf '    cctx_release(c);\n    return 0;\n}\n'
} >"$file"
start=$(date +%s)
out=$("$vet" "$file" -- -std=gnu11 -I"$inc")
rc=$?
took=$(($(date +%s) - start))
n=$(printf '%s\n' "$out" | grep -c 'cctx-vet:lostrelease')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { printf '%s\n' "$out"; echo "FAIL: status $rc, $n findings"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 10000 variables in blocks of their own took $took s (at most 15)"; exit 1; }
echo "10000 variables in blocks of their own and a leak: the leak found, in $took s"

file=$work/autoreleases.c
{
    printf '#include <cctx.h>\nint big(cctx_t *parent, int n)\n{\n'
    printf '    CCTX_AUTO cctx_t *c = cctx_ref(parent);\n'
    i=0
    while [ $i -lt 10000 ]; do
        printf '    if (n == %d)\n        cctx_release(c); // cctx-vet:ignore=doublerelease\n' $i
        i=$((i + 1))
    done
    printf '    cctx_release(c);\n    return 0;\n}\n'
} >"$file"
start=$(date +%s)
out=$("$vet" "$file" -- -std=gnu11 -I"$inc")
rc=$?
took=$(($(date +%s) - start))
n=$(printf '%s\n' "$out" | grep -c 'cctx-vet:doublerelease')
[ "$rc" -eq 1 ] && [ "$n" -eq 1 ] || { printf '%s\n' "$out"; echo "FAIL: status $rc, $n findings"; exit 1; }
[ "$took" -le 15 ] || { echo "FAIL: 10000 releases of one CCTX_AUTO variable took $took s (at most 15)"; exit 1; }
echo "10000 releases of one CCTX_AUTO variable and one more: that one found, in $took s"
