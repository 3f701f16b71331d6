#!/usr/bin/env bash
# Install nginx from Debian's packages, the load balancer of the production profile
# (`supportbot run --profile production`, docs/deploy.md). Needs root (or sudo) and apt.
# Idempotent: does nothing when it is already installed. The package's own service is not
# used: the profile runs nginx as its own process with a generated config in var/production/.
set -euo pipefail

PACKAGES=(nginx)

installed() {
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' || return 1
    done
}

if installed; then
    echo "nginx is already installed."
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"
echo "nginx installed: $(command -v nginx || echo /usr/sbin/nginx)"
