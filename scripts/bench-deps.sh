#!/usr/bin/env bash
# Installs the load generator the serving benchmarks prefer, only when it is absent.
#   wrk : HTTP load in C (bench/serve.py and bench/overload.py fall back to their asyncio client
#         without it, at a higher CPU cost on cores shared with the server)
set -euo pipefail
command -v wrk >/dev/null && exit 0
echo "installing Debian package: wrk"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q || true
$sudo_cmd apt-get install -y -q --no-install-recommends wrk
