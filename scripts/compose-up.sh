#!/usr/bin/env bash
# `make up`: a minik8s cluster in containers (deploy/docker-compose.yml):
# etcd, apiserver, scheduler, controller-manager x3 each, two worker nodes with
# their own Docker engines, Prometheus, Alertmanager and the dashboard. Installs what is missing, builds the image (cached),
# starts the project `minik8s`, waits until every container is healthy and both
# nodes are Ready, loads the pod images into the nodes, writes the minictl config,
# makes the cluster's PKI (.work/compose/<project>/pki; TLS and RBAC are on),
# runs examples/hello.yaml with its Service on NodePort 30080 and asks it for a page
# through 127.0.0.1. Safe to run again (it converges). Stop it: scripts/compose-down.sh.
#
# Environment: MINIK8S_COMPOSE_TIMEOUT (seconds to wait for health, default 180),
# MINIK8S_COMPOSE_SUBNET, MINIK8S_APISERVER_PORT_{0,1,2}, MINIK8S_APISERVER_TOKEN_PORT_{0,1,2},
# MINIK8S_NODEPORT_{0,1}, MINIK8S_PROMETHEUS_PORT, MINIK8S_ALERTMANAGER_PORT,
# MINIK8S_DASHBOARD_PORT (defaults: a free one of 172.28-31.0.0/16; 16443-16445;
# 16446-16448; 30080, 30081; 9090, 9093, 8001; a port that is taken is replaced by a
# free one),
# MINIK8S_COMPOSE_NO_DEMO=1 (skip the demo), MINIK8S_CONFIG (where minictl's config goes),
# MINIK8S_COMPOSE_PROJECT (default minik8s; the tests use their own, beside yours).
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s.%N)
PROJECT=${MINIK8S_COMPOSE_PROJECT:-minik8s}
FILE=deploy/docker-compose.yml
STATE=.work/compose/$PROJECT
TIMEOUT=${MINIK8S_COMPOSE_TIMEOUT:-180}
IMAGES=(minik8s/pause:3.9 minik8s/echo:latest)
NODES=(node-0 node-1)
bin=.venv/bin

say() { printf '\n== %s\n' "$*"; }
die() { echo "compose-up: error: $*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
show() { echo "\$ minictl $*"; "$bin/minictl" "$@"; }
container() {  # container SERVICE: the id of the project's container of that service
  docker ps -q --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" | head -n 1
}

# ------------------------------------------------------------------ prerequisites
say "prerequisites"
scripts/install-deps.sh
scripts/start-docker.sh
[ -x "$bin/minictl" ] || make -s venv
scripts/build-images.sh
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose -p "$PROJECT" -f "$FILE")
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose -p "$PROJECT" -f "$FILE")
else
  die "neither \`docker compose\` nor docker-compose is installed (run scripts/install-deps.sh)"
fi

say "image (deploy/build.sh)"
t_build=$(date +%s.%N)
MINIK8S_IMAGE=$(deploy/build.sh | tail -n 1)
build_secs=$(elapsed "$t_build")
export MINIK8S_IMAGE
echo "image $MINIK8S_IMAGE (${build_secs}s)"

# ------------------------------------------------------------------ subnet and ports
# Reuse the choices of a running project; otherwise pick a subnet that touches no
# route, local address, resolver or Docker network here, and free ports on 127.0.0.1.
# One project at a time from here until its containers hold their ports and network,
# so two projects coming up together cannot pick the same free ones.
exec 8>"${TMPDIR:-/tmp}/minik8s-compose-up.lock"
flock 8
mkdir -p "$STATE"
running=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | head -n 1)
if [ -n "$running" ] && [ -f "$STATE/env" ]; then
  while IFS='=' read -r key value; do   # the environment wins over the saved choice
    [ -n "$key" ] && [ -z "${!key:-}" ] && export "$key=$value"
  done <"$STATE/env"
