#!/bin/sh
# SPDX-License-Identifier: MIT
# Go's own context benchmarks (GOROOT's src/context/benchmark_test.go), the
# reference figures for cctx-bench, and bench/go: Go's side of cctx-bench
# rows that Go's file lacks (DeadlineLateness/timers=100000).
#
#   bench/run-go.sh [go test flags]
#       Runs `go test -run XXX -bench . -benchmem` on both; extra flags go to
#       go test, e.g. -benchtime 200ms, -count 5, -bench CancelTree.
#
#   bench/run-go.sh --compare CCTX_BENCH OUTDIR [ROUNDS [STOP_TOKEN_BENCH]]
#       For each benchmark cctx-bench has, runs Go's twin and then cctx's,
#       ROUNDS times (default 5), alternating, so that load drifting on a shared
#       machine hits both sides alike. Raw lines go to OUTDIR/go.txt and
#       OUTDIR/cctx.txt (both benchstat-readable); the table of medians that
#       BENCHMARKS.md shows goes to stdout.
#       With STOP_TOKEN_BENCH (bench/cpp's cctx-bench-stop-token), each round
#       also runs its twin of the same name, where it has one, after cctx's,
#       into OUTDIR/stop_token.txt, and the table gains two last columns,
#       "stop_token ns/op" and "stop_token/cctx" (empty where there is no
#       twin); without it the table is as before.
#
# Needs no network: GOROOT's std package only, with a private build cache.
set -eu
GO=${GO:-/usr/lib/go-1.19/bin/go}
twins=$(cd "$(dirname "$0")/go" && pwd)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
export GOCACHE="$tmp/cache" GOPATH="$tmp/gopath" GOFLAGS= GOPROXY=off GO111MODULE=off GOTOOLCHAIN=local

if [ "${1:-}" != "--compare" ]; then
    cd "$tmp"
    "$GO" test -run XXX -bench . -benchmem "$@" context
    cd "$twins"
    "$GO" test -run XXX -bench . -benchmem "$@" .
    exit
fi

[ $# -ge 3 ] && [ $# -le 5 ] ||
    { echo "usage: $0 --compare CCTX_BENCH OUTDIR [ROUNDS [STOP_TOKEN_BENCH]]" >&2; exit 2; }
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
# The names a harness binary prints, without the -N suffix.
names() { "$1" -benchtime 1x | sed -n 's/^\(Benchmark[^ 	]*\)-[0-9]*[ 	].*/\1/p'; }
cctx=$(abspath "$2")
out=$3
rounds=${4:-5}
stop=
stop_names=
if [ -n "${5:-}" ]; then
    stop=$(abspath "$5")
    stop_names=" $(names "$stop" | tr '\n' ' ') "
fi
mkdir -p "$out"
: > "$out/go.txt"
: > "$out/cctx.txt"
[ -z "$stop" ] || : > "$out/stop_token.txt"
(cd "$tmp" && "$GO" test -c -o "$tmp/context.test" context)
(cd "$twins" && "$GO" test -c -o "$tmp/twins.test" .)
"$cctx" -benchtime 1x | grep -E '^# (heap|cctx-bench)' > "$out/notes.txt"
# Each level of a name anchored, as go test and cctx-bench split -bench at '/'.
for name in $(names "$cctx"); do
    pat=$(echo "$name" | sed 's#\([^/]*\)#^\1$#g')
    case $stop_names in *" $name "*) twin=$stop ;; *) twin= ;; esac
    i=0
    while [ $i -lt "$rounds" ]; do
        # A name is in one of the two Go binaries at most; the other prints
        # no line for it.
        for t in context.test twins.test; do
            (cd "$tmp" && "./$t" -test.run XXX -test.bench "$pat" -test.benchmem) |
                grep '^Benchmark' >> "$out/go.txt" || true
        done
        "$cctx" -bench "$pat" | grep -E '^(Benchmark|# Benchmark)' >> "$out/cctx.txt"
        [ -z "$twin" ] ||
            "$twin" -bench "$pat" | grep -E '^(Benchmark|# Benchmark)' >> "$out/stop_token.txt"
        i=$((i + 1))
    done
done

# Medians per benchmark and the ratios Go/cctx and stop_token/cctx, as a
# Markdown table; the stop_token columns only when its file is given.
awk -v st="$stop" '
function num(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.3g", x) }
function median(key, n,   i, j, t, a) {
    for (i = 1; i <= n; i++) a[i] = vals[key, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# Each figure by its unit, not its column: a Go benchmark may report more
# metrics (p50-ns, p99-ns) between ns/op and B/op.
function unit(u,   i) { for (i = 3; i < NF; i++) if ($(i + 1) == u) return $i + 0; return 0 }
/^Benchmark/ && $4 == "ns/op" {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
    side = FILENAME ~ /go\.txt$/ ? "go" : FILENAME ~ /stop_token\.txt$/ ? "st" : "cctx"
    if (!((side, name) in cnt)) { cnt[side, name] = 0; if (!(name in seen)) { seen[name] = 1; order[++norder] = name } }
    k = ++cnt[side, name]
    vals[side "ns" SUBSEP name, k] = $3 + 0
    vals[side "b" SUBSEP name, k] = unit("B/op")
    vals[side "a" SUBSEP name, k] = unit("allocs/op")
}
END {
    print "| Benchmark | Go ns/op | cctx ns/op | Go/cctx | Go B/op | cctx B/op | Go allocs/op | cctx allocs/op |" (st ? " stop_token ns/op | stop_token/cctx |" : "")
    print "|---|---:|---:|---:|---:|---:|---:|---:|" (st ? "---:|---:|" : "")
    for (i = 1; i <= norder; i++) {
        name = order[i]; g = cnt["go", name] + 0; c = cnt["cctx", name] + 0; s = cnt["st", name] + 0
        if (!c)
            continue
        cns = median("cctxns" SUBSEP name, c)
        if (g) {
            gns = median("gons" SUBSEP name, g)
            row = sprintf("| %s | %s | %s | %.2fx | %d | %d | %d | %d |", name, num(gns), num(cns), gns / cns,
                median("gob" SUBSEP name, g), median("cctxb" SUBSEP name, c),
                median("goa" SUBSEP name, g), median("cctxa" SUBSEP name, c))
        } else {
            row = sprintf("| %s | | %s | | | %d | | %d |", name, num(cns),
                median("cctxb" SUBSEP name, c), median("cctxa" SUBSEP name, c))
        }
        if (st && s) {
            sns = median("stns" SUBSEP name, s)
            row = row sprintf(" %s | %.2fx |", num(sns), sns / cns)
        } else if (st) {
            row = row " | |"
        }
        print row
    }
}' "$out/go.txt" "$out/cctx.txt" ${stop:+"$out/stop_token.txt"}
