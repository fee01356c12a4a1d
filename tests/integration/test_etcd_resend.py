"""A write the apiserver sends again, because a member did not answer, applies once.

A member cut off by a partition does not lose the request: TCP delivers it
when the partition heals, after the copy sent to another member was
acknowledged, and perhaps after the object was deleted again. Whether etcd
then applies it depends on a race in its gRPC server (the client's
cancellation travels right behind the request), so the test sends that first
copy again itself, as it would arrive late, and wants it refused.
"""
from __future__ import annotations

import uuid

import grpc
import pytest
from aetcd.rpc import rpc_pb2 as rpc
from aetcd.rpc import rpc_pb2_grpc as rpc_grpc

from apiserver.etcd import Etcd, created, delete, put
from minik8s.localcluster import LocalCluster
from tests.integration.tcp_relay import HeldRelay


async def test_a_create_sent_again_applies_once_though_the_first_copy_arrives_late(
        cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"/minik8s-test/resend/{uuid.uuid4().hex}".encode()
    members = cluster.etcd_endpoints
    async with HeldRelay(members[0]) as relay:
        tls = cluster.etcd_tls
        assert tls is not None
        etcd = Etcd([relay.address, members[1]], first=0, tls=tls)
        sent: list[rpc.TxnRequest] = []
        call_members = etcd._call_members

        async def recording(stub_cls: type, method: str, request: object, *args: object,
                            **kwargs: object) -> object:
            if method == "Txn":
                sent.append(request)  # type: ignore[arg-type]
            return await call_members(stub_cls, method, request, *args, **kwargs)
        monkeypatch.setattr(etcd, "_call_members", recording)
        try:
            assert await etcd.get(key) is None  # the connection through the relay is up
            relay.hold()
            assert (await etcd.txn([created(key, False)], [put(key, b"v")])).succeeded
            assert relay.held_bytes > 0, "the first copy must have been sent to the held member"
            assert (await etcd.txn([created(key, True)], [delete(key)])).succeeded

            first = sent[0]
            async with grpc.aio.secure_channel(members[0], tls.credentials()) as channel:
                late = await rpc_grpc.KVStub(channel).Txn(first, timeout=10)
            assert not late.succeeded, "the first copy of the create applied after the delete"
            assert await etcd.get(key) is None
        finally:
            relay.release()
            await etcd.txn([], [delete(key)])
            await etcd.close()
