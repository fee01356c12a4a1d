"""Wiring of the kubelet process (`minik8s kubelet --node-name NAME`).

Three sources put pod keys on one work queue: the informer of the pods bound
to this node, Docker's event stream of this node's containers (a container
died, or was removed behind our back), and the probers. Workers run
``PodSyncer.sync(key)``; a slow resync catches anything missed while the
engine or the apiserver was away. Apart from that, the stats cache samples the
containers' usage for the Stats API and the running pod and container gauges.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import docker

from kubelet import api as kubelet_api
from kubelet import labels
from kubelet.auth import Guard, apiserver_review
from kubelet.containers import Owner
from kubelet.node import NodeAgent, NodeConfig
from kubelet.nodenet import NodeNetwork
from kubelet.pods import PodConfig, PodSyncer
from kubelet.prober import ProbeManager
from kubelet.runtime import Runtime
from kubelet.stats import StatsCache
from minik8s import errors, podnet, serving
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.events import EventRecorder
from minik8s.informer import Informer
from minik8s.retry import Backoff
from minik8s.workqueue import WorkQueue, run_workers

log = logging.getLogger("minik8s.kubelet")

_WATCHED_ACTIONS = {"create", "start", "die", "destroy", "oom", "kill", "stop"}


@dataclass
class KubeletOptions:
    node_name: str
    servers: list[str]
    cluster: str = "minik8s"
    network: str = "minik8s"
    network_mode: str = "local"      # local: one engine, one bridge; node: an engine per node
    cluster_cidr: str = "10.244.0.0/16"
    node_ip: str = "127.0.0.1"
    bind_address: str = "127.0.0.1"
    port: int = 10250
    http_port: int = 10248
    pause_image: str = "minik8s/pause:3.9"
    root_dir: Path = Path("/var/lib/minik8s/kubelet")
    cpu: str = ""
    memory: str = ""
    max_pods: int = 110
    node_labels: dict[str, str] | None = None
    crash_backoff_initial: float = 10.0
    crash_backoff_max: float = 300.0
    workers: int = 16
    status_interval: float = 10.0
    lease_renew_interval: float = 2.0
    resync_interval: float = 30.0
    housekeeping_interval: float = 10.0   # container stats and counts, as cAdvisor's
    cluster_dns: str = ""
    cluster_domain: str = "cluster.local"
    tls: serving.TlsFiles | None = None   # None: a plaintext, open API (--insecure clusters)


class Kubelet:
    def __init__(self, opts: KubeletOptions) -> None:
        self.opts = opts
        self.docker = docker.from_env(timeout=300)
        self.runtime = Runtime(self.docker, opts.cluster, opts.node_name, opts.network)
        self.client = ApiClient(opts.servers)
        self.queue = WorkQueue("kubelet")
        self.pods = Informer(self.client, "Pod", field_selector=f"spec.nodeName={opts.node_name}")
        self.services = Informer(self.client, "Service")
        # in node mode every Node matters: their podCIDRs are routed to them
        self.node_informer = Informer(
            self.client, "Node", field_selector="" if opts.network_mode == "node"
            else f"metadata.name={opts.node_name}")
        self.nodenet = NodeNetwork(self.runtime, opts.cluster_cidr) \
            if opts.network_mode == "node" else None
        self.events = EventRecorder(self.client, "kubelet", host=opts.node_name)
        self.stats = StatsCache(self.runtime, opts.node_name, opts.housekeeping_interval)
        self.probes = ProbeManager(self.runtime.exec, lambda key, _reason: self.queue.add(key))
        owner = Owner(opts.cluster, opts.node_name)
        self.syncer = PodSyncer(
            PodConfig(owner=owner, pause_image=opts.pause_image, host_ip=opts.node_ip,
                      root_dir=opts.root_dir, cluster_dns=opts.cluster_dns,
                      cluster_domain=opts.cluster_domain,
                      crash_backoff=(opts.crash_backoff_initial, opts.crash_backoff_max)),
            self.client, self.runtime, self.pods, self.services, self.probes, self.events,
            requeue=self.queue.add_after)
        self._wire()

    def _wire(self) -> None:
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.node_informer.add_handler(self._node_seen, lambda _old, new: self._node_seen(new),
                                       self._node_seen)

    def _pod_added(self, pod: t.Pod) -> None:
        self.syncer.starts.seen(pod)
        self._enqueue_pod(pod)

    def _pod_deleted(self, pod: t.Pod) -> None:
        self.syncer.starts.forget(pod.metadata.uid)
        self._enqueue_pod(pod)

    def _pod_updated(self, old: t.Pod, new: t.Pod) -> None:
        """Act on changes of what to run, not on status writes (our own, mostly)."""
        if _differs_semantically(old, new):
            self._enqueue_pod(new)

    def _enqueue_pod(self, pod: t.Pod) -> None:
        self.queue.add(f"{pod.metadata.namespace}/{pod.metadata.name}")

    async def _node_seen(self, node: t.Node) -> None:
        if self.nodenet is not None:
            await self.nodenet.sync_routes(self.node_informer.list(), self.opts.node_name)
        if node.metadata.name != self.opts.node_name or not node.spec.pod_cidr \
                or node.spec.pod_cidr == self.syncer.pod_cidr:
            return
        log.info("podCIDR %s", node.spec.pod_cidr)
        if self.nodenet is not None:
            await self.nodenet.pod_cidr_assigned(node.spec.pod_cidr)
        self.syncer.pod_cidr = node.spec.pod_cidr
        for pod in self.pods.list():
            self._enqueue_pod(pod)

    def _docker_event(self, action: str, attrs: dict[str, str]) -> None:
        key = labels.pod_key(attrs)
        if key and action.split(":")[0] in _WATCHED_ACTIONS:
            self.queue.add(key)

    async def _resync(self) -> None:
        """Every pod bound here and every pod with containers here, now and then."""
        while True:
            keys = {f"{p.metadata.namespace}/{p.metadata.name}" for p in self.pods.list()}
            try:
                keys |= await self.runtime.pod_keys()
            except Exception as exc:  # engine away; the next round tries again
                log.warning("listing containers: %s", exc)
            for key in keys:
                self.queue.add(key)
            await asyncio.sleep(self.opts.resync_interval)

    async def _register(self, agent: NodeAgent) -> None:
        delays = Backoff(0.2, 5.0)
        while True:
            try:
                await agent.register()
                return
            except errors.ApiError as err:
                log.warning("registering node %s: %s", self.opts.node_name, err)
                await asyncio.sleep(delays.next())

    async def run(self) -> int:
        opts = self.opts
        if self.nodenet is None:
            await self.runtime.call(podnet.create, opts.network, opts.cluster_cidr, self.docker)
        server = serving.make_grpc_server()
        health = serving.add_grpc_health(server)
        guard = Guard(apiserver_review(self.client)) if opts.tls else None
        kubelet_api.add_to_server(server, kubelet_api.KubeletApi(
            self.docker, self.runtime.executor, opts.cluster, opts.node_name,
            stats=lambda: self.stats.latest, guard=guard))
        port = serving.add_port(server, f"{opts.bind_address}:{opts.port}", opts.tls)
        await server.start()
        http = serving.HttpEndpoints(healthz=self._engine_answers, readyz=self.pods.has_synced)
        http_port = await http.start(opts.bind_address, opts.http_port)
        log.info("node %s: kubelet API on %s:%d, http://%s:%d (healthz, readyz, metrics)",
                 opts.node_name, opts.bind_address, port, opts.bind_address, http_port)
        agent = NodeAgent(self.client, NodeConfig(
            name=opts.node_name, address=opts.node_ip, kubelet_port=port,
            runtime_version=await self.runtime.version(), cpu=opts.cpu, memory=opts.memory,
            max_pods=opts.max_pods, labels=opts.node_labels or {},
            status_interval=opts.status_interval,
            lease_renew_interval=opts.lease_renew_interval))
        await self._register(agent)
        for informer in (self.node_informer, self.services, self.pods):
            informer.start()
        events = self.runtime.watch_events(self._docker_event)
        # the pods too: a worker that syncs a pod before the Pod list is in would take its
        # running containers for stale ones and remove them
        await asyncio.gather(self.services.wait_synced(), self.pods.wait_synced())
        await serving.set_serving(health, True)
        tasks = [asyncio.create_task(c) for c in (
            agent.run_status(), agent.run_lease(), self.events.run(), self._resync(),
            self.stats.run(),
            run_workers(self.queue, self.syncer.sync, opts.workers))]
        signal_name = await serving.wait_for_termination()
        log.info("%s: stopping (pods keep running)", signal_name)
        self.queue.shutdown()
        events.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.probes.stop()
        for informer in (self.node_informer, self.services, self.pods):
            await informer.stop()
        await http.stop()
        await server.stop(1)
        await self.client.close()
        return 0

    async def _engine_answers(self) -> bool:
        await self.runtime.call(self.docker.ping)
        return True


def _differs_semantically(old: t.Pod, new: t.Pod) -> bool:
    """As kubelet's config source: spec, identity and deletion matter; status does not."""
    return (old.spec != new.spec or old.metadata.uid != new.metadata.uid
            or old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
            or old.metadata.deletion_grace_period_seconds
            != new.metadata.deletion_grace_period_seconds)
