#!/usr/bin/env bash
# rollouts: the time from `POST /api/v1/rollouts` to "all healthy" for AGENTS
# simulated agents (`twinbay sim`: they answer `update` by pretending, and
# reconnect saying the new version) on a real hub, 1 canary then batches.
# Prints the time to the canary healthy, to all healthy, and to every hello
# saying the new version.
# Knobs: AGENTS=1000 BATCH=25% PAUSE=0s INTERVAL=30s (the agents' sampling) CONNECT_SECS=600
#        TWINBAY_BIN=a prebuilt twinbay (e.g. target/release/twinbay);
#        unset: target/debug/twinbay, built if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
AGENTS=${AGENTS:-1000}
BATCH=${BATCH:-25%}
PAUSE=${PAUSE:-0s}
INTERVAL=${INTERVAL:-30s}
BIN=${TWINBAY_BIN:-}
if [ -n "$BIN" ]; then
    [ -x "$BIN" ] || { echo "no twinbay binary at $BIN (TWINBAY_BIN)" >&2; exit 2; }
else
    BIN=target/debug/twinbay
    [ -x "$BIN" ] || cargo build -p twinbay
fi

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
"$BIN" ctl release keygen --out "$dir/key" >/dev/null
TWINBAY_ADMIN_PASSWORD=bench-password "$BIN" hub --listen "127.0.0.1:$port" \
    --data-dir "$dir/hub" --update-key "$dir/key/minisign.pub" >"$dir/hub.log" 2>&1 &
hub=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
join=$("$BIN" ctl --data-dir "$dir/hub" join-token create)
ulimit -n "$(ulimit -Hn)"
"$BIN" sim --join "$join" --agents "$AGENTS" --interval "$INTERVAL" >"$dir/sim.log" 2>&1 &
sim=$!
admin=$("$BIN" ctl --data-dir "$dir/hub" api-token create --role admin)
printf '#!/bin/sh\nexit 0\n' >"$dir/release"
"$BIN" ctl --data-dir "$dir/hub" release publish --file "$dir/release" --version 9.9.9 \
    --key "$dir/key/minisign.key" >/dev/null
echo "hub $BIN on 127.0.0.1:$port, $AGENTS simulated agents, 1 canary, batch $BATCH, pause $PAUSE"
python3 - "http://127.0.0.1:$port" "$admin" "$AGENTS" "$BATCH" "$PAUSE" "${CONNECT_SECS:-600}" <<'PY'
import json, sys, time, urllib.error, urllib.request
base, token, agents, batch, pause, connect_secs = sys.argv[1:7]
agents = int(agents)
def call(method, path, body=None):
    # While 1,000 agents connect from this address the hub's per-address cap
    # on unproven connections may reset ours: try again.
    for attempt in range(50):
        req = urllib.request.Request(base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except (ConnectionError, urllib.error.URLError) as e:
            if isinstance(e, urllib.error.HTTPError):
                raise
            time.sleep(0.2)
    sys.exit(f"{method} {path}: the hub keeps refusing")
t0 = time.time()
while call("GET", "/api/v1/hub").get("connected", 0) < agents:
    if time.time() - t0 > float(connect_secs):
        sys.exit(f"only {call('GET', '/api/v1/hub').get('connected')} of {agents} connected")
    time.sleep(1)
print(f"{agents} agents connected in {time.time() - t0:.1f} s", flush=True)
b = int(batch) if batch.isdigit() else batch
start = time.time()
r = call("POST", "/api/v1/rollouts", {"version": "9.9.9", "canaries": 1, "batch": b, "pause_between": pause})
rid, canary = r["id"], None
batches = 1 + max(h["batch"] for h in r["hosts"])
while True:
    r = call("GET", f"/api/v1/rollouts/{rid}")
    now = time.time() - start
    if canary is None and r["counts"]["healthy"] >= 1:
        canary = now
    if r["state"] != "running":
        break
    if int(now) % 10 == 0:
        print(f"  {now:5.1f} s: {r['counts']}", flush=True)
    time.sleep(0.25)
done = time.time() - start
print(f"rollout {r['state']}: {r['counts']}")
while True:
    nodes = call("GET", "/api/v1/nodes")
    if sum(1 for n in nodes if n.get("agent_version") == "9.9.9" and n.get("connected")) >= agents:
        break
    time.sleep(1)
hellos = time.time() - start
print(f"| agents | batches | canary healthy | all healthy | every hello on 9.9.9 |")
print(f"|---|---|---|---|---|")
print(f"| {agents} | {batches} (incl. canary) | {canary:.2f} s | {done:.2f} s | {hellos:.2f} s |")
PY
