"""Leader election through the real apiservers, and fencing of deposed leaders."""
from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from minik8s import errors
from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.client import ApiClient
from minik8s.leaderelection import ElectionConfig, LeaderElector, LeadershipLost
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, pod
from tests.integration.tcp_relay import HeldRelay


def config(name: str, who: str) -> ElectionConfig:
    return ElectionConfig(name=name, identity=who, lease_duration=2.0, renew_deadline=1.5,
                          retry_period=0.2)


async def test_one_leader_and_a_deposed_leader_is_fenced(client: ApiClient,
                                                         namespace: str) -> None:
    lease = f"test-{uuid.uuid4().hex[:6]}"
    a = LeaderElector(client, config(lease, "a"))
    b = LeaderElector(client, config(lease, "b"))
    token_a = await a.acquire()
    as_a = client.with_fence(token_a)
    await as_a.create(pod("by-a", namespace))

    # b cannot take a lease that is being renewed
    renewing = asyncio.create_task(a.keep_renewing())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.acquire(), 3)

    # a stops renewing without knowing it (as if paused); b takes over
    renewing.cancel()
    token_b = await asyncio.wait_for(b.acquire(), 5)
    assert token_b.transitions == token_a.transitions + 1
    held = await client.get("Lease", lease, "kube-system")
    assert (held.spec.holder_identity, held.spec.lease_transitions) == ("b", token_b.transitions)

    # every kind of write a makes now is refused in etcd, and changes nothing
    existing = await client.get("Pod", "by-a", namespace)
    stale = [
        as_a.create(pod("late", namespace)),
        as_a.update(existing),
        as_a.update_status(existing),
        as_a.bind(namespace, "by-a", "node-x"),
        as_a.delete("Pod", "by-a", namespace),
    ]
    for call in stale:
        with pytest.raises(errors.PreconditionFailed, match="fenced"):
            await call
    with pytest.raises(errors.NotFound):
        await client.get("Pod", "late", namespace)
    assert (await client.get("Pod", "by-a", namespace)) == existing

    # while b's writes go through
    await client.with_fence(token_b).bind(namespace, "by-a", "node-b")


async def test_leader_that_cannot_renew_steps_down(client: ApiClient) -> None:
    lease = f"test-{uuid.uuid4().hex[:6]}"
    a = LeaderElector(client, config(lease, "a"))
    await a.acquire()
    # someone else takes the lease by force (as an operator might)
    held = await client.get("Lease", lease, "kube-system")
    held.spec.holder_identity = "intruder"
    await client.update(held)
    with pytest.raises(LeadershipLost, match="another holder"):
        await asyncio.wait_for(a.keep_renewing(), 5)


async def keeps_leading(reader: ApiClient, lease: str, renewing: asyncio.Task,
                        token: api.Fence) -> None:
    """After a fault: the lease is renewed again, and "a" holds it throughout a lease."""
    before = (await reader.get("Lease", lease, "kube-system")).spec.renew_time.ToDatetime()

    async def renewed_since() -> bool:
        now = await reader.get("Lease", lease, "kube-system")
        return now.spec.renew_time.ToDatetime() > before
    await eventually(renewed_since, timeout=5)
    await asyncio.sleep(3)  # longer than the lease: leadership must hold throughout
    assert not renewing.done(), renewing
    held = await reader.get("Lease", lease, "kube-system")
    assert (held.spec.holder_identity, held.spec.lease_transitions) == ("a", token.transitions)


async def test_renewal_survives_losing_its_apiserver(own_cluster: LocalCluster) -> None:
    async with ApiClient(own_cluster.servers) as client:
        lease = "survivor"
        elector = LeaderElector(client, config(lease, "a"))
        token = await elector.acquire()
        renewing = asyncio.create_task(elector.keep_renewing())
        port = int(client.endpoint.rsplit(":", 1)[1])
        victim = next(p.name for p in own_cluster.role("apiserver") if p.ports["grpc"] == port)
        own_cluster.kill(victim)
        await keeps_leading(client, lease, renewing, token)
        renewing.cancel()


async def test_renewal_survives_its_apiserver_going_silent(cluster: LocalCluster) -> None:
    """An apiserver cut off by a partition does not refuse calls: they go unanswered.
    The leader's next renewal must go to another apiserver in time."""
    async with contextlib.AsyncExitStack() as stack:
        relays = [await stack.enter_async_context(HeldRelay(s)) for s in cluster.servers[:2]]
        client = await stack.enter_async_context(ApiClient([r.address for r in relays]))
        lease = f"test-{uuid.uuid4().hex[:6]}"
        elector = LeaderElector(client, config(lease, "a"))
        token = await elector.acquire()
        renewing = asyncio.create_task(elector.keep_renewing())
        stack.callback(renewing.cancel)
        next(r for r in relays if r.address == client.endpoint).hold()
        reader = await stack.enter_async_context(ApiClient(cluster.servers))
        await keeps_leading(reader, lease, renewing, token)
