"""Informers: a local, indexed cache of one kind kept current by list-then-watch.

As client-go's shared informer: list, then watch from the list's
resourceVersion; apply each event to the cache, then call the handlers. On
OUT_OF_RANGE (errors.Expired) relist and emit the difference; on any other
break re-watch from the last resourceVersion seen (bookmarks included), so no
event is lost.

Differences from client-go, by design:

* Handlers run inline, in event order, on the informer's task: they should be
  quick (typically: add a key to a work queue). A handler that raises is
  logged and does not stop the informer.
* Handlers must be added before the informer starts (there is no replay of
  the cache to late handlers).
* No periodic resync: controllers are level-triggered and requeue themselves.

Cached objects are shared with every reader: treat them as read-only and copy
(``obj.__deepcopy__()``) before changing one.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from google.protobuf.message import Message

from minik8s import errors, kinds
from minik8s.retry import Backoff

if TYPE_CHECKING:
    from minik8s.client import WatchEvent

log = logging.getLogger("minik8s.informer")

IndexFunc = Callable[[Message], list[str]]
AddHandler = Callable[[Message], Awaitable[None] | None]
UpdateHandler = Callable[[Message, Message], Awaitable[None] | None]
DeleteHandler = Callable[[Message], Awaitable[None] | None]

NAMESPACE_INDEX = "namespace"
NODE_NAME_INDEX = "nodeName"
OWNER_UID_INDEX = "ownerUID"


def index_by_namespace(obj: Message) -> list[str]:
    return [obj.metadata.namespace] if obj.metadata.namespace else []


def index_by_node_name(obj: Message) -> list[str]:
    """spec.nodeName of a pod; unbound pods are not indexed."""
    return [obj.spec.node_name] if obj.spec.node_name else []


def index_by_owner_uid(obj: Message) -> list[str]:
    return [ref.uid for ref in obj.metadata.owner_references]


class ListWatcher(Protocol):
    """The part of minik8s.client.ApiClient an informer uses."""

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Message], str]: ...

    def watch(self, kind: str, namespace: str = "", label_selector: str = "",
              field_selector: str = "", resource_version: str = "",
              allow_bookmarks: bool = True) -> AsyncIterator[WatchEvent]: ...


class Indexer:
    """Objects by key (kinds.object_key), plus named secondary indexes."""

    def __init__(self) -> None:
        self._items: dict[str, Message] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index objects by ``fn(obj)`` (a list of values); existing objects are indexed now."""
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    def by_index(self, name: str, value: str) -> list[Message]:
        """The objects whose index ``name`` has ``value``, in key order."""
        keys = self._indices[name].get(value, ())
        return [self._items[key] for key in sorted(keys)]

    def get(self, key: str) -> Message | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> dict[str, Message]:
        return dict(self._items)

    def put(self, key: str, obj: Message) -> Message | None:
        """Store ``obj``; returns the object it replaced, if any."""
        old = self.remove(key)
        self._items[key] = obj
        for name in self._index_funcs:
            self._index(name, key, obj)
        return old

    def remove(self, key: str) -> Message | None:
        """Drop ``key``; returns the object it held, if any."""
        old = self._items.pop(key, None)
        if old is not None:
            for name, fn in self._index_funcs.items():
                self._unindex(name, key, fn(old))
        return old

    def _index(self, name: str, key: str, obj: Message) -> None:
        for value in self._index_funcs[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, name: str, key: str, values: list[str]) -> None:
        index = self._indices[name]
        for value in values:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]


