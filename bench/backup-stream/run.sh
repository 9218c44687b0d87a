#!/usr/bin/env bash
# backup-stream: a generated artifact (SIZE_MIB, default 2048 MiB of random
# bytes: zstd cannot shrink it, so every byte crosses the link) backed up by
# a real agent into a real hub over loopback TLS, with the peak RSS of both
# (VmHWM) before and after, and the throughput beside the baseline
# `cat FILE | curl -T -` (streamed) into a sink on loopback.
#
#   bash bench/backup-stream/run.sh            # uses target/release/twinbay if built, else target/debug
#   BIN=path/to/twinbay SIZE_MIB=512 bash bench/backup-stream/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIZE_MIB=${SIZE_MIB:-2048}
if [[ -z "${BIN:-}" ]]; then
  if [[ -x target/release/twinbay ]]; then BIN=target/release/twinbay; else BIN=target/debug/twinbay; fi
fi
[[ -x "$BIN" ]] || { echo "no $BIN: cargo build -p twinbay first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/twinbay-backup-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "binary: $BIN; artifact: $SIZE_MIB MiB of random bytes in $WORK"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/artifact"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TWINBAY_ADMIN_PASSWORD=bench-password-123 "$BIN" hub --listen "127.0.0.1:$port" --data-dir "$WORK/hub" \
  >"$WORK/hub.log" 2>&1 &
HUB=$!; PIDS+=("$HUB")
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
JOIN=$("$BIN" ctl --data-dir "$WORK/hub" join-token create)
TOKEN=$("$BIN" ctl --data-dir "$WORK/hub" api-token create --role operator)
cat >"$WORK/policy.yaml" <<YAML
actions:
  artifact:
    argv: [cat, $WORK/artifact]
    producer: true
    timeout: 30m
YAML
"$BIN" agent --join "$JOIN" --state-dir "$WORK/agent" --policy "$WORK/policy.yaml" \
  >"$WORK/agent.log" 2>&1 &
AGENT=$!; PIDS+=("$AGENT")
NODE=""
for _ in $(seq 100); do
  NODE=$(curl -skf -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$port/api/v1/nodes" \
    | python3 -c 'import json,sys; n=[x for x in json.load(sys.stdin) if x.get("connected")]; print(n[0]["id"] if n else "")')
  [[ -n "$NODE" ]] && break; sleep 0.2
done
[[ -n "$NODE" ]] || { echo "the agent did not connect" >&2; exit 1; }
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
sleep 2
hub0=$(hwm "$HUB"); agent0=$(hwm "$AGENT")
echo "before: hub RSS $(rss "$HUB") MiB (peak $hub0), agent RSS $(rss "$AGENT") MiB (peak $agent0)"

start=$(date +%s.%N)
"$BIN" ctl --data-dir "$WORK/hub" backup run "$NODE" --job bench --action artifact \
  --token "$TOKEN" >"$WORK/run.out" 2>&1 || { cat "$WORK/run.out"; exit 1; }
end=$(date +%s.%N)
hub1=$(hwm "$HUB"); agent1=$(hwm "$AGENT")
secs=$(python3 -c "print(f'{$end - $start:.2f}')")
mibs=$(python3 -c "print(f'{$SIZE_MIB / ($end - $start):.0f}')")
echo "backup: $SIZE_MIB MiB in $secs s = $mibs MiB/s ($(cat "$WORK/run.out" | tail -1))"
echo "peak RSS: hub $hub0 -> $hub1 MiB (+$((hub1 - hub0))), agent $agent0 -> $agent1 MiB (+$((agent1 - agent0)))"

# Baseline: the same bytes, cat | curl into a sink on loopback (plain HTTP).
sinkport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$sinkport" >"$WORK/sink.log" 2>&1 <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_PUT(self):
        # curl -T - sends the stream chunked.
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            left = size
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
            self.rfile.readline()
            if size == 0:
                break
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
SINK=$!; PIDS+=("$SINK")
sleep 0.5
start=$(date +%s.%N)
cat "$WORK/artifact" | curl -s -o /dev/null -T - "http://127.0.0.1:$sinkport/"
end=$(date +%s.%N)
echo "baseline cat | curl: $SIZE_MIB MiB in $(python3 -c "print(f'{$end - $start:.2f}')") s = $(python3 -c "print(f'{$SIZE_MIB / ($end - $start):.0f}')") MiB/s"
