#!/usr/bin/env bash
# Headless Chromium for the widget's browser tests (tests/web), from Debian's packages.
# Playwright drives this system browser (web/package.json pins playwright-core), so no
# browser is ever downloaded by a test tool. Idempotent: does nothing when it is installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
