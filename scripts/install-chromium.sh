#!/bin/sh
# Debian's Chromium for the dashboard test: Playwright drives this browser and never downloads one.
# Installs only when missing; where it cannot (no apt, not root and no sudo) it says so, and the
# dashboard test is skipped with that reason.
set -eu
command -v chromium >/dev/null 2>&1 && exit 0
[ -x /usr/bin/chromium ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: not installed and no apt-get here; install Chromium to run the dashboard test" >&2
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "chromium: not installed and no root rights; 'sudo apt-get install chromium' runs the dashboard test" >&2
    exit 0
fi
echo "installing Debian's chromium (once) for the dashboard test"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
