#!/usr/bin/env bash
# Fuzzes the hub's agent frame decoder (fuzz/fuzz_targets/agent_frame.rs).
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

# New inputs go to the first (git-ignored) directory; the committed seeds
# are only read.
corpus=fuzz/corpus/agent_frame
mkdir -p "$corpus"

"${cargo[@]}" fuzz run --sanitizer "$sanitizer" agent_frame \
    "$corpus" fuzz/seeds/agent_frame \
    -- -max_total_time="$seconds" -dict=fuzz/agent_frame.dict