@dataclass
class _Handler:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class Informer:
    """List-watch cache of one kind (optionally one namespace / selector)."""

    def __init__(self, client: ListWatcher, kind: str, namespace: str = "",
                 label_selector: str = "", field_selector: str = "", *,
                 backoff: float = 0.1, max_backoff: float = 5.0) -> None:
        self.kind = kinds.by_name(kind).name
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.last_resource_version = ""
        self._client = client
        self._store = Indexer()
        self._store.add_index(NAMESPACE_INDEX, index_by_namespace)
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._moved = asyncio.Event()  # set (and replaced) whenever the revision advances
        self._backoff = Backoff(backoff, max_backoff)
        self._task: asyncio.Task[None] | None = None

    # -- setup and lifecycle -------------------------------------------------

    def add_handler(self, on_add: AddHandler | None = None,
                    on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> None:
        """Call these (sync or async) on each change, in event order. Before start() only."""
        if self._task is not None:
            raise RuntimeError(f"{self.kind} informer already started: add handlers before")
        self._handlers.append(_Handler(on_add, on_update, on_delete))

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self._store.add_index(name, fn)

    def start(self) -> asyncio.Task[None]:
        """Run the informer in a task (once; later calls return the same task)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.kind}")
        return self._task

    async def stop(self) -> None:
        """Cancel the informer's task and wait for it to end."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def has_synced(self) -> bool:
        """True once the first list is in the cache and its handlers have run."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until has_synced(); False if ``timeout`` seconds pass first."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Wait until the cache has seen everything up to revision; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._synced.is_set() or int(self.last_resource_version or 0) < revision:
            left = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._moved.wait(), max(left, 0))
            except TimeoutError:
                return False
        return True

    def _advance(self, resource_version: str) -> None:
        self.last_resource_version = resource_version
        self._moved.set()
        self._moved = asyncio.Event()

    # -- reading the cache ---------------------------------------------------

    def get(self, key: str) -> Message | None:
        """The cached object with key "namespace/name" (or "name"), if any."""
        return self._store.get(key)

    def keys(self) -> list[str]:
        return self._store.keys()

    def by_index(self, name: str, value: str) -> list[Message]:
        return self._store.by_index(name, value)

    def list(self) -> list[Message]:
        """All cached objects, in key order."""
        items = self._store.items()
        return [items[key] for key in sorted(items)]

    # -- list and watch ------------------------------------------------------

    async def run(self) -> None:
        """List, then watch, forever; relist on Expired, re-watch on any other break."""
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                log.info("%s watch ended; resuming from resourceVersion %s",
                         self.kind, self.last_resource_version)
            except errors.Expired as exc:
                log.info("%s watch expired at resourceVersion %s (%s); relisting",
                         self.kind, self.last_resource_version, exc)
                need_list = True
            except errors.ApiError as exc:
                log.warning("%s %s failed: %s; retrying from resourceVersion %s", self.kind,
                            "list" if need_list else "watch", exc, self.last_resource_version)
            await asyncio.sleep(self._backoff.next())

    async def _relist(self) -> None:
        """Replace the cache with a fresh list, emitting the difference as events."""
        items, resource_version = await self._client.list(
            self.kind, self.namespace, self.label_selector, self.field_selector)
        listed = {kinds.object_key(obj): obj for obj in items}
        for key, obj in listed.items():
            old = self._store.get(key)
            if old is None or old.metadata.resource_version != obj.metadata.resource_version:
                await self._upsert(key, obj)
        for key in set(self._store.keys()) - listed.keys():
            await self._delete(key, self._store.get(key))
        self._advance(resource_version)
        log.info("%s listed %d objects at resourceVersion %s", self.kind, len(listed),
                 resource_version)
        self._synced.set()

    async def _watch(self) -> None:
        stream = self._client.watch(
            self.kind, self.namespace, self.label_selector, self.field_selector,
            resource_version=self.last_resource_version, allow_bookmarks=True)
        async with aclosing(stream):
            async for event in stream:
                self._backoff.reset()
                await self._apply(event)
                self._advance(event.resource_version
                              or event.object.metadata.resource_version)

    async def _apply(self, event: WatchEvent) -> None:
        if event.type == "BOOKMARK":
            return
        key = kinds.object_key(event.object)
        if event.type in ("ADDED", "MODIFIED"):
            await self._upsert(key, event.object)
        elif event.type == "DELETED":
            await self._delete(key, event.object)
        else:
            log.warning("%s watch: ignoring event of unknown type %r", self.kind, event.type)

    async def _upsert(self, key: str, obj: Message) -> None:
        # Like client-go, add vs update follows the cache, not the event type.
        old = self._store.put(key, obj)
        for handler in self._handlers:
            if old is None:
                await _call(handler.on_add, obj)
            else:
                await _call(handler.on_update, old, obj)

    async def _delete(self, key: str, obj: Message) -> None:
        self._store.remove(key)
        for handler in self._handlers:
            await _call(handler.on_delete, obj)


async def _call(fn: Callable[..., Awaitable[None] | None] | None, *args: Message) -> None:
    if fn is None:
        return
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("informer handler %s failed", getattr(fn, "__qualname__", fn))


class SharedInformerFactory:
    """One informer per (kind, namespace) for a whole process, shared by its controllers."""

    def __init__(self, client: ListWatcher, *, backoff: float = 0.1,
                 max_backoff: float = 5.0) -> None:
        self._client = client
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._informers: dict[tuple[str, str], Informer] = {}

    def informer_for(self, kind: str, namespace: str = "") -> Informer:
        """The shared informer of ``kind`` (in ``namespace``; "" = all), created on first use."""
        kind = kinds.by_name(kind).name
        informer = self._informers.get((kind, namespace))
        if informer is None:
            informer = Informer(self._client, kind, namespace, backoff=self._backoff,
                                max_backoff=self._max_backoff)
            self._informers[(kind, namespace)] = informer
        return informer

    def start(self) -> None:
        """Start every informer not yet started (informers asked for later need another start())."""
        for informer in self._informers.values():
            informer.start()

    def has_synced(self) -> bool:
        return all(informer.has_synced() for informer in self._informers.values())

    async def wait_for_revision(self, revision: int, timeout: float,
                                kinds: tuple[str, ...] | None = None) -> bool:
        """Wait until the informers (of kinds, or all) have seen everything up to revision.

        False on timeout.
        """
        waits = [i.wait_for_revision(revision, timeout) for (kind, _), i in
                 self._informers.items() if kinds is None or kind in kinds]
        return all(await asyncio.gather(*waits))

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until every informer has synced; False if ``timeout`` seconds pass first."""
        waits = [informer.wait_synced() for informer in self._informers.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(informer.stop() for informer in self._informers.values()))
