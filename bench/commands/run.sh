#!/usr/bin/env bash
# commands: round trip of a command (API call to result) for an in-agent verb,
# an action (fork + exec) and a container status (Engine API); 16 MB of
# output streamed to a client; the agent's CPU and memory. Baselines: the
# same process run locally and `podman exec`. RUNS=200 by default.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/podman-setup.sh
cargo bench -p twinbay --bench commands
