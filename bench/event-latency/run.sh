#!/usr/bin/env bash
# event-latency: container start/stop with real Podman, timed from Podman's
# own event timestamp to the hub applying it and to a WebSocket client.
# TRANSITIONS=200 by default. Sets up Podman first (root).
# PROFILE=dev builds the bench (and the twinbay binary it drives) with the
# debug profile instead of the optimized `bench` profile: minutes instead of a
# long cold release build on a small machine. Compare runs of the same profile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/podman-setup.sh
cargo bench --profile "${PROFILE:-bench}" -p twinbay --bench event_latency
