#!/usr/bin/env bash
# event-latency: container start/stop with real Podman, timed from Podman's
# own event timestamp to the hub applying it and to a WebSocket client.
# TRANSITIONS=200 by default. Sets up Podman first (root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/podman-setup.sh
cargo bench -p twinbay --bench event_latency
