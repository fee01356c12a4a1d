"""The Endpoints controller: the pods behind each Service, as Kubernetes'.

For every Service with a selector, an Endpoints object of the same name
lists the selected pods that have an IP, have not finished and are not
terminating (terminating ones stay only with publishNotReadyAddresses, as
Kubernetes). Ready pods go to addresses, the others to notReadyAddresses
(all to addresses with publishNotReadyAddresses). Each service port's
targetPort is resolved per pod: a number as is, a name through the pod's
container ports of that name and protocol; a pod without the named port is
left out of that port. Pods are grouped into one subset per distinct set of
resolved ports, and everything is sorted, so an unchanged world gives an
equal object and nothing is written.

Like Kubernetes, the Endpoints carries the Service's labels and no
ownerReference: it is deleted here when the Service is gone (including
Services deleted while no leader ran: every Endpoints is looked at once on
start). Services without a selector manage their own Endpoints, untouched.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable

from controller_manager import pods as podutil
from controller_manager.base import Controller, split_key
from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import NAMESPACE_INDEX

HEADLESS_LABEL = "service.kubernetes.io/headless"
FINISHED_PHASES = ("Succeeded", "Failed")

PortKey = tuple[str, int, str]  # (name, port, protocol) of an EndpointPort


# ---------------------------------------------------------------- pure logic

def selects(service: t.Service, pod: t.Pod) -> bool:
    """Whether the Service's selector picks the pod (a Service without one picks none)."""
    selector = service.spec.selector
    return bool(selector) and pod.metadata.namespace == service.metadata.namespace and \
        all(pod.metadata.labels.get(k) == v for k, v in selector.items())


def is_listed(pod: t.Pod, publish_not_ready: bool) -> bool:
    """Whether a pod appears in the Endpoints at all, ready or not."""
    if not pod.status.pod_ip or pod.status.phase in FINISHED_PHASES:
        return False
    return publish_not_ready or not pod.metadata.HasField("deletion_timestamp")


def resolve_port(pod: t.Pod, port: t.ServicePort) -> int | None:
    """The pod's port for a service port: the targetPort number, or its named container port."""
    target = port.target_port
    if target.WhichOneof("value") != "str_val":
        return target.int_val or port.port
    protocol = port.protocol or "TCP"
    for container in pod.spec.containers:
        for cp in container.ports:
            if cp.name == target.str_val and (cp.protocol or "TCP") == protocol:
                return cp.container_port
    return None


def pod_ports(service: t.Service, pod: t.Pod) -> tuple[PortKey, ...] | None:
    """The ports the pod serves the Service on, sorted; None if it serves none.

    A headless Service without ports lists its pods with no ports, as Kubernetes.
    """
    if not service.spec.ports:
        return () if service.spec.cluster_ip == "None" else None
    ports = [(p.name, number, p.protocol or "TCP") for p in service.spec.ports
             if (number := resolve_port(pod, p)) is not None]
    return tuple(sorted(ports)) or None


def address_of(service: t.Service, pod: t.Pod) -> t.EndpointAddress:
    address = t.EndpointAddress(ip=pod.status.pod_ip, target_ref=t.ObjectReference(
        kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name,
        uid=pod.metadata.uid))
    if pod.spec.node_name:
        address.node_name = pod.spec.node_name
    if pod.spec.hostname and pod.spec.subdomain == service.metadata.name:
        address.hostname = pod.spec.hostname
    return address


def _sorted(addresses: Iterable[t.EndpointAddress]) -> list[t.EndpointAddress]:
    return sorted(addresses, key=lambda a: (a.ip, a.target_ref.name))


def build_subsets(service: t.Service, pods: Iterable[t.Pod]) -> list[t.EndpointSubset]:
    """The Endpoints subsets for these (selected) pods: one per distinct port set."""
    publish = service.spec.publish_not_ready_addresses
    groups: dict[tuple[PortKey, ...], tuple[list, list]] = {}
    for pod in pods:
        ports = pod_ports(service, pod) if is_listed(pod, publish) else None
        if ports is None:
            continue
        ready, not_ready = groups.setdefault(ports, ([], []))
        (ready if publish or podutil.is_ready(pod) else not_ready).append(
            address_of(service, pod))
    return [t.EndpointSubset(
                addresses=_sorted(ready), not_ready_addresses=_sorted(not_ready),
                ports=[t.EndpointPort(name=n, port=p, protocol=proto) for n, p, proto in ports])
            for ports, (ready, not_ready) in sorted(groups.items())]


def endpoints_for(service: t.Service, pods: Iterable[t.Pod]) -> t.Endpoints:
    """The Endpoints object the Service should have."""
    meta = service.metadata
    endpoints = t.Endpoints(
        metadata=t.ObjectMeta(name=meta.name, namespace=meta.namespace, labels=meta.labels),
        subsets=build_subsets(service, pods))
    if service.spec.cluster_ip == "None":
        endpoints.metadata.labels[HEADLESS_LABEL] = ""
    return endpoints


# ---------------------------------------------------------------- controller

class EndpointsController(Controller):
    name = "endpoint"
    kind = "Service"

    def register(self) -> None:
        self.pods = self.ctx.informer("Pod")
        self.endpoints = self.ctx.informer("Endpoints")
        self.pods.add_handler(self._pod_changed, self._pod_changed, self._pod_changed)
        self.endpoints.add_handler(on_delete=self._endpoints_deleted)

    def _pod_changed(self, *versions: t.Pod) -> None:
        """Enqueue every Service of the pod's namespace that selects any version of it."""
        for service in self.primary.by_index(NAMESPACE_INDEX, versions[-1].metadata.namespace):
            if any(selects(service, pod) for pod in versions):
                self.enqueue(service)

    def _endpoints_deleted(self, endpoints: t.Endpoints) -> None:
        """Deleted by someone else while its Service lives: make it again."""
        key = kinds.object_key(endpoints)
        if self.primary.get(key) is not None:
            self.queue.add(key)

    async def run(self) -> None:
        for endpoints in self.endpoints.list():  # leftovers of Services deleted meanwhile
            self.queue.add(kinds.object_key(endpoints))
        await super().run()

    async def reconcile(self, key: str) -> None:
        service = self.primary.get(key)
        if service is None:
            await self._delete(key)
            return
        if not service.spec.selector:
            return
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, service.metadata.namespace)
                if selects(service, p)]
        await self._write(endpoints_for(service, pods), self.endpoints.get(key))

    async def _write(self, desired: t.Endpoints, current: t.Endpoints | None) -> None:
        """Create or update to desired; nothing if current already says the same."""
        if current is None:
            await self.ctx.api.create(desired)
            return
        if current.subsets == desired.subsets and \
                dict(current.metadata.labels) == dict(desired.metadata.labels):
            return
        updated = t.Endpoints()
        updated.CopyFrom(current)
        updated.metadata.labels.clear()
        updated.metadata.labels.update(desired.metadata.labels)
        del updated.subsets[:]
        updated.subsets.extend(desired.subsets)
        await self.ctx.api.update(updated)

    async def _delete(self, key: str) -> None:
        """The Service is gone: so goes its Endpoints (the cache may not have it yet)."""
        namespace, name = split_key(key)
        with contextlib.suppress(errors.NotFound):
            await self.ctx.api.delete("Endpoints", name, namespace)
