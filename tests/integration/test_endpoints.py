"""The Endpoints controller against a real cluster; the test plays the kubelet (pod status)."""
from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from tests.integration.conftest import _start
from tests.integration.helpers import eventually, pod

PROMPT = 2.0  # seconds within which a pod change must show in the Endpoints


@pytest.fixture(scope="module")
def ep_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("ep")), schedulers=1, controller_managers=1)
    yield c
    c.stop()


@pytest.fixture
async def api(ep_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(ep_cluster.servers) as client:
        yield client


@pytest.fixture
async def ns(api: ApiClient) -> str:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    return name


def service(name: str, namespace: str, selector: dict[str, str] | None,
            *ports: t.ServicePort) -> t.Service:
    return t.Service(metadata=t.ObjectMeta(name=name, namespace=namespace),
                     spec=t.ServiceSpec(selector=selector or {},
                                        ports=ports or [t.ServicePort(port=80)]))


async def running(api: ApiClient, namespace: str, name: str, ip: str, ready: bool,
                  *ports: t.ContainerPort) -> None:
    """Create a pod on a node and report it Running with an IP, as its kubelet would."""
    p = pod(name, namespace, app="web")
    p.spec.node_name = "node-a"
    p.spec.containers[0].ports.extend(ports)
    await api.create(p)
    await set_ready(api, namespace, name, ready, ip)


async def set_ready(api: ApiClient, namespace: str, name: str, ready: bool,
                    ip: str = "") -> None:
    async def attempt() -> None:
        p = await api.get("Pod", name, namespace)
        p.status.phase = "Running"
        p.status.pod_ip = ip or p.status.pod_ip
        del p.status.conditions[:]
        condition = p.status.conditions.add(type="Ready", status=str(ready))
        condition.last_transition_time.GetCurrentTime()
        await api.update_status(p)
    await retry_on_conflict(attempt)


async def endpoints(api: ApiClient, namespace: str, name: str) -> t.Endpoints | None:
    try:
        return await api.get("Endpoints", name, namespace)
    except errors.NotFound:
        return None


async def addresses(api: ApiClient, namespace: str,
                    name: str = "web") -> tuple[set[str], set[str]] | None:
    """(ready IPs, not-ready IPs) of the Endpoints, or None while there is none."""
    ep = await endpoints(api, namespace, name)
    if ep is None:
        return None
    return ({a.ip for s in ep.subsets for a in s.addresses},
            {a.ip for s in ep.subsets for a in s.not_ready_addresses})


async def test_ready_pods_behind_a_service(api: ApiClient, ns: str) -> None:
    await api.create(service("web", ns, {"app": "web"},
                             t.ServicePort(port=80, target_port=t.IntOrString(int_val=8080))))
    await running(api, ns, "a", "10.244.0.1", True)
    await running(api, ns, "b", "10.244.0.2", True)
    await running(api, ns, "c", "10.244.0.3", False)
    other = pod("other", ns, app="db")
    await api.create(other)
    await set_ready(api, ns, "other", True, "10.244.0.9")

    want = ({"10.244.0.1", "10.244.0.2"}, {"10.244.0.3"})
    await eventually(lambda: _equals(addresses(api, ns), want))
    ep = await api.get("Endpoints", "web", ns)
    assert [(p.port, p.protocol) for s in ep.subsets for p in s.ports] == [(8080, "TCP")]
    target = ep.subsets[0].addresses[0].target_ref
    assert (target.kind, target.name, ep.subsets[0].addresses[0].node_name) == \
        ("Pod", "a", "node-a")
    assert not ep.metadata.owner_references

    start = time.monotonic()
    await set_ready(api, ns, "c", True)
    await eventually(lambda: _equals(addresses(api, ns), (want[0] | want[1], set())),
                     timeout=PROMPT)
    print(f"not ready -> ready reflected in {time.monotonic() - start:.2f}s")

    await api.delete("Pod", "a", ns)  # graceful: terminating pods leave at once
    await eventually(lambda: _equals(addresses(api, ns), ({"10.244.0.2", "10.244.0.3"}, set())),
                     timeout=PROMPT)

    await api.delete("Service", "web", ns)
    await eventually(lambda: _is_none(endpoints(api, ns, "web")))


async def test_named_target_port_resolves_per_pod(api: ApiClient, ns: str) -> None:
    await running(api, ns, "a", "10.244.1.1", True, t.ContainerPort(name="http",
                                                                      container_port=8080))
    await running(api, ns, "b", "10.244.1.2", True, t.ContainerPort(name="http",
                                                                      container_port=9090))
    await running(api, ns, "c", "10.244.1.3", True)  # has no port named http
    await api.create(service(
        "web", ns, {"app": "web"},
        t.ServicePort(name="http", port=80, target_port=t.IntOrString(str_val="http")),
        t.ServicePort(name="admin", port=81, target_port=t.IntOrString(int_val=7000))))

    async def by_ports() -> dict[tuple, set[str]]:
        ep = await endpoints(api, ns, "web")
        subsets = ep.subsets if ep is not None else []
        return {tuple(sorted((p.name, p.port) for p in s.ports)): {a.ip for a in s.addresses}
                for s in subsets}
    want = {(("admin", 7000), ("http", 8080)): {"10.244.1.1"},
            (("admin", 7000), ("http", 9090)): {"10.244.1.2"},
            (("admin", 7000),): {"10.244.1.3"}}
    await eventually(lambda: _equals(by_ports(), want))


async def test_unchanged_endpoints_are_not_rewritten(api: ApiClient, ns: str) -> None:
    await api.create(service("web", ns, {"app": "web"}))
    await running(api, ns, "a", "10.244.2.1", True)
    await eventually(lambda: _equals(addresses(api, ns), ({"10.244.2.1"}, set())))
    before = (await api.get("Endpoints", "web", ns)).metadata.resource_version

    async def annotate() -> None:  # a change that does not matter to the Endpoints
        p = await api.get("Pod", "a", ns)
        p.metadata.annotations["touched"] = "yes"
        await api.update(p)
    await retry_on_conflict(annotate)
    # barrier: a later change the controller must act on
    await api.create(service("later", ns, {"app": "web"}))
    await eventually(lambda: _equals(addresses(api, ns, "later"), ({"10.244.2.1"}, set())))
    assert (await api.get("Endpoints", "web", ns)).metadata.resource_version == before


async def test_services_without_selector_keep_their_own_endpoints(api: ApiClient,
                                                                  ns: str) -> None:
    await api.create(service("manual", ns, None))
    manual = t.Endpoints(metadata=t.ObjectMeta(name="manual", namespace=ns), subsets=[
        t.EndpointSubset(addresses=[t.EndpointAddress(ip="192.168.1.10")],
                         ports=[t.EndpointPort(port=5432, protocol="TCP")])])
    created = await api.create(manual)
    await running(api, ns, "a", "10.244.3.1", True)
    await api.create(service("barrier", ns, {"app": "web"}))
    await eventually(lambda: _equals(addresses(api, ns, "barrier"), ({"10.244.3.1"}, set())))
    kept = await api.get("Endpoints", "manual", ns)
    assert kept.metadata.resource_version == created.metadata.resource_version


async def _equals(value: Awaitable[object], want: object) -> bool:
    return await value == want


async def _is_none(value: Awaitable[object]) -> bool:
    return await value is None