fi
docker_subnets=$(docker network ls -q | xargs -r docker network inspect \
  -f '{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true)
"$bin/python" - "$PROJECT" "$docker_subnets" >"$STATE/env.new" <<'PY'
import ipaddress, os, socket, subprocess, sys

project, docker_nets = sys.argv[1], sys.argv[2]
taken = []   # networks and addresses a compose subnet must not touch
for line in subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout.splitlines():
    dst = line.split()[0] if line.split() else ""
    if dst and dst[0].isdigit():
        taken.append(ipaddress.ip_network(dst, strict=False))
    if " via " in line:
        taken.append(ipaddress.ip_network(line.split(" via ")[1].split()[0]))
for line in subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout.splitlines():
    taken.append(ipaddress.ip_network(line.split()[3], strict=False))
for line in open("/etc/resolv.conf", encoding="utf-8", errors="replace"):
    if line.startswith("nameserver"):
        try:
            taken.append(ipaddress.ip_network(line.split()[1]))
        except ValueError:
            pass
ours = None
for line in docker_nets.splitlines():
    name, *subnets = line.split()
    for s in subnets:
        if ":" in s:
            continue
        if name == f"{project}_cluster":
            ours = s
        else:
            taken.append(ipaddress.ip_network(s, strict=False))

def free(net):
    return not any(net.overlaps(t) for t in taken)

subnet = os.environ.get("MINIK8S_COMPOSE_SUBNET") or ours
if subnet:
    if subnet != ours and not free(ipaddress.ip_network(subnet)):
        sys.exit(f"compose-up: MINIK8S_COMPOSE_SUBNET={subnet} overlaps a route, address or network here")
else:
    for cand in [f"172.{b}.0.0/16" for b in range(28, 32)] + \
                [f"192.168.{c}.0/24" for c in range(200, 250)]:
        if free(ipaddress.ip_network(cand)):
            subnet = cand
            break
    else:
        sys.exit("compose-up: no free subnet for the compose network (set MINIK8S_COMPOSE_SUBNET)")
print(f"MINIK8S_COMPOSE_SUBNET={subnet}")
# containers take addresses from the first half; the nodes and masters have fixed ones
# in the second (the kubelets' serving certificates name them; a master restarted while
# another is cut off or stopped must not take its address)
lower, upper = ipaddress.ip_network(subnet).subnets(prefixlen_diff=1)
print(f"MINIK8S_COMPOSE_IP_RANGE={lower}")
for i in range(2):
    print(f"MINIK8S_NODE_IP_{i}={upper.network_address + 10 + i}")
for base, role in ((20, "ETCD"), (30, "APISERVER"), (40, "SCHEDULER"),
                   (50, "CONTROLLER_MANAGER")):
    for i in range(3):
        print(f"MINIK8S_IP_{role}_{i}={upper.network_address + base + i}")

def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

def any_free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

defaults = {"MINIK8S_APISERVER_PORT_0": 16443, "MINIK8S_APISERVER_PORT_1": 16444,
            "MINIK8S_APISERVER_PORT_2": 16445, "MINIK8S_APISERVER_TOKEN_PORT_0": 16446,
            "MINIK8S_APISERVER_TOKEN_PORT_1": 16447, "MINIK8S_APISERVER_TOKEN_PORT_2": 16448,
            "MINIK8S_NODEPORT_0": 30080,
            "MINIK8S_NODEPORT_1": 30081, "MINIK8S_PROMETHEUS_PORT": 9090,
            "MINIK8S_ALERTMANAGER_PORT": 9093, "MINIK8S_DASHBOARD_PORT": 8001}
for var, default in defaults.items():
    if os.environ.get(var):          # chosen by the user, or by a run whose project still exists
        port = int(os.environ[var])
    elif port_free(default):
        port = default
    else:
        port = any_free()
        print(f"compose-up: 127.0.0.1:{default} is taken; {var}={port}", file=sys.stderr)
    print(f"{var}={port}")
PY
mv "$STATE/env.new" "$STATE/env"
set -a
# shellcheck disable=SC1091
. "$STATE/env"
set +a

# ------------------------------------------------------------------ PKI
# the cluster CA and every component's certificate (minik8s/composepki.py); each
# service mounts its own directory read-only. Kept while the project exists.
export MINIK8S_PKI=$PWD/$STATE/pki
"$bin/python" -m minik8s.composepki "$MINIK8S_PKI" "$MINIK8S_NODE_IP_0" "$MINIK8S_NODE_IP_1"
echo "PKI in $MINIK8S_PKI"
echo "network $MINIK8S_COMPOSE_SUBNET; apiservers 127.0.0.1:$MINIK8S_APISERVER_PORT_0,$MINIK8S_APISERVER_PORT_1,$MINIK8S_APISERVER_PORT_2 (tokens: $MINIK8S_APISERVER_TOKEN_PORT_0,$MINIK8S_APISERVER_TOKEN_PORT_1,$MINIK8S_APISERVER_TOKEN_PORT_2); NodePort 30080 on 127.0.0.1:$MINIK8S_NODEPORT_0 (node-0) and 127.0.0.1:$MINIK8S_NODEPORT_1 (node-1)"
echo "Prometheus 127.0.0.1:$MINIK8S_PROMETHEUS_PORT, Alertmanager 127.0.0.1:$MINIK8S_ALERTMANAGER_PORT, dashboard 127.0.0.1:$MINIK8S_DASHBOARD_PORT"

# ------------------------------------------------------------------ up
say "${compose[*]} up -d"
t_up=$(date +%s.%N)
if ! timeout "$TIMEOUT" "${compose[@]}" up -d --remove-orphans; then
  "${compose[@]}" ps >&2 || true
  "${compose[@]}" logs --tail 30 >&2 || true
  die "\`${compose[*]} up -d\` failed (logs above); stop with scripts/compose-down.sh"
fi
flock -u 8

# Every container running and healthy, within TIMEOUT (one `docker inspect` a round:
# docker-compose itself is slow to start).
services=$("${compose[@]}" config --services)
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  declare -A state=()
  while read -r svc st; do
    state[$svc]=$st
  done < <(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker inspect \
             -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' 2>/dev/null)
  bad=()
  for svc in $services; do
    [ "${state[$svc]:-missing}" = running/healthy ] || bad+=("$svc=${state[$svc]:-missing}")
  done
  unset state
  [ ${#bad[@]} -eq 0 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "compose-up: not healthy after ${TIMEOUT}s: ${bad[*]}" >&2
    "${compose[@]}" ps >&2 || true
    for b in "${bad[@]}"; do
      echo "--- logs of ${b%%=*}" >&2
      "${compose[@]}" logs --tail 40 "${b%%=*}" >&2 || true
    done
    die "the cluster did not become healthy (stop it with scripts/compose-down.sh)"
  fi
  sleep 1
done
echo "all $(wc -w <<<"$services") containers healthy after $(elapsed "$t_up")s"

# ------------------------------------------------------------------ pod images into the nodes
say "loading ${IMAGES[*]} into the nodes"
for node in "${NODES[@]}"; do
  cid=$(container "$node")
  need=()
  for img in "${IMAGES[@]}"; do
    want=$(docker image inspect -f '{{.Id}}' "$img")
    have=$(docker exec "$cid" docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
    [ "$want" = "$have" ] || need+=("$img")
  done
  if [ ${#need[@]} -eq 0 ]; then
    echo "$node: up to date"
  else
    docker save "${need[@]}" | docker exec -i "$cid" docker load -q | sed "s/^/$node: /"
  fi
done

# ------------------------------------------------------------------ client config
servers="127.0.0.1:$MINIK8S_APISERVER_PORT_0,127.0.0.1:$MINIK8S_APISERVER_PORT_1,127.0.0.1:$MINIK8S_APISERVER_PORT_2"
home_config=$("$bin/python" - "$STATE/config" "$servers" "$MINIK8S_PKI" <<'PY'
import sys
from pathlib import Path
from minik8s import config
servers, pki = sys.argv[2].split(","), Path(sys.argv[3])
creds = {config.CA: str(pki / "ca.crt"), config.CERT: str(pki / "admin.crt"),
         config.KEY: str(pki / "admin.key")}   # the administrator (system:masters)
config.write(Path(sys.argv[1]), servers, creds)      # this cluster's own copy
config.write(config.default_path(), servers, creds)  # where minictl looks (as local-up does)
print(config.default_path())
PY
)
echo "minictl config written to $STATE/config and $home_config"
export MINIK8S_CONFIG=$PWD/$STATE/config
unset MINIK8S_SERVERS

say "nodes"
deadline=$(( $(date +%s) + 60 ))
until [ "$("$bin/minictl" get nodes 2>/dev/null | grep -c ' Ready ')" -ge ${#NODES[@]} ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    "$bin/minictl" get nodes >&2 || true
    die "the nodes did not become Ready within 60 s (see: ${compose[*]} logs node-0)"
  fi
  sleep 1
done
show get nodes -o wide

# ------------------------------------------------------------------ the demo
if [ "${MINIK8S_COMPOSE_NO_DEMO:-}" != 1 ]; then
  say "demo: examples/hello.yaml with its Service on NodePort 30080"
  "$bin/python" - examples/hello.yaml >"$STATE/hello.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d.get("kind") == "Service":
        d["spec"]["ports"][0]["nodePort"] = 30080
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
PY
  show apply -f "$STATE/hello.yaml"
  deadline=$(( $(date +%s) + 120 ))
  until [ "$("$bin/minictl" get pods -l app=hello 2>/dev/null | grep -c ' 1/1 ')" -ge 3 ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      "$bin/minictl" get pods -o wide >&2 || true
      "$bin/minictl" describe pods -l app=hello >&2 || true
      die "the hello pods did not become Ready within 120 s"
    fi
    sleep 1
  done
  for port in "$MINIK8S_NODEPORT_0" "$MINIK8S_NODEPORT_1"; do
    echo
    echo "\$ curl http://127.0.0.1:$port/   # NodePort 30080 of node-$([ "$port" = "$MINIK8S_NODEPORT_0" ] && echo 0 || echo 1), four times: any pod, on either node"
    ok=0
    deadline=$(( $(date +%s) + 30 ))
    while [ "$ok" -lt 4 ]; do
      if out=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>&1); then
        echo "$out"; ok=$((ok + 1))
      elif [ "$(date +%s)" -ge "$deadline" ]; then
        die "http://127.0.0.1:$port/ does not answer: $out"
      else
        sleep 0.5
      fi
    done
  done
fi

echo
show get pods -o wide
echo
show get svc
echo
show get leases -n kube-system
if "$bin/minictl" cluster-info --help >/dev/null 2>&1; then
  echo
  show cluster-info
fi

total=$(elapsed "$t_start")
cat <<MSG

The compose cluster is up in ${total}s (image ${build_secs}s, containers $(elapsed "$t_up")s).
Use it from this shell:
  export MINIK8S_CONFIG=$PWD/$STATE/config     # or nothing: it is also in $home_config
  $bin/minictl get pods -A -o wide
  $bin/minictl logs <pod>; $bin/minictl exec <pod> -- sh
  curl http://127.0.0.1:$MINIK8S_NODEPORT_0/
Monitoring (docs/monitoring.md):
  dashboard     http://127.0.0.1:$MINIK8S_DASHBOARD_PORT/
  Prometheus    http://127.0.0.1:$MINIK8S_PROMETHEUS_PORT/   (also /classic/targets, /classic/alerts)
  Alertmanager  http://127.0.0.1:$MINIK8S_ALERTMANAGER_PORT/api/v2/alerts   (an API: no web UI)
Containers: ${compose[*]} ps | logs <service>
Stop it (removes its containers, network and volumes): scripts/compose-down.sh   (make down)
MSG
