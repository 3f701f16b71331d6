#!/usr/bin/env bash
# Install Request Tracker 5 from Debian's packages, with its SQLite database, for the RT
# ticketing adapter's tests and for local use (docs/ticketing.md). Needs root and apt.
# Idempotent: does nothing when the packages are already installed.
set -euo pipefail

PACKAGES=(request-tracker5 rt5-db-sqlite rt5-standalone)

installed() {
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' || return 1
    done
}

if installed; then
    echo "Request Tracker 5 is already installed."
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Not needed for the database: with only the SQLite backend installed, a non-interactive install
# already lets dbconfig-common create and populate it (user root, password "password"; checked
# on Debian 12). Preseeded anyway, so the choice is explicit and RT's name is not the hostname.
$SUDO debconf-set-selections <<'SEL'
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/rtname string supportbot.localhost
request-tracker5 request-tracker5/organization string supportbot.localhost
SEL

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"
echo "Request Tracker 5 installed; start it with:"
echo "  /usr/share/request-tracker5/libexec/rt-server --port 8080"
