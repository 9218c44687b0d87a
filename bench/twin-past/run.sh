#!/usr/bin/env bash
# twin-past: a day of state journal at churn 2/min for 1,000 simulated hosts,
# written through the store; then one node rebuilt at random moments as
# `GET /api/v1/nodes/{id}?at=` does. Prints journal bytes per node per day
# and reconstruction latency p50/p99.
# Knobs: NODES=1000 CHURN_PER_MIN=2 QUERIES=2000 HISTORIES=10
#        PROFILE=bench (release; PROFILE=dev for a quick debug-build run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo bench -p twinbay-hub --profile "${PROFILE:-bench}" --bench journal
