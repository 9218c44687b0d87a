#!/usr/bin/env bash
# Real-browser smoke test of the web UI (web/tests/, headless Chromium).
# Installs what is missing, builds twinbay unless TWINBAY_BIN is set, runs the
# test; screenshots land in docs/screenshots/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

# Debian's Chromium (playwright-core drives it; it never downloads browsers).
if [[ ! -x /usr/bin/chromium ]]; then
    echo "browser-test: installing chromium" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# playwright-core, re-installed only when the lock file changed.
stamp=web/node_modules/.package-lock.sha256
want="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
if [[ ! -d web/node_modules/playwright-core || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "browser-test: npm ci" >&2
    (cd web && npm ci --no-audit --no-fund)
    echo "$want" >"$stamp"
fi

if [[ -z "${TWINBAY_BIN:-}" ]]; then
    cargo build -p twinbay
    export TWINBAY_BIN="$repo/target/debug/twinbay"
fi

# Files are named explicitly: node 20's directory scan skips web/tests/smoke.mjs.
node --test web/tests/*.mjs
