#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The two-tier HTTP demo under load, with clients that hang up at random.
#
#   usage: tests/load/http_demo.sh BUILD_DIR [SECONDS]      (default 10)
#
# Runs `cctx-http-demo --serve` (frontend + backend, two processes) with
# CCTX_DEBUG=leaks,strict, then for SECONDS at once:
#   - wrk (2 threads, 32 connections) on the frontend's /search, whose
#     requests call the backend;
#   - 4 loops of curl clients on /search?q=slow, each hanging up after a
#     random 10-190 ms (--max-time), so contexts end by disconnect at every
#     stage: queued, in the frontend's own work, during the call to the
#     backend.
# Then SIGTERM: the demo exits 0 only if both tiers drained, freed every
# context (strict: a leaked context is exit status 1) and closed every
# descriptor they opened. Prints wrk's latency distribution (p50, p99) and
# the number of hang-ups.
#
# The run fails unless wrk saw no socket error and no answer other than 2xx
# or 3xx, and got at least 50 answers a second (a tenth of what its 32
# connections get from a demo that answers in 50 ms): wrk's connections are
# not the ones that hang up, and /search answers 200, so any error wrk sees is
# the demo's. wrk waits up to 10 s for an answer (the frontend's longest
# budget) rather than its default 2 s, which a loaded machine can exceed. It
# also fails unless every curl client hung up (curl's exit status 28, its own
# --max-time): q=slow takes 5 s, so an earlier answer, a refused or a
# dropped connection is the demo's failure, and a run without a single
# hang-up tested none.
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [SECONDS]}
seconds=${2:-10}
demo=$build/examples/cctx-http-demo
[[ -x $demo ]] || { echo "no $demo (built without the HTTP integrations?)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cctx-load.XXXXXX")
demo_pid=
cleanup() {
    [[ -z $demo_pid ]] || kill "$demo_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# The demo's log goes to a file (it is long under load); its first URL line
# names the frontend.
CCTX_DEBUG=leaks,strict "$demo" --serve >"$tmp/demo.log" 2>&1 &
demo_pid=$!
url=
for _ in $(seq 100); do
    url=$(grep -m1 -o 'http://[^ ]*/search?q=x' "$tmp/demo.log" || true)
    [[ -n $url ]] && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/demo.log"; exit 1; }
    sleep 0.1
done
[[ -n $url ]] || { cat "$tmp/demo.log"; echo "the demo never printed its URL" >&2; exit 1; }
slow=${url%q=x}q=slow
echo "frontend: $url"

hang_ups() { # one client loop: each request hangs up after 10-190 ms
    local end=$(($(date +%s) + seconds)) rc
    while (($(date +%s) < end)); do
        rc=0
        curl -s -o /dev/null --max-time "0.$(printf '%02d' $((RANDOM % 19 + 1)))" "$slow" || rc=$?
        echo "$rc" # curl's exit status: 28 when it hung up
    done >"$tmp/curl.$1"
}
clients=()
for i in 1 2 3 4; do
    hang_ups "$i" &
    clients+=($!)
done
wrk -t2 -c32 -d"${seconds}s" --timeout 10s --latency "$url" | tee "$tmp/wrk.txt"
wait "${clients[@]}"
total=$(cat "$tmp"/curl.* | awk '$1 == 28 {n++} END {print n + 0}')
others=$(cat "$tmp"/curl.* | awk '$1 != 28 {n[$1]++} END {for (c in n) printf " %d x exit %s", n[c], c}')
echo "clients that hung up: $total${others:+; other curl exits:$others}"

kill -TERM "$demo_pid"
status=0
wait "$demo_pid" || status=$?
demo_pid=
echo "--- the demo's last lines:"
tail -n 8 "$tmp/demo.log"
grep -E 'leak|never released' "$tmp/demo.log" && { echo "FAIL: leaked contexts" >&2; exit 1; }
p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")
rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.txt")
requests=$(awk '$2 == "requests" && $3 == "in" {print $1}' "$tmp/wrk.txt")
echo "load: $requests requests, $rps requests/s, p50 $p50, p99 $p99, $total hang-ups; demo exit status $status"
[[ $status -eq 0 ]] || { echo "FAIL: the demo exited with status $status" >&2; exit 1; }
grep -E 'Non-2xx or 3xx responses|Socket errors' "$tmp/wrk.txt" &&
    { echo "FAIL: wrk saw errors (the lines above)" >&2; exit 1; }
((${requests:-0} >= 50 * seconds)) ||
    { echo "FAIL: ${requests:-no} requests answered, fewer than $((50 * seconds))" >&2; exit 1; }
((total > 0)) || { echo "FAIL: no client hung up" >&2; exit 1; }
[[ -z $others ]] || { echo "FAIL: curl clients that did not hang up:$others" >&2; exit 1; }
echo "PASS"
