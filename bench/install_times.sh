#!/usr/bin/env bash
# Benchmark (not a test): what a new user waits for, from a fresh clone with an empty pip cache.
#   bash bench/install_times.sh REV [REV ...]
# For each revision: clone this repository at REV into a temporary folder, point PIP_CACHE_DIR at a
# new empty folder, time `make serve` until /v2/health/ready answers (install + start-up), stop it,
# then time `make .venv/.dev` (the test extras on top). Alternate the revisions over repeated calls:
# the host drifts. Debian's packages (scripts/system-deps.sh) are not part of the figure.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
port=${PORT:-8799}
for rev in "$@"; do
  work=$(mktemp -d)
  git clone -q "$repo" "$work/repo" && git -C "$work/repo" checkout -q "$rev"
  export PIP_CACHE_DIR="$work/pip-cache"
  start=$(date +%s.%N)
  (cd "$work/repo" && PORT=$port make serve >"$work/serve.log" 2>&1) &
  until curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; do sleep 0.2; done
  ready=$(date +%s.%N)
  pkill -f "candor serve --host 127.0.0.1 --port $port" || true
  wait || true
  dev_start=$(date +%s.%N)
  (cd "$work/repo" && make .venv/.dev >"$work/dev.log" 2>&1)
  dev_end=$(date +%s.%N)
  printf '%s serve_to_ready_s %.1f dev_install_s %.1f\n' "$rev" \
    "$(echo "$ready - $start" | bc)" "$(echo "$dev_end - $dev_start" | bc)"
  rm -rf "$work"
done
