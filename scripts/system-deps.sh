#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when they are absent.
#   dataset-fashion-mnist : the benchmark data (IDX files under /usr/share/datasets/fashion-mnist)
#   prometheus            : promtool and a real Prometheus server for the monitoring tests
#   redis-server          : the shared prediction store of several replicas
#   prometheus-alertmanager: amtool, which checks deploy/alertmanager's config and routes
#   podman, runc, netavark, aardvark-dns, iptables, debootstrap, podman-compose: the container tests
#                           (tests/containers: images built from a debootstrap base, the compose stack)
#   chromium              : the headless browser that Playwright drives in the /ui e2e test (never downloaded)
set -euo pipefail
need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v redis-server >/dev/null || need+=(redis-server)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
command -v iptables >/dev/null || need+=(iptables)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v podman-compose >/dev/null || need+=(podman-compose)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q || true
$sudo_cmd apt-get install -y -q --no-install-recommends "${need[@]}"
