"""What every controller shares: the context, and the informer -> queue -> reconcile(key) loop.

As in sample-controller: informer handlers only put keys (namespace/name) on
the controller's work queue; reconcile(key) reads the latest state from the
shared informer caches and makes the world match it. It is level-triggered
and idempotent, so it may run any number of times for a key, and a new leader
simply reconciles every key once.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import ClassVar

from google.protobuf.message import Message

from minik8s import errors, kinds
from minik8s.client import ApiClient
from minik8s.events import EventRecorder
from minik8s.informer import Informer, SharedInformerFactory
from minik8s.workqueue import WorkQueue, run_workers

log = logging.getLogger("minik8s.controller")


@dataclass
class Options:
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    node_monitor_grace_period: float = 8.0
    pod_eviction_timeout: float = 10.0
    workers: int = 4


@dataclass
class Context:
    """What controllers share. client and events exist only while leading."""

    factory: SharedInformerFactory
    options: Options = field(default_factory=Options)
    client: ApiClient | None = None
    events: EventRecorder | None = None
    fenced: asyncio.Event = field(default_factory=asyncio.Event)

    def informer(self, kind: str) -> Informer:
        return self.factory.informer_for(kind)

    @property
    def api(self) -> ApiClient:
        """The leader's client: every write carries the lease token."""
        if self.client is None:
            raise RuntimeError("controllers write only while leading")
        return self.client

    def record(self, obj: Message, type_: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events.record(obj, type_, reason, message)


class Controller:
    """Subclasses set name and kind, register handlers, and implement reconcile."""

    name: ClassVar[str]
    kind: ClassVar[str]   # the primary kind: its keys are what the queue holds

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.queue = WorkQueue(self.name)
        self.primary = ctx.informer(self.kind)
        self.primary.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                                 self.enqueue)
        self.register()

    def register(self) -> None:
        """Add handlers on other informers (before they start)."""

    def enqueue(self, obj: Message) -> None:
        self.queue.add(kinds.object_key(obj))

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Reconcile every known object once, then whatever changes, until cancelled."""
        for obj in self.primary.list():
            self.enqueue(obj)
        await run_workers(self.queue, self._reconcile, self.ctx.options.workers)

    async def _reconcile(self, key: str) -> None:
        try:
            await self.reconcile(key)
        except errors.Fenced:
            self.ctx.fenced.set()  # a successor leads: the manager stops everything
            raise


async def write_status(api: ApiClient, obj: Message, status: Message) -> None:
    """Write status onto obj, unless it already has it.

    A Conflict means our cached copy is behind (often our own last status
    write): the status goes onto the current object, unless its spec moved on
    meanwhile (then the next reconcile computes a new one).
    """
    if status == obj.status:
        return
    updated = obj.__deepcopy__()
    updated.status.CopyFrom(status)
    try:
        await api.update_status(updated)
    except errors.Conflict:
        current = await api.get(kinds.of(obj).name, obj.metadata.name, obj.metadata.namespace)
        if current.metadata.generation == obj.metadata.generation:
            current.status.CopyFrom(status)
            await api.update_status(current)


def split_key(key: str) -> tuple[str, str]:
    """namespace, name of a "namespace/name" key ("", name for cluster-scoped)."""
    namespace, _, name = key.rpartition("/")
    return namespace, name
