"""Resource amounts of pods and nodes, counted as kube-scheduler counts them.

A pod's request is its containers' requests added up, but at least the
request of its largest init container, since init containers run one at a
time before the others. Quantity strings are parsed once each: the same few
("100m", "128Mi") recur on every pod.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from minik8s import quantity
from minik8s.api.v1 import types_pb2

# Kubernetes' schedutil defaults for a container that requests nothing. They
# are used for scoring only, so that best-effort pods still spread out.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0  # bytes
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory,
                         self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory,
                         self.pods - other.pods)

    def fits_within(self, capacity: Resources) -> bool:
        return (self.milli_cpu <= capacity.milli_cpu and self.memory <= capacity.memory
                and self.pods <= capacity.pods)


ZERO = Resources()


@lru_cache(maxsize=4096)
def _milli_cpu(text: str) -> int:
    return quantity.cpu_millis(text)


@lru_cache(maxsize=4096)
def _units(text: str) -> int:
    return quantity.to_bytes(text)


def _container_requests(container: types_pb2.Container, for_scoring: bool) -> tuple[int, int]:
    requests = container.resources.requests
    cpu, memory = requests.get("cpu"), requests.get("memory")
    if for_scoring:  # only a missing request is defaulted, as in Kubernetes; "0" stays 0
        return (DEFAULT_MILLI_CPU_REQUEST if cpu is None else _milli_cpu(cpu),
                DEFAULT_MEMORY_REQUEST if memory is None else _units(memory))
    return (0 if cpu is None else _milli_cpu(cpu), 0 if memory is None else _units(memory))


def _pod_requests(pod: types_pb2.Pod, for_scoring: bool) -> Resources:
    cpu = memory = 0
    for container in pod.spec.containers:
        c_cpu, c_memory = _container_requests(container, for_scoring)
        cpu, memory = cpu + c_cpu, memory + c_memory
    for container in pod.spec.init_containers:
        i_cpu, i_memory = _container_requests(container, for_scoring)
        cpu, memory = max(cpu, i_cpu), max(memory, i_memory)
    return Resources(cpu, memory, 1)


def pod_requests(pod: types_pb2.Pod) -> Resources:
    """What the pod needs on its node: checked against allocatable by the Fit filter."""
    return _pod_requests(pod, for_scoring=False)


def pod_requests_for_scoring(pod: types_pb2.Pod) -> Resources:
    """As pod_requests, with a container's missing cpu/memory request taken as 100m/200Mi."""
    return _pod_requests(pod, for_scoring=True)


def allocatable(node: types_pb2.Node) -> Resources:
    """What the node offers to pods; a resource it does not report is 0."""
    alloc = node.status.allocatable
    cpu, memory, pods = alloc.get("cpu"), alloc.get("memory"), alloc.get("pods")
    return Resources(0 if cpu is None else _milli_cpu(cpu),
                     0 if memory is None else _units(memory),
                     0 if pods is None else _units(pods))
