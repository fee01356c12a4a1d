"""What every apiserver creates at start if it is missing: the built-in
namespaces, then the default RBAC policy (apiserver/policy.py). Every replica
tries; one wins, and an existing object is left as it is, so an
administrator's changes survive restarts."""
from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message

from apiserver import policy
from apiserver.registry import Registry
from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t

log = logging.getLogger("minik8s.apiserver.bootstrap")

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def ensure(registry: Registry, obj: Message) -> None:
    """Create obj unless it exists, trying again each second while the store fails."""
    while True:
        try:
            await registry.create(obj)
            return
        except errors.AlreadyExists:
            return
        except errors.ApiError as exc:
            log.warning("creating %s %s: %s; retrying", kinds.of(obj).name, obj.metadata.name,
                        exc)
            await asyncio.sleep(1)


async def run(registry: Registry) -> None:
    for name in NAMESPACES:
        await ensure(registry, t.Namespace(metadata=t.ObjectMeta(name=name)))
    for obj in policy.DEFAULTS:
        await ensure(registry, obj)
