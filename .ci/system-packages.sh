#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests need (Prometheus, podman, buildah, runc,
# mmdebstrap, chromium, tmux) and writes the podman settings the container test relies on.
# Idempotent: when everything is already in place it only checks and returns (about a second).
set -euo pipefail

PACKAGES=(
    prometheus        # prometheus + promtool
    podman
    buildah
    runc              # crun fails on these machines; runc works
    mmdebstrap        # builds the local Debian base image for the container test
    uidmap
    slirp4netns
    passt
    fuse-overlayfs
    containernetworking-plugins
    golang-github-containernetworking-plugin-dnsname  # service names resolve between compose containers
    ca-certificates
    chromium          # opens the run reports in the page tests (driven by Playwright)
    fonts-dejavu-core # text in those pages and their screenshots
    tmux              # a real terminal for the `mm-daemon ctl top` test
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "system-packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # --no-install-recommends keeps the prometheus package from pulling in its web console
    # extras; the daemon (prometheus service) is not started by the tests, they run their own.
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a prometheus service on :9090 where an init system runs; the tests
# start their own instance on a free port, so a system one is left alone here.

write_if_changed() {
    # write_if_changed PATH CONTENT: rewrite PATH only when its content differs.
    local path="$1" content="$2"
    if [ ! -f "$path" ] || [ "$(cat "$path")" != "$content" ]; then
        $SUDO mkdir -p "$(dirname "$path")"
        printf '%s\n' "$content" | $SUDO tee "$path" >/dev/null
        echo "system-packages: wrote $path"
    fi
}

# Podman settings that work on these machines: runc (crun fails), cgroupfs (no systemd),
# file event logger (no journald), low ulimits (the default nofile exceeds the sandbox's),
# and vfs storage (no overlay mounts inside the sandbox).
write_if_changed /etc/containers/containers.conf '# Written by .ci/system-packages.sh (mm-daemon e2e tests).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"'

write_if_changed /etc/containers/storage.conf '# Written by .ci/system-packages.sh (mm-daemon e2e tests).
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"'

# Unqualified image names (in compose.yaml and the Dockerfile) resolve on Docker Hub.
write_if_changed /etc/containers/registries.conf.d/50-mm-daemon.conf '# Written by .ci/system-packages.sh (mm-daemon e2e tests).
unqualified-search-registries = ["docker.io"]'

echo "system-packages: ok"
