#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What the debugging switches cost: one cctx-bench binary built before a
# change (BASE) and one after (NEW), run side by side, NEW also with each
# switch on.
#
#   bench/overhead.sh BASE_BENCH NEW_BENCH OUTDIR [ROUNDS] [BENCH_REGEX...]
#
# For each round (default 5) it runs, one after the other: BASE; NEW with no
# switch; NEW with CCTX_DEBUG=trees; NEW with CCTX_DEBUG=leaks,checks; NEW
# with CCTX_TRACE; so that a change in load affects every column alike. Each
# cell of the table it prints is the median ns/op of the rounds. Raw lines are
# in OUTDIR/<column>.txt.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BASE_BENCH NEW_BENCH OUTDIR [ROUNDS] [BENCH_REGEX...]" >&2; exit 2; }
base=$1 new=$2 out=$3 rounds=${4:-5}
shift $(($# < 4 ? $# : 4))
# The hot paths: derive + cancel + release from a root and from a parent,
# deadlines, checking, waiting, values.
patterns=("$@")
[ ${#patterns[@]} -gt 0 ] || patterns=('CancelTree/depth=1$' 'CancelTree/depth=10$'
    'WithTimeout/concurrency=4000$' 'CheckCanceled' 'ContextCancelDone'
    'DeepValueSameGoRoutine/depth=10$' 'CommonParentCancel')
mkdir -p "$out"
columns=(base off trees leaks+checks trace)
for c in "${columns[@]}"; do : >"$out/$c.txt"; done

run() { # run COLUMN BINARY [ENV...]
    local col=$1 bin=$2
    shift 2
    for p in "${patterns[@]}"; do
        env "$@" "$bin" -bench "$p" -benchtime 300ms >>"$out/$col.txt" 2>>"$out/stderr.txt"
    done
}

for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    run base "$base"
    run off "$new"
    run trees "$new" CCTX_DEBUG=trees
    run leaks+checks "$new" CCTX_DEBUG=leaks,checks
    run trace "$new" CCTX_TRACE="$out/trace.json"
done

python3 - "$out" "${columns[@]}" <<'EOF'
import re, statistics, sys
out, cols = sys.argv[1], sys.argv[2:]
rows, order = {}, []
for c in cols:
    for line in open(f"{out}/{c}.txt"):
        m = re.match(r"Benchmark(\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
        if not m:
            continue
        name = m.group(1)
        if name not in rows:
            rows[name] = {}
            order.append(name)
        rows[name].setdefault(c, []).append(float(m.group(3)))
print("| Benchmark | " + " | ".join(f"{c} ns/op" for c in cols) + " | off/base |")
print("|---|" + "---:|" * (len(cols) + 1))
for name in order:
    med = {c: statistics.median(v) for c, v in rows[name].items()}
    cells = [f"{med[c]:.1f}" if c in med else "-" for c in cols]
    ratio = f"{med['off'] / med['base']:.2f}" if "off" in med and "base" in med else "-"
    print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
EOF
