#!/usr/bin/env bash
# agentless: what collecting agentless hosts costs. HOSTS collectors (default
# 100) run the command registry every INTERVAL seconds through LocalRunner
# (each command a real process on this machine), while a reader reads every
# host's twin and the fleet summary as fast as it can. Prints commands per
# run, commands per minute (measured, and scaled to the default 30 s
# interval) and the reads done; fails if the reads caused any command.
# Over SSH (after the SSH pool is merged) the same harness gains
# "connections opened per minute" from the pool's counters.
# Knobs: HOSTS=100 INTERVAL=5
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
AGENTLESS_HOSTS=${HOSTS:-100} AGENTLESS_INTERVAL=${INTERVAL:-5} \
    cargo test -p twinbay-hub --lib agentless::tests::hundred_hosts_commands_per_minute \
    -- --ignored --nocapture 2>&1 | grep -E '^hosts=|test result'
