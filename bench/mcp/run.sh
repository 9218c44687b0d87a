#!/usr/bin/env bash
# mcp: get_host and list_hosts latency through MCP (the official Python SDK
# over streamable HTTP, one session) against the same reads through the REST
# API (one keep-alive connection), with AGENTS simulated hosts on a real hub.
# Prints p50/p99 per read, then a summary table. Needs `pip install 'mcp>=2'`.
# Knobs: AGENTS=1000 CALLS=300 CONNECT_SECS=600
#        TWINBAY_BIN (or MCP_BIN)=a prebuilt twinbay, e.g. target/release/twinbay;
#        unset: target/debug/twinbay, built if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
AGENTS=${AGENTS:-1000}
CALLS=${CALLS:-300}
BIN=${TWINBAY_BIN:-${MCP_BIN:-}}
if [ -n "$BIN" ]; then
    [ -x "$BIN" ] || { echo "no twinbay binary at $BIN (TWINBAY_BIN/MCP_BIN)" >&2; exit 2; }
else
    BIN=target/debug/twinbay
    [ -x "$BIN" ] || cargo build -p twinbay
fi
python3 -c 'import mcp' 2>/dev/null || python3 -m pip install --quiet 'mcp>=2'

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hub="" sim=""
cleanup() {
    [ -n "$sim" ] && kill "$sim" 2>/dev/null || true
    [ -n "$hub" ] && kill "$hub" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
TWINBAY_ADMIN_PASSWORD=bench-password "$BIN" hub --listen "127.0.0.1:$port" \
    --data-dir "$dir/hub" >"$dir/hub.log" 2>&1 &
hub=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
join=$("$BIN" ctl --data-dir "$dir/hub" join-token create)
ulimit -n "$(ulimit -Hn)"
"$BIN" sim --join "$join" --agents "$AGENTS" --interval 5s >"$dir/sim.log" 2>&1 &
sim=$!
token=$("$BIN" ctl --data-dir "$dir/hub" api-token create --role viewer)
admin=$("$BIN" ctl --data-dir "$dir/hub" api-token create --role admin)
echo "hub $BIN ($("$BIN" --version 2>/dev/null || echo twinbay)) on 127.0.0.1:$port, $AGENTS simulated hosts, $CALLS calls per read"
BENCH_BIN=$BIN python3 bench/mcp/bench.py "http://127.0.0.1:$port" "$token" "$admin" "$AGENTS" "$CALLS"
