#!/usr/bin/env bash
# A minik8s worker node in a container (like kind): its own Docker engine, then the
# kubelet, the proxy and a cluster DNS replica (one per node, on the node's address,
# in kube-system/kube-dns). SIGTERM/SIGINT stop them all (the engine last); when
# any of them dies the others are stopped and the container exits non-zero, so its
# restart policy brings the whole node back.
#
# Environment: NODE_NAME (default: hostname), MINIK8S_SERVERS (apiservers host:port,...),
# CLUSTER_CIDR, SERVICE_CIDR, NODE_IP (default: this container's address on eth0),
# DOCKERD_ARGS (extra dockerd flags), KUBELET_ARGS / PROXY_ARGS (extra flags), LOG_LEVEL,
# PKI_DIR (default /etc/minik8s/pki: ca.crt and, for each of kubelet, proxy and dns,
# <name>.crt/.key and <name>.conf, its client config; the kubelet serves its API with
# kubelet.crt, which names this node and NODE_IP).
set -uo pipefail

NODE_NAME=${NODE_NAME:-$(hostname)}
SERVERS=${MINIK8S_SERVERS:?set MINIK8S_SERVERS to the apiservers, host:port,...}
CLUSTER_CIDR=${CLUSTER_CIDR:-10.244.0.0/16}
SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/16}
LOG_LEVEL=${LOG_LEVEL:-INFO}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
PKI_DIR=${PKI_DIR:-/etc/minik8s/pki}

say() { echo "node-entrypoint[$NODE_NAME]: $*" >&2; }

if [ -z "${NODE_IP:-}" ]; then
  NODE_IP=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
fi
[ -n "$NODE_IP" ] || { say "cannot find this container's IPv4 address on eth0 (set NODE_IP)"; exit 1; }
for name in ca.crt kubelet.conf proxy.conf dns.conf; do
  [ -r "$PKI_DIR/$name" ] || { say "no $PKI_DIR/$name (mount the node's PKI there)"; exit 1; }
done

stopping=0
stop_all() {  # stop kubelet and proxy, then the engine (which stops the pods' containers)
  stopping=1
  local pid
  for pid in "${kubelet_pid:-}" "${proxy_pid:-}" "${dns_pid:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${kubelet_pid:-}" "${proxy_pid:-}" "${dns_pid:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null
  done
  if [ -n "${dockerd_pid:-}" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
}
# shellcheck disable=SC2317  # called by the traps below
on_signal() {
  say "$1: stopping kubelet, proxy, dns and dockerd"
  stop_all
  exit 0
}
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT

# A restarted container keeps its filesystem: drop what the previous engine left behind.
rm -f /var/run/docker.pid /var/run/docker.sock /var/run/docker/containerd/containerd.pid
# /proc/sys is read-only in a container: compose sets these with `sysctls:` (docker run: --sysctl)
for key in net.ipv4.ip_forward net.ipv4.conf.all.route_localnet; do
  [ "$(cat "/proc/sys/${key//.//}" 2>/dev/null)" = 1 ] || say "warning: $key is not 1 (pods on other nodes and 127.0.0.1 NodePorts may not work)"
done

say "node IP $NODE_IP; starting dockerd (log: $DOCKERD_LOG)"
# shellcheck disable=SC2086
dockerd --host unix:///var/run/docker.sock ${DOCKERD_ARGS:-} >"$DOCKERD_LOG" 2>&1 &
dockerd_pid=$!
for _ in $(seq 300); do
  if docker version >/dev/null 2>&1; then break; fi
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    say "dockerd exited; last lines of its log:"; tail -n 30 "$DOCKERD_LOG" >&2; exit 1
  fi
  sleep 0.2
done
docker version >/dev/null 2>&1 || { say "dockerd did not answer within 60 s"; tail -n 30 "$DOCKERD_LOG" >&2; stop_all; exit 1; }
say "dockerd answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"

# the kube-dns ClusterIP: the tenth address of the service CIDR
DNS_IP=$(python3 -c 'import ipaddress, sys; print(ipaddress.ip_network(sys.argv[1])[10])' "$SERVICE_CIDR")

# shellcheck disable=SC2086
MINIK8S_CONFIG=$PKI_DIR/kubelet.conf minik8s kubelet --node-name "$NODE_NAME" --server "$SERVERS" --network-mode node \
  --pod-network minik8s --cluster-cidr "$CLUSTER_CIDR" --node-ip "$NODE_IP" --cluster-dns "$DNS_IP" \
  --bind-address 0.0.0.0 --port 10250 --http-port 10248 --log-level "$LOG_LEVEL" \
  --tls-cert-file "$PKI_DIR/kubelet.crt" --tls-private-key-file "$PKI_DIR/kubelet.key" \
  --client-ca-file "$PKI_DIR/ca.crt" ${KUBELET_ARGS:-} &
kubelet_pid=$!
# shellcheck disable=SC2086
MINIK8S_CONFIG=$PKI_DIR/proxy.conf minik8s proxy --node-name "$NODE_NAME" --server "$SERVERS" \
  --service-cidr "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" --node-ip "$NODE_IP" \
  --bind-address 0.0.0.0 --port 10256 --http-port 10249 --log-level "$LOG_LEVEL" ${PROXY_ARGS:-} &
proxy_pid=$!
MINIK8S_CONFIG=$PKI_DIR/dns.conf minik8s dns --server "$SERVERS" --bind-address "$NODE_IP" --port 53 --http-port 10054 \
  --cluster-ip "$DNS_IP" --advertise-address "$NODE_IP" --log-level "$LOG_LEVEL" &
dns_pid=$!

# Wait for the first of them to end (a trapped signal also ends the wait).
wait -n "$dockerd_pid" "$kubelet_pid" "$proxy_pid" "$dns_pid"
rc=$?
[ "$stopping" = 1 ] && exit 0
for name in dockerd kubelet proxy dns; do
  var=${name}_pid
  if ! kill -0 "${!var}" 2>/dev/null; then say "$name exited (status $rc): stopping the node"; fi
done
stop_all
exit 1
