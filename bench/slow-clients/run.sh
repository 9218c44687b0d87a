#!/usr/bin/env bash
# slow-clients: a real hub and a real `twinbay sim` fleet (100 agents) while
# 1,000 and then 10,000 connections trickle header lines (one every 5 s, never
# ending the head) from 8 source addresses (127.0.0.2-9), reopening each 1 s
# after the hub closes it. Prints /healthz p99 from 127.0.0.1, agents
# connected, failed history writes, hub RSS and open files before, during
# and a minute after, and what the attacker saw. See README.md.
# Knobs: CONNS=1000,10000 ADDRESSES=8 AGENTS=100 BASE_SECS=10 HOLD_SECS=40
#        AFTER_SECS=60 TRICKLE_SECS=5 RETRY_MS=1000 RAMP=2000 HUB_ARGS=""
#        HUB_BIN=path/to/other/twinbay NOFILE=n
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo bench -p twinbay --bench slow_clients
