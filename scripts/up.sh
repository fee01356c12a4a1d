#!/usr/bin/env bash
# `make up`: start a local cluster (etcd, apiservers, schedulers, 3 each) and show it answering.
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=${1:-.work/cluster}
bin=.venv/bin

if [ -f "$workdir/cluster.json" ]; then
  "$bin/minik8s" local-up --down --workdir "$workdir" >/dev/null || true
fi
rm -rf "$workdir"
"$bin/minik8s" local-up --detach --workdir "$workdir"

echo
echo "\$ minictl apply -f examples/hello.yaml"
"$bin/minictl" apply -f examples/hello.yaml
echo
echo "\$ minictl get namespaces"
"$bin/minictl" get namespaces
echo
echo "\$ minictl get deployments,services -n default"
"$bin/minictl" get deployments,services -n default
for _ in $(seq 50); do  # a scheduler takes the lease moments after it starts
  "$bin/minictl" get lease kube-scheduler -n kube-system >/dev/null 2>&1 && break
  sleep 0.2
done
echo
echo "\$ minictl get leases -n kube-system"
"$bin/minictl" get leases -n kube-system
echo
echo "The cluster is up. Try: $bin/minictl get pods -A   (stop it with: make down)"
