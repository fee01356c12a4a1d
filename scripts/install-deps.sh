#!/usr/bin/env bash
# Install the system packages minik8s needs (Debian), only those missing.
# Used by `make up`, `make test` and CI; safe to run again. With --test, also what
# the tests need beyond the cluster itself (a headless browser for the dashboard).
set -euo pipefail

declare -A want=(
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [dockerd]=docker.io
  [iptables]=iptables
  [ip]=iproute2
  [curl]=curl
  [gcc]=gcc
  [busybox]=busybox-static
  [debootstrap]=debootstrap
  [docker-compose]=docker-compose
)
if [ "${1:-}" = --test ]; then
  want[chromium]=chromium
  want[chromedriver]=chromium-driver
fi
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# images/pause is linked statically: it needs libc.a (libc6-dev), which gcc only recommends.
[ -e "$(gcc -print-file-name=libc.a 2>/dev/null)" ] || missing+=(libc6-dev)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "minik8s needs these packages: ${missing[*]}" >&2
  echo "install them (Debian: sudo apt-get install -y ${missing[*]}) and run again" >&2
  exit 1
fi
echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
