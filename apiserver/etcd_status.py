"""The etcd cluster's health as the apiserver sees it, for `minictl cluster-info`.

Only the apiserver talks to etcd, so it answers for etcd: it lists the members
and asks each one for its status on its own. A member that does not answer,
or answers without a leader, is reported unhealthy with the reason; nothing
here fails because one member (or the quorum) is gone.
"""
from __future__ import annotations

import asyncio
from collections import Counter

import grpc
from aetcd.rpc import rpc_pb2 as rpc

from apiserver.etcd import Etcd, EtcdUnavailable
from minik8s.api.v1 import apiserver_pb2 as api

STATUS_TIMEOUT = 2.0  # seconds one member gets to answer


def grpc_target(url: str) -> str:
    """host:port of a client URL ("http://127.0.0.1:2379" -> "127.0.0.1:2379")."""
    return url.split("://", 1)[-1].rstrip("/")


async def _status(etcd: Etcd, member: rpc.Member) -> rpc.StatusResponse | str:
    """The member's status, or why it has none."""
    if not member.clientURLs:
        return "no client URL (not started yet?)"
    try:
        return await etcd.member_status(grpc_target(member.clientURLs[0]), STATUS_TIMEOUT)
    except grpc.aio.AioRpcError as err:
        return err.details() or err.code().name
    except Exception as exc:  # an unusable URL, say: still only this member's problem
        return f"{type(exc).__name__}: {exc}"


async def _members(etcd: Etcd) -> list[rpc.Member]:
    """The listed members; when no member answers, the configured endpoints."""
    try:
        return await etcd.members(STATUS_TIMEOUT)
    except EtcdUnavailable:
        return [rpc.Member(clientURLs=[f"http://{e}"]) for e in etcd.endpoints]


async def etcd_status(etcd: Etcd) -> api.EtcdStatusResponse:
    members = await _members(etcd)
    statuses = await asyncio.gather(*(_status(etcd, m) for m in members))
    leaders = Counter(s.leader for s in statuses if not isinstance(s, str) and s.leader)
    leader_id = leaders.most_common(1)[0][0] if leaders else 0
    out = api.EtcdStatusResponse()
    for member, status in zip(members, statuses, strict=True):
        m = out.members.add(name=member.name, client_urls=list(member.clientURLs))
        if member.ID:
            m.id = f"{member.ID:x}"
        if isinstance(status, str):
            m.error = status
            continue
        if not member.ID:  # listed from the configuration: the member says who it is
            m.id = f"{status.header.member_id:x}"
        m.version, m.db_size = status.version, status.dbSize
        m.leader = bool(leader_id) and status.header.member_id == leader_id
        problems = list(status.errors) or ([] if status.leader else ["no leader"])
        m.healthy = not problems
        m.error = "; ".join(problems)
    out.members.sort(key=lambda m: (m.name, m.id))
    return out
