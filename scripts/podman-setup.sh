#!/usr/bin/env bash
# Makes real Podman usable for the container tests on this kind of machine
# (see ../shared/DEPENDENCIES.md): Debian's podman with runc, ulimits the
# sandbox allows, and a tiny local image, since no image can be pulled.
# Idempotent; run as root.
set -euo pipefail

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || [[ ! -x /bin/busybox ]]; then
    echo "podman-setup: installing podman, runc, busybox-static" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc busybox-static >/dev/null
fi

conf=/etc/containers/containers.conf
if ! grep -qs 'twinbay' "$conf"; then
    mkdir -p /etc/containers
    cat >>"$conf" <<'CONF'
# twinbay test setup: crun refuses this machine's hybrid cgroups, and the
# default ulimits exceed what the sandbox allows.
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=1000:1000"]
CONF
fi

# A busybox image from the static binary: enough for `sleep`, `sh -c`, `httpd`.
if ! podman image exists localhost/twinbay-busybox:latest; then
    root=$(mktemp -d)
    mkdir -p "$root/bin"
    cp /bin/busybox "$root/bin/busybox"
    for tool in sh sleep echo cat httpd true false; do ln -s busybox "$root/bin/$tool"; done
    tar -C "$root" -cf "$root.tar" .
    podman import --quiet --change 'CMD ["/bin/sh"]' "$root.tar" localhost/twinbay-busybox:latest >/dev/null
    rm -rf "$root" "$root.tar"
fi
echo "podman-setup: ready ($(podman --version))" >&2
