#!/usr/bin/env bash
# alerts-scale: what alert evaluation costs the hub, and what a fleet-wide
# event sends. A real hub (release build) and `twinbay sim` with 1,000
# simulated hosts; 10 alert rules (the 5 defaults and 5 more). Prints:
#   1. the hub's CPU (% of one core) at steady state with every rule off,
#      then with every rule on;
#   2. after a hub restart (SIGTERM, start again on the same data dir) with
#      the host-down rule at `for: 2s`: the notifications a local webhook
#      receives in the next 60 s (grouped: a handful, not one per host).
# Knobs: AGENTS=1000 STEADY_SECS=30 TWINBAY_BIN=target/release/twinbay
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

AGENTS=${AGENTS:-1000}
STEADY=${STEADY_SECS:-30}
BIN=${TWINBAY_BIN:-target/release/twinbay}
if [[ ! -x $BIN ]]; then
    cargo build --release -p twinbay
fi
BIN=$(realpath "$BIN")

dir=$(mktemp -d /tmp/twinbay-alerts-scale.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hook_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="https://127.0.0.1:$port"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# The webhook receiver: one line per notification (status, alerts in it).
cat > "$dir/hook.py" <<'PY'
import http.server, json, sys
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out.write(json.dumps({"status": body.get("status"), "rule": body.get("commonLabels", {}).get("alertname"), "alerts": len(body.get("alerts", []))}) + "\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$dir/hook.py" "$hook_port" "$dir/received" & pids+=($!)
touch "$dir/received"

start_hub() {
    TWINBAY_ADMIN_PASSWORD=bench-pass-1234 RUST_LOG=warn "$BIN" hub --listen "127.0.0.1:$port" \
        --data-dir "$dir/hub" --alert-group-wait 5s --alert-group-interval 30s \
        >>"$dir/hub.log" 2>&1 &
    hub=$!
    pids+=("$hub")
    for _ in $(seq 100); do
        curl -ksf "$url/healthz" >/dev/null && return
        sleep 0.1
    done
    echo "the hub did not start: $(tail -5 "$dir/hub.log")" >&2
    exit 1
}

start_hub
token=$("$BIN" ctl --data-dir "$dir/hub" api-token create --role admin)
join=$("$BIN" ctl --data-dir "$dir/hub" join-token create --ttl 1h)
api() { curl -ksf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }

channel=$(api -X POST "$url/api/v1/alerts/channels" \
    -d "{\"name\":\"bench\",\"kind\":\"webhook\",\"url\":\"http://127.0.0.1:$hook_port/hook\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for body in \
    '{"name":"cpu 95","kind":"cpu","above":95,"clear":85,"for":"1m"}' \
    '{"name":"memory 95","kind":"memory","above":95,"for":"1m"}' \
    '{"name":"route broken","kind":"route_broken","for":"1m"}' \
    '{"name":"disk fills","kind":"disk_forecast","within":"24h","window":"1h"}' \
    '{"name":"command failed","kind":"command_failed"}'; do
    api -X POST "$url/api/v1/alerts/rules" -d "$body" >/dev/null
done
rules=$(api "$url/api/v1/alerts/rules" | python3 -c 'import json,sys; print(" ".join(str(r["id"]) for r in json.load(sys.stdin)))')
echo "rules: $(wc -w <<<"$rules") (ids $rules), every one notifying the webhook"
for r in $rules; do
    api -X PATCH "$url/api/v1/alerts/rules/$r" -d "{\"channels\":[$channel]}" >/dev/null
done

"$BIN" sim --join "$join" --agents "$AGENTS" --interval 5s --ramp 100 >"$dir/sim.log" 2>&1 &
pids+=($!)
# (While a thousand agents dial in, the hub may refuse a connection from
# this address too: the per-address limit on unproven connections.)
connected() { { api "$url/api/v1/nodes" || echo '[]'; } | python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin) if n["connected"]))'; }
for _ in $(seq 300); do
    [[ $(connected) -ge $AGENTS ]] && break
    sleep 1
done
echo "hosts connected: $(connected) of $AGENTS"
sleep 10

# CPU of the hub over STEADY seconds, in % of one core.
cpu() {
    local tck a b
    tck=$(getconf CLK_TCK)
    a=$(awk '{print $14+$15}' "/proc/$hub/stat")
    sleep "$STEADY"
    b=$(awk '{print $14+$15}' "/proc/$hub/stat")
    python3 -c "print(f'{($b-$a)/$tck/$STEADY*100:.1f}')"
}
set_rules() {
    for r in $rules; do api -X PATCH "$url/api/v1/alerts/rules/$r" -d "{\"enabled\":$1}" >/dev/null; done
}
set_rules false
sleep 3
off=$(cpu)
set_rules true
sleep 3
# The engine's own CPU time in its rounds, from /metrics:
# the whole process's CPU also carries what firing alerts then cost
# (storing each change, the stream, the webhook).
eval_secs() { curl -ks "$url/metrics" | awk '/^twinbay_alert_evaluation_seconds_total /{print $2}'; }
e0=$(eval_secs)
on=$(cpu)
e1=$(eval_secs)
eval_pct=$(python3 -c "print(f'{(${e1:-0}-${e0:-0})/$STEADY*100:.2f}')")
firing=$(api "$url/api/v1/alerts" | python3 -c 'import json,sys; a=json.load(sys.stdin); a=a if isinstance(a,list) else a.get("alerts",[]); print(sum(1 for x in a if x.get("state")=="firing"))' || echo "?")
echo "hub CPU at steady state, $AGENTS hosts, 5 s samples: rules off $off %, 10 rules on $on % of one core"
echo "  of which rule evaluation itself: $eval_pct % of one core; $firing alerts firing at the end"

# A fleet-wide event: restart the hub; every host is down until the sim
# reconnects. With host down at for: 2s, each host fires and resolves.
host_down=$(api "$url/api/v1/alerts/rules" | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["kind"]=="host_down"][0])')
api -X DELETE "$url/api/v1/alerts/rules/$host_down" >/dev/null
api -X POST "$url/api/v1/alerts/rules" -d "{\"name\":\"host down fast\",\"kind\":\"host_down\",\"for\":\"2s\",\"channels\":[$channel]}" >/dev/null
sleep 2
before=$(wc -l <"$dir/received")
kill -TERM "$hub"
for _ in $(seq 100); do kill -0 "$hub" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$hub" 2>/dev/null || true
sleep 5
start_hub
sleep 60
python3 - "$dir/received" "$before" "$AGENTS" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]]
alerts = sum(l["alerts"] for l in lines)
by = {}
for l in lines:
    by.setdefault((l["rule"], l["status"]), [0, 0])
    by[(l["rule"], l["status"])][0] += 1
    by[(l["rule"], l["status"])][1] += l["alerts"]
print(f"hub restart with {sys.argv[3]} hosts: {len(lines)} notifications carrying {alerts} alerts in 60 s")
for (rule, status), (n, a) in sorted(by.items(), key=str):
    print(f"  {rule} {status}: {n} notification(s), {a} alerts")
PY
