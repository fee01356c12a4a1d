"""A write the apiserver sends again, because a member did not answer, applies once.

A member cut off by a partition does not lose the request: TCP delivers it
when the partition heals, after the copy sent to another member was
acknowledged, and perhaps after the object was deleted again.
"""
from __future__ import annotations

import uuid

from apiserver.etcd import Etcd, created, delete, put
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, scrape
from tests.integration.tcp_relay import HeldRelay


def txns_handled(cluster: LocalCluster, member: str) -> float:
    """How many Txn calls the member has finished (whatever their outcome)."""
    url = f"http://{cluster.host}:{cluster.procs[member].ports['metrics']}/metrics"
    return sum(value for name, labels, value in scrape(url)
               if name == "grpc_server_handled_total" and labels.get("grpc_method") == "Txn")


async def test_a_create_held_in_flight_does_not_undo_a_later_delete(
        cluster: LocalCluster) -> None:
    key = f"/minik8s-test/resend/{uuid.uuid4().hex}".encode()
    members = cluster.etcd_endpoints
    async with HeldRelay(members[0]) as relay:
        etcd = Etcd([relay.address, members[1]], first=0, tls=cluster.etcd_tls)
        try:
            assert await etcd.get(key) is None  # the connection through the relay is up
            relay.hold()
            created_resp = await etcd.txn([created(key, False)], [put(key, b"v")])
            assert created_resp.succeeded, "the create must go through the other member"
            assert relay.held_bytes > 0, "the first copy must have been sent to the held member"
            deleted = await etcd.txn([created(key, True)], [delete(key)])
            assert deleted.succeeded

            handled = txns_handled(cluster, "etcd-0")
            relay.release()
            await eventually(lambda: txns_handled(cluster, "etcd-0") > handled, timeout=20)
            assert await etcd.get(key) is None, "the held create applied after the delete"
        finally:
            await etcd.txn([], [delete(key)])
            await etcd.close()
