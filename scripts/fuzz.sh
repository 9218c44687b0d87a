#!/usr/bin/env bash
# Fuzzes the frame decoders that face the network: the hub's for agent
# frames and the agent's for hub frames (fuzz/fuzz_targets/).
#
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
#
# Installs cargo-fuzz if missing. Runs on the default (stable) toolchain with
# RUSTC_BOOTSTRAP=1 and no sanitizer: the decoder is safe Rust
# (#![forbid(unsafe_code)]), so AddressSanitizer would cost 7x the speed for
# little, and machines without nightly fuzz the same way. Exits non-zero if the
# fuzzer finds a crash; the crashing input is saved under
# fuzz/artifacts/agent_frame/.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi

# cargo-fuzz looks for fuzz/ in the current directory.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cargo=(cargo)
sanitizer=none
echo "fuzz.sh: $("${cargo[@]}" --version), sanitizer $sanitizer, ${seconds}s" >&2

# Two decoders face the network: the hub's for agent frames, and the
# agent's for hub frames (commands included: a compromised hub must still
# get nothing past the agent's policy). Each gets half the time.
half=$(( seconds / 2 > 0 ? seconds / 2 : 1 ))
for target in agent_frame hub_frame; do
    # New inputs go to the first (git-ignored) directory; the committed
    # seeds are only read.
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    "${cargo[@]}" fuzz run --sanitizer "$sanitizer" "$target" \
        "$corpus" "fuzz/seeds/$target" \
        -- -max_total_time="$half" -dict="fuzz/$target.dict"
done
