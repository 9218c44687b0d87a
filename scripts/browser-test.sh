#!/usr/bin/env bash
# The web UI in a real browser (web/tests/, headless Chromium): sign-in, live
# values, host detail and charts, phone width, and 500 hosts measured (ui.mjs);
# people, roles, API tokens and the audit trail (people.mjs); axe-core's WCAG 2.1
# A/AA rules on every screen in both themes at desktop and phone width, dialog
# focus, and the host list as a screen reader gets it (a11y.mjs); commands on a
# real Podman container: restart, live logs, an action, the history (commands.mjs);
# watched files: the Files tab and /changes following edits live, a diff, a
# viewer refused the diff (files.mjs); proxy routes: the Routes screen, search,
# broken only, a stopped container's route turning broken live, the host's
# Routes tab, the gateway card's hint (routes.mjs); the network map with 500
# demo hosts: search, details, impact, dragged positions, phone, frame times
# (network.mjs); the 3D world: layout edits, live colours, a click to the
# host, 500 devices' frame times (world.mjs); schedules: the cron helper's next
# runs, create, run now and the run on a real agent (schedules.mjs); backups:
# a job scheduled with the cron helper, run now on a real agent, the artifact
# in the catalog, downloaded (its SHA-256 the catalog's), verified, restored,
# a failing producer named loudly, the overview's card (backups.mjs); updates:
# releases signed with a key from `ctl release keygen`, the fleet's versions,
# the rollout form's checks, a rollout to `twinbay sim` agents followed to done,
# pause/resume/abort, the host page's Update agent (updates.mjs); the
# twin's past: a stopped container seen running again by dragging the time
# control back, the charts' mark, compare with now, "what changed before this"
# from the timeline, the network then (past.mjs); a fleet of simulated hosts
# (1,000 by default, TWINBAY_SCALE_HOSTS for more) from `twinbay sim`: first
# render of Hosts and Overview, frame times while scrolling, stream bytes of
# the first 10 s (scale.mjs); hosts over SSH against a private sshd (ssh.mjs).
# Installs what is missing, builds twinbay unless TWINBAY_BIN is set, runs the
# tests; screenshots land in docs/screenshots/ unless TWINBAY_SCREENSHOTS says
# otherwise.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

# Debian's Chromium (playwright-core drives it; it never downloads browsers).
if [[ ! -x /usr/bin/chromium ]]; then
    echo "browser-test: installing chromium" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# Real Podman and its local image for commands.mjs (nothing can be pulled).
if ! command -v podman >/dev/null || ! podman image exists localhost/twinbay-busybox:latest; then
    bash scripts/podman-setup.sh
fi

# The hub's build (crates/hub/build.rs) installs web/node_modules from the
# lock file; with a prebuilt TWINBAY_BIN do it here, the same way.
if ! cmp -s web/package-lock.json web/node_modules/.twinbay-package-lock.json; then
    echo "browser-test: npm ci" >&2
    (cd web && npm ci --no-audit --no-fund)
    cp web/package-lock.json web/node_modules/.twinbay-package-lock.json
fi

if [[ -z "${TWINBAY_BIN:-}" ]]; then
    cargo build -p twinbay
    export TWINBAY_BIN="$repo/target/debug/twinbay"
fi

# Files are named explicitly: node 20's directory scan skips .mjs files. One
# at a time: ui.mjs measures frame times and wants the machine to itself.
node --experimental-websocket --test --test-concurrency=1 web/tests/ui.mjs web/tests/people.mjs web/tests/a11y.mjs web/tests/commands.mjs web/tests/files.mjs web/tests/routes.mjs web/tests/network.mjs web/tests/world.mjs web/tests/schedules.mjs web/tests/backups.mjs web/tests/alerts.mjs web/tests/updates.mjs web/tests/past.mjs web/tests/ssh.mjs web/tests/scale.mjs
