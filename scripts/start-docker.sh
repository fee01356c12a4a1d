#!/usr/bin/env bash
# Make sure a Docker engine answers: reuse one that does, else start dockerd in
# the background (no systemd here) and wait up to 60 s. Never stops an engine.
set -euo pipefail
log=${MINIK8S_DOCKERD_LOG:-/var/log/minik8s-dockerd.log}

answers() { timeout 10 docker info >/dev/null 2>&1; }

answers && exit 0
command -v docker >/dev/null 2>&1 || { echo "start-docker: no docker client (run scripts/install-deps.sh)" >&2; exit 1; }
command -v dockerd >/dev/null 2>&1 || { echo "start-docker: docker does not answer and there is no dockerd (run scripts/install-deps.sh)" >&2; exit 1; }

# A dockerd that is still starting owns /var/run/docker.pid: wait for it instead of starting another.
pid=$(cat /var/run/docker.pid 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "start-docker: waiting for dockerd (pid $pid)"
else
  echo "start-docker: starting dockerd (log: $log)"
  mkdir -p "$(dirname "$log")"
  nohup dockerd >"$log" 2>&1 </dev/null &
  pid=$!
fi

for _ in $(seq 300); do
  answers && { echo "start-docker: docker answers"; exit 0; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then why="did not answer within 60 s"; else why="exited"; fi
echo "start-docker: dockerd (pid $pid) $why; last lines of $log:" >&2
tail -n 20 "$log" >&2 2>/dev/null || echo "(no log)" >&2
exit 1
