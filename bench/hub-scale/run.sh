#!/usr/bin/env bash
# hub-scale: a real hub and a real `twinbay sim` as separate processes, with
# 20 UI stream clients, for 100, 1,000, 5,000 and 10,000 agents at a 5 s
# interval with churn. Prints connect time, samples/s, hub CPU and RSS,
# write lag and change-to-UI latency, and times the fleet's return after a
# SIGKILL of the hub at 1,000 agents.
# Knobs: AGENTS=100,1000,5000,10000 CLIENTS=20 STEADY_SECS=30 CHURN=2
#        INTERVAL=5s RESTART_AT=1000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo bench -p twinbay --bench hub_scale
