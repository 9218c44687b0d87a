#!/usr/bin/env bash
# agent-footprint: the twinbay agent next to Debian's prometheus-node-exporter,
# 60 s side by side (FOOTPRINT_SECONDS to change). See README.md here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${FOOTPRINT_SECONDS:-60}
# Watched configuration files (the `files` source), edited one at a time
# every FOOTPRINT_EDIT_EVERY seconds during the run. 0 files: none watched.
WATCH_FILES=${FOOTPRINT_WATCH_FILES:-2000}
EDIT_EVERY=${FOOTPRINT_EDIT_EVERY:-10}
# Steady state: the first upload of the watched files' contents (2,000 of
# them, paced at 12 frames/s) is over after ~170 s, and the lean agent gives
# back its start-up pages 30 s after it starts.
WARMUP=${FOOTPRINT_WARMUP:-200}
NE_BIN=/usr/bin/prometheus-node-exporter
TB="$ROOT/target/release/twinbay"
# FOOTPRINT_BIN: measure this (release) binary instead of building one.
BIN=${FOOTPRINT_BIN:-}

say() { echo "agent-footprint: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- build and install -------------------------------------------------------
if [[ -n $BIN ]]; then
    TB=$BIN
    say "measuring $TB (not building)"
else
    say "building the release binary"
    (cd "$ROOT" && cargo build --release -p twinbay)
fi

if [[ ! -x $NE_BIN ]]; then
    say "installing prometheus-node-exporter"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-node-exporter
fi

# --- processes and cleanup ---------------------------------------------------
TMP=$(mktemp -d -t agent-footprint.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 ]]; then
        for log in "$TMP"/*.log; do
            [[ -s $log ]] && { echo "--- $log (last lines)" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s.
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then say "timed out waiting for $what"; return 1; fi
        sleep 0.2
    done
}

HUB_PORT=$(free_port)
DATA="$TMP/hub-data"
STATE="$TMP/agent-state"
mkdir -p "$DATA" "$STATE"
say "starting the hub on 127.0.0.1:$HUB_PORT"
TWINBAY_ADMIN_PASSWORD="footprint-$RANDOM$RANDOM" \
    "$TB" hub --listen "127.0.0.1:$HUB_PORT" --data-dir "$DATA" >"$TMP/hub.log" 2>&1 &
PIDS+=("$!")
wait_for 30 "the hub to answer" curl -s -o /dev/null "http://127.0.0.1:$HUB_PORT/"
deadline=$((SECONDS + 30))
until JOIN=$("$TB" ctl --data-dir "$DATA" join-token create 2>"$TMP/ctl.log"); do
    ((SECONDS < deadline)) || { say "could not create a join token"; cat "$TMP/ctl.log" >&2; exit 1; }
    sleep 0.2
done
TOKEN=$("$TB" ctl --data-dir "$DATA" api-token create --role viewer --name footprint)



NE_PORT=$(free_port)
NE_URL="http://127.0.0.1:$NE_PORT/metrics"
say "starting node_exporter ($($NE_BIN --version 2>&1 | head -n1)) on 127.0.0.1:$NE_PORT"
"$NE_BIN" --web.listen-address="127.0.0.1:$NE_PORT" >"$TMP/node_exporter.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")
wait_for 20 "node_exporter to answer" curl -sf -o /dev/null "$NE_URL"


WATCH_ARGS=()
if ((WATCH_FILES > 0)); then
    WATCHED="$TMP/watched"
    for ((i = 0; i < WATCH_FILES; i++)); do
        d="$WATCHED/site-$((i / 100))"
        [[ -d $d ]] || mkdir -p "$d"
        printf 'server_name host-%d.example.org;\nlisten 443 ssl;\nproxy_pass http://127.0.0.1:%d;\n' \
            "$i" "$((8000 + i))" >"$d/site-$i.conf"
    done
    WATCH_ARGS=(--watch "$WATCHED")
fi
say "starting the agent (default interval, latency target 127.0.0.1:$HUB_PORT, $WATCH_FILES watched files)"
"$TB" agent --join "$JOIN" --state-dir "$STATE" --latency-target "127.0.0.1:$HUB_PORT" \
    "${WATCH_ARGS[@]}" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")

connected() {
    curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HUB_PORT/api/v1/nodes" |
        python3 -c 'import json, sys; sys.exit(0 if any(n.get("connected") for n in json.load(sys.stdin)) else 1)'
}
wait_for 30 "the agent to connect" connected
say "agent connected; ${WARMUP} s warm-up, then ${SECS} s of measurement"
if ((WATCH_FILES > 0 && EDIT_EVERY > 0)); then
    (
        n=0
        while sleep "$EDIT_EVERY"; do
            f="$WATCHED/site-$((n % 20))/site-$(((n % 20) * 100)).conf"
            printf '# edit %d\n' "$n" >>"$f"
            n=$((n + 1))
        done
    ) &
    PIDS+=("$!")
    say "editing one watched file every ${EDIT_EVERY} s"
fi

python3 "$HERE/sample.py" --agent-pid "$AGENT_PID" --ne-pid "$NE_PID" --ne-url "$NE_URL" \
    --seconds "$SECS" --warmup "$WARMUP" --scrape-every 5 --agent-interval "5 s"

# Which collectors the agent reports working (the twin's `sources`).
if ! curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HUB_PORT/api/v1/nodes" |
    python3 -c '
import json, sys, urllib.request
node = json.load(sys.stdin)[0]
req = urllib.request.Request(sys.argv[1] + "/" + node["id"], headers={"Authorization": "Bearer " + sys.argv[2]})
view = json.load(urllib.request.urlopen(req))
sources = view.get("sources") or {}
sources = sources.values() if isinstance(sources, dict) else sources
parts = [s["name"] + ("" if s.get("available") else " (unavailable: %s)" % s.get("reason")) for s in sources]
print("agent collectors: " + ", ".join(parts))
' "http://127.0.0.1:$HUB_PORT/api/v1/nodes" "$TOKEN"; then
    say "could not list the agent's collectors"
fi

# Both must still be running: a crash would make the numbers meaningless.
for pid in "$AGENT_PID" "$NE_PID"; do
    kill -0 "$pid" 2>/dev/null || { say "process $pid exited during the run"; exit 1; }
done
