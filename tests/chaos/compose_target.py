"""The compose target: a compose project of the tests' own (deploy/docker-compose.yml).

Each process is a container named after its service (etcd-0, apiserver-1,
scheduler-2, controller-manager-0, node-1); lease holders are named
<hostname>_<pid>_<random> with the service as hostname and the PID as seen in
the container. Every container runs its process under docker-init with
`restart: unless-stopped`, so:

* kill SIGKILLs the process from the host (the child of docker-init): the
  container exits and Docker restarts it, as after a crash;
* stop is `docker kill`, a manual stop Docker does not undo; restart is
  `docker start`;
* a partition disconnects containers from the project's network, and heals
  by connecting them again with the same address (each master has a fixed
  one in deploy/docker-compose.yml) and their service name as alias (so the
  name resolves again);
* pods run in each node container's own Docker engine, reached by
  `docker exec`; a ClusterIP is asked from inside a node, where its proxy
  serves it. Only the project's own containers and network are touched.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from kubelet import labels
from minik8s.localcluster import ClusterError
from tests.chaos.base import MASTER_ROLES, PodContainer
from tests.compose import Compose

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
METRICS_PORT = 8080          # the apiservers' --http-port in deploy/docker-compose.yml
NODE_ROLE = "kubelet"        # the role of a node container, as in process mode
_LIST_PODS = 'docker ps -q --no-trunc "$@" | xargs -r docker inspect'


class ContainerStarts:
    """Counts restarts of the project's containers: Docker's start events, per service."""

    def __init__(self, project: str, services: set[str]) -> None:
        self._client = docker.from_env()
        self._events = self._client.events(decode=True, filters={
            "type": "container", "event": "start", "label": f"{PROJECT_LABEL}={project}"})
        self.restarts: Counter[str] = Counter()
        self._services = services
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="container-starts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._events:
                service = event.get("Actor", {}).get("Attributes", {}).get(SERVICE_LABEL)
                if service in self._services:
                    with self._lock:
                        self.restarts[service] += 1
        except Exception:  # the stream closed by stop() ends this way too
            return

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.restarts)

    def stop(self) -> None:
        self._events.close()
        self._thread.join(timeout=10)
        self._client.close()


def _role(service: str) -> str:
    """etcd-0 -> etcd, node-1 -> kubelet (a node container runs its kubelet, proxy, DNS)."""
    role, _, index = service.rpartition("-")
    return "" if not index.isdigit() else NODE_ROLE if role == "node" else role


def _of_the_cluster(service: str) -> bool:
    return _role(service) in (*MASTER_ROLES, NODE_ROLE)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def _ns_pid(pid: int) -> int:
    """A host PID as the process's own PID namespace numbers it (0: gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(x for x in f if x.startswith("NSpid:"))
    except (FileNotFoundError, StopIteration):
        return 0
    return int(line.split()[-1])


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class ComposeTarget:
    kind = "compose"
    cluster_label = "minik8s"    # node-entrypoint.sh runs its kubelet with the default name
    stop_verb = "docker kill"
    node_loss = "docker kill a node"
    node_loss_restarts = True
    can_partition = True

    def __init__(self, compose: Compose) -> None:
        self.compose = compose
        self.servers = compose.servers
        self._docker = docker.from_env()
        self._containers: dict[str, Container] = {   # the cluster's, not its monitoring
            c.labels[SERVICE_LABEL]: c for c in self._docker.containers.list(
                all=True, filters={"label": f"{PROJECT_LABEL}={compose.project}"})
            if _of_the_cluster(c.labels[SERVICE_LABEL])}
        self._network = self._docker.networks.list(filters={"label": [
            f"{PROJECT_LABEL}={compose.project}", "com.docker.compose.network=cluster"]})[0]
        self._cut: dict[str, str] = {}    # service -> its address, while disconnected

    # ------------------------------------------------------------ containers

    def _state(self, name: str) -> dict[str, Any]:
        container = self._containers[name]
        container.reload()
        return container.attrs["State"]

    def members(self, role: str) -> list[str]:
        return sorted(s for s in self._containers if _role(s) == role)

    def alive(self, name: str) -> bool:
        return self._state(name)["Status"] == "running"

    def pid(self, name: str) -> int:
        init = self._state(name)["Pid"]   # docker-init
        return next(iter(_children(init)), 0) if init else 0

    def holder(self, identity: str) -> str | None:
        service, pid = identity.split("_")[0], int(identity.split("_")[-2])
        if service not in self._containers:
            return None
        main = self.pid(service)
        return service if main and _ns_pid(main) == pid else None

    def kill(self, name: str) -> None:
        pid = self.pid(name)
        if not pid:
            raise ClusterError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)
        self._until(lambda: _gone(pid), 10, f"{name} (pid {pid}) did not die")

    def signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.pid(name)
        if pid:
            os.kill(pid, sig)

    def supervised(self, name: str) -> bool:
        return True   # restart: unless-stopped

    def stop(self, name: str) -> None:
        self._containers[name].kill()
        self._until(lambda: not self.alive(name), 30, f"{name} did not stop")

    def restart(self, name: str) -> None:
        self._containers[name].start()

    @staticmethod
    def _until(done: Callable[[], bool], timeout: float, failure: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise ClusterError(failure)
            time.sleep(0.05)

    def wait_ready(self, timeout: float, names: list[str] | None = None) -> None:
        """Running and healthy by the compose file's health checks."""
        deadline = time.monotonic() + timeout
        for name in names or sorted(self._containers):
            while True:
                state = self._state(name)
                health = state.get("Health", {}).get("Status")
                if state["Status"] == "running" and health == "healthy":
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(f"{name} not ready after {timeout:.0f}s: "
                                       f"{state['Status']}, {health}")
                time.sleep(0.2)

    def watch_restarts(self) -> ContainerStarts:
        return ContainerStarts(self.compose.project, set(self._containers))

    # ------------------------------------------------------------ network

    def _address(self, name: str) -> str:
        """Its address on the project's network ("" while disconnected)."""
        container = self._containers[name]
        container.reload()
        net = container.attrs["NetworkSettings"]["Networks"].get(self._network.name) or {}
        return net.get("IPAddress", "")

    def apiserver_metrics(self) -> dict[str, str]:
        """Read inside each container: the same with or without its network."""
        out = {}
        for name in self.members("apiserver"):
            if self.alive(name):
                code, text = self._exec(name, "curl", "-fsS", "--max-time", "5",
                                        f"http://127.0.0.1:{METRICS_PORT}/metrics")
                if code == 0:
                    out[name] = text
        return out

    def partition(self, names: list[str]) -> None:
        for name in names:
            self._cut[name] = self._address(name)
            self._network.disconnect(self._containers[name])

    def heal(self) -> None:
        """Connect them again, each with its address and its service name as alias.

        A container Docker is restarting (a deposed leader that exited) is
        connected once it runs again.
        """
        for name, address in list(self._cut.items()):
            self._until(lambda n=name: self._state(n)["Status"] != "restarting", 60,
                        f"{name} stays in restarting")
            self._network.connect(self._containers[name], ipv4_address=address,
                                  aliases=[name])
            del self._cut[name]

    # ------------------------------------------------------------ nodes and pods

    def lose_node(self, node: str) -> None:
        self.stop(node)

    def restore_node(self, node: str) -> None:
        self.restart(node)

    def _exec(self, node: str, *argv: str) -> tuple[int, str]:
        code, out = self._containers[node].exec_run(list(argv))
        return code, out.decode()

    def pod_containers(self, node: str, namespace: str, *, all: bool = False) \
            -> list[PodContainer]:
        filters = [f"--filter=label={labels.NODE}={node}",
                   f"--filter=label={labels.POD_NAMESPACE}={namespace}"]
        code, out = self._exec(node, "sh", "-c", _LIST_PODS, "sh", *(["-a"] if all else []),
                               *filters)
        if code != 0:
            raise ClusterError(f"listing the containers of {node}: {out.strip()}")
        return [PodContainer(c["Id"], c["Name"].lstrip("/"), c["Config"]["Labels"] or {},
                             c["State"]["Running"]) for c in json.loads(out or "[]")]

    def kill_container(self, node: str, container: str) -> None:
        self._exec(node, "docker", "kill", container)

    def _curl(self, ip: str, port: int) -> str | None:
        node = next((n for n in self.members(NODE_ROLE) if self.alive(n)), "")
        if not node:
            return None
        code, out = self._exec(node, "curl", "-fsS", "--max-time", "1", f"http://{ip}:{port}/")
        return out.strip() if code == 0 else None

    async def http_get(self, ip: str, port: int) -> str | None:
        return await asyncio.to_thread(self._curl, ip, port)
