#!/usr/bin/env bash
# Usage: bench/hub-scale/memory.sh BIN N LABEL — a hub and `twinbay sim` with N agents; RSS before/after.
set -u
BIN=$1; N=$2; LABEL=$3
D=$(mktemp -d /tmp/wtM-m-XXXX); PORT=$((20000 + RANDOM % 20000))
TWINBAY_ADMIN_PASSWORD=correct-horse-battery RUST_LOG=warn $BIN hub --listen 127.0.0.1:$PORT --data-dir $D/hub --heartbeat 5s --max-connections-per-ip 100000 >/dev/null 2>$D/hub.log &
HUB=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 1; done
JOIN=$($BIN ctl --data-dir $D/hub join-token create --ttl 2h)
TOKEN=$($BIN ctl --data-dir $D/hub api-token create --role viewer)
rss() { awk '/VmRSS/{print $2}' /proc/$HUB/status; }
BASE=$(rss)
RUST_LOG=warn $BIN sim --join "$JOIN" --agents $N --interval 5s --churn 2 >/dev/null 2>$D/sim.log &
SIM=$!
T0=$(date +%s)
while :; do
  C=$(curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/v1/hub | python3 -c 'import json,sys; print(json.load(sys.stdin)["connected"])' 2>/dev/null || echo 0)
  [ "$C" -ge "$N" ] && break
  [ $(( $(date +%s) - T0 )) -gt 400 ] && { echo "only $C connected"; break; }
  sleep 2
done
echo "$LABEL: $C connected after $(( $(date +%s) - T0 )) s"
PEAK=0
for i in $(seq ${STEADY:-40}); do sleep 1; R=$(rss); [ $R -gt $PEAK ] && PEAK=$R; done
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/v1/hub > $D/status.json
python3 - "$LABEL" "$N" "$BASE" "$PEAK" "$D/status.json" <<'PY'
import json,sys
label,n,base,peak,path=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),sys.argv[5]
s=json.load(open(path)); m=s.get("memory")
print(f"{label}: agents {n} connected {s['connected']} base {base/1024:.1f} MiB peak {peak/1024:.1f} MiB -> {(peak-base)/n:.1f} KiB/agent")
if m:
    k=lambda b:(b or 0)/1024/n
    print(f"  per agent KiB: rss {k(m['rss']):.1f} heap_in_use {k(m['heap_in_use']):.1f} heap_free {k(m['heap_free']):.1f} twin {k(m['twin_bytes']):.1f} journal_heads {k(m['journal_heads_bytes']):.1f} shared_strings {m['shared_strings']} links {m['agent_links']}")
    print("  twin parts KiB/agent: " + ", ".join(f"{p} {k(b):.2f}" for p,b in m['twin_parts'].items() if b))
PY
kill $SIM; sleep 1; kill $HUB; wait 2>/dev/null; rm -rf $D
