#!/usr/bin/env bash
# `make local-up`: start a local cluster (etcd, apiservers, schedulers, controller-managers: 3 each;
# 2 kubelets on the host's Docker engine, a proxy), run examples/hello.yaml and show it working.
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
echo "\$ minictl get nodes -o wide"
"$bin/minictl" get nodes -o wide
ready() {  # all three hello pods Ready (READY column 1/1)
  [ "$("$bin/minictl" get pods -l app=hello | grep -c ' 1/1 ')" -ge 3 ]
}
for _ in $(seq 150); do ready && break; sleep 0.2; done
echo
echo "\$ minictl get deployments,services,endpoints -n default"
"$bin/minictl" get deployments,services,endpoints -n default
echo
echo "\$ minictl get pods -o wide"
"$bin/minictl" get pods -o wide
field() {  # field NAME PYTHON-EXPRESSION-ON-svc: read the hello service
  "$bin/minictl" get svc hello -o json | "$bin/python" -c "import json,sys; svc=json.load(sys.stdin); print($1)"
}
node_port=$(field "svc['spec']['ports'][0]['nodePort']")
cluster_ip=$(field "svc['spec']['clusterIP']")
echo
echo "\$ curl http://127.0.0.1:$node_port/   # the NodePort, six times: the proxy picks a pod at random"
for _ in 1 2 3 4 5 6; do curl -s --max-time 2 "http://127.0.0.1:$node_port/"; done
if ip route get "$cluster_ip" | grep -q "dev mksink"; then  # the service CIDR stays on this host
  echo
  echo "\$ curl http://$cluster_ip/   # the ClusterIP, from the host"
  curl -s --max-time 2 "http://$cluster_ip/"
fi
pod=$("$bin/minictl" get pods -l app=hello -o name | head -1)
echo
echo "\$ minictl exec ${pod#*/} -- wget -qO- http://127.0.0.1:8080/   # the pod answers with its name"
"$bin/minictl" exec "${pod#*/}" -- wget -qO- http://127.0.0.1:8080/
for _ in $(seq 50); do  # a scheduler takes the lease moments after it starts
  "$bin/minictl" get lease kube-scheduler -n kube-system >/dev/null 2>&1 && break
  sleep 0.2
done
echo
echo "\$ minictl get leases -n kube-system"
"$bin/minictl" get leases -n kube-system
echo
echo "The cluster is up. Try: $bin/minictl get pods -A   (stop it with: make local-down)"
