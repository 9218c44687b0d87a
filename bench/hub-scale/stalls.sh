#!/usr/bin/env bash
# Finds what held up the slowest container start of a hub-scale run.
#
# Runs one round of the hub-scale bench (AGENTS, default 10000) with
# `perf record -a` over its measuring window, then prints, around the
# slowest start, what every thread of the hub, the simulator and the UI
# clients was doing (`stalls.py`). A stall that all clients see alike is
# the hub's or the simulator's; threads that do nothing while the machine
# idles are waiting on a lock.
#
#   bash bench/hub-scale/stalls.sh [BENCH_BINARY]
#
# BENCH_BINARY defaults to the newest target/release/deps/hub_scale-*
# (build it with `cargo build --release -p twinbay --bench hub_scale`;
# `strip = "debuginfo"` keeps the symbols perf needs). Needs `perf` and
# kernel.perf_event_paranoid <= 1 (or root). Output goes to $OUT
# (default a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=${1:-$(ls -t target/release/deps/hub_scale-* 2>/dev/null | grep -v '\.d$' | head -1)}
[ -x "$bench" ] || { echo "no hub_scale bench binary; build it first" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
out=${OUT:-$(mktemp -d /tmp/twinbay-stalls.XXXXXX)}
mkdir -p "$out"
steady=${STEADY_SECS:-30}
SLOWEST=1 AGENTS=${AGENTS:-10000} RESTART_AT=0 STEADY_SECS=$steady "$bench" --bench >"$out/bench.log" 2>&1 &
pid=$!
until grep -q '^settled' "$out/bench.log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$out/bench.log"; echo "the bench ended early" >&2; exit 1; }
    sleep 0.5
done
# Which process is which (both the hub and the simulator are `twinbay`).
pgrep -a twinbay >"$out/processes" || true
echo "$pid bench" >>"$out/processes"
perf record -a -F 499 -k CLOCK_REALTIME -o "$out/perf.data" -- sleep $((steady + 4)) >"$out/perf.log" 2>&1
wait "$pid"
perf script -i "$out/perf.data" -F pid,tid,time,ip,sym 2>/dev/null >"$out/samples.txt"
grep -E 'slow:|^ *[0-9]+ +[0-9.]+ +[0-9]+' "$out/bench.log" || true
python3 bench/hub-scale/stalls.py "$out/bench.log" "$out/processes" "$out/samples.txt"
echo "(all of it in $out)"
