#!/bin/sh
# SPDX-License-Identifier: MIT
# Requests per second of a trivial handler through cctx-mhd, beside the same
# handler on bare libmicrohttpd with the same thread model (bare.c), under
# wrk. Prints Go benchmark lines (ns/op = 1e9 / requests per second, with
# req/s and wrk's p99 latency as extra metrics) and the ratio.
#
#   bench/mhd/compare.sh BUILD_DIR [DURATION] [CONNECTIONS] [ROUNDS]
#   e.g. bench/mhd/compare.sh build-rel 3s 16 5
# Each round runs both servers, alternating which goes first; the median
# round of each is reported (by requests per second), with its p99.
set -eu
build=${1:?usage: compare.sh BUILD_DIR [DURATION] [CONNECTIONS] [ROUNDS]}
dur=${2:-3s}
conns=${3:-16}
rounds=${4:-5}
cctx_bin=$build/src/mhd/cctx-mhd-bench
bare_bin=$build/src/mhd/cctx-mhd-bare
command -v wrk >/dev/null || { echo "wrk not found" >&2; exit 77; }
for b in "$cctx_bin" "$bare_bin"; do
  [ -x "$b" ] || { echo "$b not built" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The server's CPU time so far (user + system, in clock ticks).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME BINARY-AND-ARGS...: starts the server on a free port, runs wrk,
# appends "rps p99_us cpu_us_per_request" to $tmp/NAME. CPU time per request
# is the figure a loaded machine disturbs least: it counts what the server
# spent, not how long it waited for a core.
run() {
  name=$1; shift
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + $$ % 20000)))
  mkfifo "$tmp/in"
  "$@" "$port" <"$tmp/in" >/dev/null &
  pid=$!
  exec 3>"$tmp/in"
  i=0
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "$name did not start" >&2; exit 1; }
    sleep 0.05
  done
  cpu0=$(cpu_ticks $pid)
  wrk -t1 -c"$conns" -d"$dur" --latency "http://127.0.0.1:$port/" >"$tmp/wrk"
  cpu1=$(cpu_ticks $pid)
  exec 3>&-
  wait $pid
  rm -f "$tmp/in"
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); print v} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000}}' "$tmp/wrk")
  reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk")
  cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
  echo "$rps $p99 $cpu" >>"$tmp/$name"
}

r=0
while [ $r -lt "$rounds" ]; do
  if [ $((r % 2)) -eq 0 ]; then
    run bare "$bare_bin"; run cctx "$cctx_bin" serve
  else
    run cctx "$cctx_bin" serve; run bare "$bare_bin"
  fi
  r=$((r + 1))
done

median() { sort -k1 -g "$tmp/$1" | awk '{l[NR] = $0} END {print l[int((NR + 1) / 2)]}'; }
echo "# rounds (req/s p99-us cpu-us/req): bare: $(tr '\n' ',' <"$tmp/bare") cctx: $(tr '\n' ',' <"$tmp/cctx")"
median_cpu() { sort -k3 -g "$tmp/$1" | awk '{l[NR] = $3} END {print l[int((NR + 1) / 2)]}'; }
set -- $(median bare); bare_rps=$1; bare_p99=$2
set -- $(median cctx); cctx_rps=$1; cctx_p99=$2
bare_cpu=$(median_cpu bare); cctx_cpu=$(median_cpu cctx)
awk -v br="$bare_rps" -v bp="$bare_p99" -v cr="$cctx_rps" -v cp="$cctx_p99" -v c="$conns" \
    -v bc="$bare_cpu" -v cc="$cctx_cpu" 'BEGIN {
  printf "BenchmarkMHD/bare/wrk-c%d 1 %.0f ns/op %.0f req/s %.0f p99-us %.2f cpu-us/req\n", c, 1e9 / br, br, bp, bc
  printf "BenchmarkMHD/cctx/wrk-c%d 1 %.0f ns/op %.0f req/s %.0f p99-us %.2f cpu-us/req\n", c, 1e9 / cr, cr, cp, cc
  printf "# cctx-mhd / bare: %.1f%% of the requests per second (%+.1f%%); %+.1f%% server CPU per request\n", 100 * cr / br, 100 * (cr - br) / br, 100 * (cc - bc) / bc
}'
