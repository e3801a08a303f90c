#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only those missing.
# Needs root (or sudo); without either it says what to install and stops.
set -euo pipefail

need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v curl >/dev/null || need+=(curl)  # the demo test runs the printed curl commands
command -v chromium >/dev/null || need+=(chromium)  # the /ui page's browser test (Playwright)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "error: missing Debian packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
    exit 1
fi
echo "Installing Debian packages: ${need[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
