#!/usr/bin/env bash
# agentless over SSH: HOSTS agentless hosts (default 100) read by a real hub
# through a real OpenSSH server that answers on HOSTS loopback ports (one
# sshd per 15 ports, one throwaway user; each port is a host to the hub,
# with its own pinned key and pooled connection). After the hosts are added it measures
# MINUTES (default 3) at INTERVAL (default 30 s): SSH connections opened per
# minute (pooled: ~0 after the start), commands per minute, hub CPU; then
# reads every host's twin through the API for two intervals and shows the
# commands run meanwhile beside the steady pace (reads add none: they see
# the twin only).
# Run as root (it creates a user). Knobs: HOSTS=100 INTERVAL=30 MINUTES=3
# TWINBAY_BIN=path (default: a release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
hosts=${HOSTS:-100}
interval=${INTERVAL:-30}
minutes=${MINUTES:-3}
bin=${TWINBAY_BIN:-}
if [[ -z "$bin" ]]; then
    cargo build --release --locked -p twinbay --bin twinbay
    bin="$PWD/target/release/twinbay"
fi
[[ -x /usr/sbin/sshd ]] || { echo "needs openssh-server (/usr/sbin/sshd)" >&2; exit 1; }

work=$(mktemp -d)
user="tbbench$((RANDOM % 10000))"
hub_pid=""
sshd_pids=()
cleanup() {
    [[ -n "$hub_pid" ]] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
    for pid in "${sshd_pids[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 0.5
    pkill -u "$user" 2>/dev/null || true
    userdel -r "$user" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
TWINBAY_ADMIN_PASSWORD="bench-$(date +%s%N)" RUST_LOG=warn \
    "$bin" hub --listen "127.0.0.1:$port" --data-dir "$work/hub" >"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
base="http://127.0.0.1:$port"
token=$("$bin" ctl --data-dir "$work/hub" api-token create --role admin)
api() { curl -sS --fail-with-body -H "Authorization: Bearer $token" "$@"; }

useradd -m -p '*' -s /bin/sh -d "$work/home" "$user"
mkdir -p /run/sshd "$work/sshd"
# sshd reads authorized_keys as the user.
chmod 755 "$work" "$work/sshd"
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/host_key"
fp=$(ssh-keygen -lf "$work/sshd/host_key.pub" | awk '{print $2}')
api "$base/api/v1/ssh/identity" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])' >"$work/sshd/authorized_keys"
# One sshd listens on at most 16 sockets (OpenSSH's MAX_LISTEN_SOCKS), so
# the ports are served by a server per 15 of them, all with the same host
# key, user and authorized_keys.
ports=()
for _ in $(seq "$hosts"); do ports+=("$(free_port)"); done
for ((i = 0; i < hosts; i += 15)); do
    conf="$work/sshd/sshd_config.$i"
    {
        for p in "${ports[@]:i:15}"; do echo "Port $p"; done
        cat <<CONF
ListenAddress 127.0.0.1
HostKey $work/sshd/host_key
PidFile none
AuthorizedKeysFile $work/sshd/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers $user
MaxStartups 1000
MaxSessions 20
CONF
    } >"$conf"
    /usr/sbin/sshd -D -e -f "$conf" 2>>"$work/sshd/sshd.log" &
    sshd_pids+=("$!")
done
sleep 1
for pid in "${sshd_pids[@]}"; do
    kill -0 "$pid" || { cat "$work/sshd/sshd.log" >&2; exit 1; }
done

metric() { api "$base/metrics?nodes=none" | awk -v m="$1" '$1 == m {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$hub_pid/stat"; }
tick=$(getconf CLK_TCK)

started=$(date +%s.%N)
for p in "${ports[@]}"; do
    out=$(api -X POST -H 'Content-Type: application/json' \
        -d "{\"target\":\"ssh://$user@127.0.0.1:$p\",\"fingerprint\":\"$fp\",\"agentless\":true,\"interval_secs\":$interval}" \
        "$base/api/v1/ssh/hosts") || { echo "adding 127.0.0.1:$p failed: $out" >&2; exit 1; }
done
echo "added $hosts agentless hosts in $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s; first collections for 20 s"
sleep 20

c0=$(metric twinbay_ssh_connections_opened_total); k0=$(metric twinbay_ssh_commands_total); cpu0=$(cpu); t0=$(date +%s.%N)
sleep $((minutes * 60))
c1=$(metric twinbay_ssh_connections_opened_total); k1=$(metric twinbay_ssh_commands_total); cpu1=$(cpu); t1=$(date +%s.%N)
pace=$(python3 -c "print(($k1 - $k0) / (($t1 - $t0) / 60))")
connected=$(api "$base/api/v1/nodes" | python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin) if n.get("connected")))')
python3 - "$c0" "$c1" "$k0" "$k1" "$cpu0" "$cpu1" "$t0" "$t1" "$tick" "$hosts" "$interval" "$connected" <<'PY'
import sys
c0, c1, k0, k1, u0, u1, t0, t1, tick = map(float, sys.argv[1:10])
hosts, interval, connected = sys.argv[10:13]
mins = (t1 - t0) / 60
print(f"{hosts} agentless hosts at {interval} s, {connected} connected, {mins:.1f} min measured:")
print(f"  SSH connections opened per minute: {(c1 - c0) / mins:.1f}")
print(f"  SSH commands per minute:           {(k1 - k0) / mins:.0f}")
print(f"  hub CPU:                           {(u1 - u0) / tick / (t1 - t0) * 100:.1f} % of a core")
PY

# Reads for exactly two intervals: every collector runs twice in any such
# window, so the commands in it are the steady pace's unless reads add some.
ids=$(api "$base/api/v1/nodes" | python3 -c 'import json,sys; print(" ".join(n["id"] for n in json.load(sys.stdin)))')
k0=$(metric twinbay_ssh_commands_total); t0=$(date +%s.%N)
reads=0
end=$(($(date +%s) + 2 * interval))
while (($(date +%s) < end)); do
    for id in $ids; do
        api -o /dev/null "$base/api/v1/nodes/$id"
        reads=$((reads + 1))
    done
done
k1=$(metric twinbay_ssh_commands_total); t1=$(date +%s.%N)
python3 - "$k0" "$k1" "$t0" "$t1" "$reads" "$pace" <<'PY'
import sys
k0, k1, t0, t1 = map(float, sys.argv[1:5])
reads, pace = sys.argv[5], float(sys.argv[6])
secs = t1 - t0
print(f"  {reads} API reads in {secs:.1f} s: {k1 - k0:.0f} SSH commands meanwhile; "
      f"the steady pace alone gives {pace * secs / 60:.0f}")
PY
