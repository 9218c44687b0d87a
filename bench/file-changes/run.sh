#!/usr/bin/env bash
# file-changes: EDITS=200 saves of watched files (in place, temp+rename,
# sed -i), timed from the save to the hub applying the new hash, a stream
# client receiving it, and the stored-and-rated `file.changed` event; beside a
# 60 s rescan poller. Release build (cargo bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo bench -p twinbay --bench file_changes
