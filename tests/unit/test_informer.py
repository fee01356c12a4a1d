"""Informer against an in-memory fake of ApiClient.list()/watch() over an event log."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from google.protobuf.message import Message

from minik8s import errors
from minik8s.api.v1 import types_pb2
from minik8s.informer import (
    NAMESPACE_INDEX,
    NODE_NAME_INDEX,
    OWNER_UID_INDEX,
    Informer,
    SharedInformerFactory,
    index_by_node_name,
    index_by_owner_uid,
)
from minik8s.kinds import object_key


@dataclass
class WatchEvent:
    """Same shape as minik8s.client.WatchEvent."""

    type: str
    object: Message
    resource_version: str


class FakeClient:
    """Pods in memory: every change gets the next resourceVersion and a log entry.

    watch() replays the log after the given resourceVersion, then follows it.
    compact() forgets history (older watches get Expired); hang_up() ends the
    open streams, optionally with an error.
    """

    def __init__(self) -> None:
        self.rv = 0
        self.objects: dict[str, types_pb2.Pod] = {}
        self.log: list[WatchEvent] = []
        self.compacted = 0
        self.list_calls = 0
        self.watch_calls: list[str] = []
        self._epoch = 0
        self._endings: dict[int, Exception | None] = {}
        self._changed = asyncio.Event()

    # -- scripting the server side --

    def put(self, pod: types_pb2.Pod) -> types_pb2.Pod:
        key = object_key(pod)
        kind = "MODIFIED" if key in self.objects else "ADDED"
        stored = self._next(pod)
        self.objects[key] = stored
        self._emit(kind, stored)
        return stored

    def delete(self, key: str) -> None:
        self._emit("DELETED", self._next(self.objects.pop(key)))

    def bookmark(self, skip: int = 0) -> None:
        """A bookmark after `skip` changes this watch did not see (e.g. other kinds)."""
        self.rv += skip
        self._emit("BOOKMARK", types_pb2.Pod(metadata={"resource_version": str(self.rv)}))

    def compact(self) -> None:
        self.compacted = self.rv

    def hang_up(self, error: Exception | None = None) -> None:
        self._endings[self._epoch] = error
        self._epoch += 1
        self._notify()

    def _next(self, pod: types_pb2.Pod) -> types_pb2.Pod:
        self.rv += 1
        stored = types_pb2.Pod()
        stored.CopyFrom(pod)
        stored.metadata.resource_version = str(self.rv)
        return stored

    def _emit(self, kind: str, obj: types_pb2.Pod) -> None:
        self.log.append(WatchEvent(kind, obj, str(self.rv)))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the ApiClient surface --

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Message], str]:
        assert kind == "Pod"
        self.list_calls += 1
        return [self.objects[k] for k in sorted(self.objects)], str(self.rv)

    async def watch(self, kind: str, namespace: str = "", label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    allow_bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        self.watch_calls.append(resource_version)
        position = int(resource_version)
        if position < self.compacted:
            raise errors.Expired(f"resourceVersion {position} is too old")
        epoch = self._epoch
        while True:
            if self._epoch != epoch:
                error = self._endings[epoch]
                if error is not None:
                    raise error
                return
            pending = [e for e in self.log if int(e.resource_version) > position]
            if pending:
                position = int(pending[0].resource_version)
                yield pending[0]
            else:
                await self._changed.wait()


def pod(name: str, node: str = "", owner: str = "", ns: str = "default",
        phase: str = "") -> types_pb2.Pod:
    p = types_pb2.Pod(metadata={"name": name, "namespace": ns},
                      spec={"node_name": node}, status={"phase": phase})
    if owner:
        p.metadata.owner_references.add(uid=owner)
    return p


class Recorder:
    """Handlers that record calls as (type, key, resourceVersion...)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def on_add(self, obj: Message) -> None:
        self.calls.append(("add", object_key(obj), obj.metadata.resource_version))

    async def on_update(self, old: Message, new: Message) -> None:
        self.calls.append(("update", object_key(new), old.metadata.resource_version,
                           new.metadata.resource_version))

    def on_delete(self, obj: Message) -> None:
        self.calls.append(("delete", object_key(obj), obj.metadata.resource_version))


async def eventually(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
async def started(client: FakeClient) -> AsyncIterator[tuple[Informer, Recorder]]:
    """An informer over two pods, synced, with a recorder (calls cleared)."""
    client.put(pod("a", node="n1"))
    client.put(pod("b", node="n2"))
    informer = Informer(client, "Pod", backoff=0.001, max_backoff=0.01)
    recorder = Recorder()
    informer.add_handler(recorder.on_add, recorder.on_update, recorder.on_delete)
    informer.add_index(NODE_NAME_INDEX, index_by_node_name)
    informer.start()
    assert await informer.wait_synced(2)
    await eventually(lambda: client.watch_calls == ["2"])
    recorder.calls.clear()
    yield informer, recorder
    await informer.stop()


async def test_initial_list_populates_cache_and_fires_adds(client: FakeClient) -> None:
    client.put(pod("a", ns="x"))
    client.put(pod("b", ns="y"))
    client.put(pod("c", ns="x"))
    informer = Informer(client, "Pod")
    recorder = Recorder()
    informer.add_handler(on_add=recorder.on_add)
    assert not informer.has_synced()
    informer.start()
    assert await informer.wait_synced(2)
    assert recorder.calls == [("add", "x/a", "1"), ("add", "x/c", "3"), ("add", "y/b", "2")]
    assert informer.keys() == ["x/a", "x/c", "y/b"]
    assert [object_key(p) for p in informer.list()] == ["x/a", "x/c", "y/b"]
    assert [p.metadata.name for p in informer.by_index(NAMESPACE_INDEX, "x")] == ["a", "c"]
    assert informer.last_resource_version == "3"
    await eventually(lambda: client.watch_calls == ["3"])
    await informer.stop()


async def test_watch_events_update_cache_handlers_and_indexes(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, recorder = started
    client.put(pod("c", node="n1"))
    client.put(pod("a", node="n2"))  # moves from n1 to n2
    client.delete("default/b")
    await eventually(lambda: len(recorder.calls) == 3)
    assert recorder.calls == [("add", "default/c", "3"),
                              ("update", "default/a", "1", "4"),
                              ("delete", "default/b", "5")]
    assert informer.keys() == ["default/a", "default/c"]
    assert informer.get("default/a").spec.node_name == "n2"
    assert informer.get("default/b") is None
    assert [p.metadata.name for p in informer.by_index(NODE_NAME_INDEX, "n1")] == ["c"]
    assert [p.metadata.name for p in informer.by_index(NODE_NAME_INDEX, "n2")] == ["a"]
    assert informer.last_resource_version == "5"


async def test_expired_relists_and_emits_difference(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, recorder = started
    # All while the informer's task cannot run, so its watch sees none of it.
    client.put(pod("a", node="n3"))
    client.delete("default/b")
    client.put(pod("c"))
    client.compact()
    client.hang_up()
    await eventually(lambda: client.list_calls == 2 and len(recorder.calls) == 3)
    assert client.watch_calls[:2] == ["2", "2"]  # resumed, was told Expired, relisted
    assert sorted(recorder.calls) == [("add", "default/c", "5"),
                                      ("delete", "default/b", "2"),  # last known object
                                      ("update", "default/a", "1", "3")]
    assert informer.keys() == ["default/a", "default/c"]
    assert informer.by_index(NODE_NAME_INDEX, "n1") == []
    assert informer.last_resource_version == "5"
    await eventually(lambda: client.watch_calls[-1] == "5")


async def test_relist_skips_unchanged_objects(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, recorder = started
    client.bookmark(skip=3)
    client.compact()
    client.hang_up()
    await eventually(lambda: client.list_calls == 2 and informer.last_resource_version == "5")
    assert recorder.calls == []


async def test_stream_end_resumes_from_last_resource_version(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, recorder = started
    client.put(pod("c"))
    await eventually(lambda: informer.last_resource_version == "3")
    client.hang_up()
    client.put(pod("d"))  # made while no watch is open: must not be lost
    await eventually(lambda: len(client.watch_calls) == 2)
    assert client.watch_calls == ["2", "3"]
    await eventually(lambda: len(recorder.calls) == 2)
    assert recorder.calls == [("add", "default/c", "3"), ("add", "default/d", "4")]
    assert client.list_calls == 1


async def test_watch_error_resumes_from_last_resource_version(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, recorder = started
    client.put(pod("c"))
    await eventually(lambda: informer.last_resource_version == "3")
    client.hang_up(errors.Unavailable("apiserver went away"))
    await eventually(lambda: len(client.watch_calls) == 2)
    assert client.watch_calls == ["2", "3"]
    assert client.list_calls == 1
    client.put(pod("d"))
    await eventually(lambda: len(recorder.calls) == 2)
    assert recorder.calls[-1] == ("add", "default/d", "4")


async def test_bookmarks_advance_resource_version_silently(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, recorder = started
    client.bookmark(skip=5)
    await eventually(lambda: informer.last_resource_version == "7")
    client.hang_up()
    await eventually(lambda: len(client.watch_calls) == 2)
    assert client.watch_calls == ["2", "7"]
    assert recorder.calls == []
    assert informer.keys() == ["default/a", "default/b"]


async def test_failing_handler_does_not_stop_informer(client: FakeClient) -> None:
    seen: list[str] = []

    def broken(obj: Message) -> None:
        raise RuntimeError("bug in handler")

    informer = Informer(client, "Pod")
    informer.add_handler(on_add=broken)
    informer.add_handler(on_add=lambda obj: seen.append(obj.metadata.name))
    informer.start()
    assert await informer.wait_synced(2)
    client.put(pod("a"))
    await eventually(lambda: seen == ["a"])
    await informer.stop()


async def test_add_handler_after_start_is_refused(
        started: tuple[Informer, Recorder]) -> None:
    informer, _ = started
    with pytest.raises(RuntimeError):
        informer.add_handler(on_add=print)


async def test_add_index_after_sync_indexes_existing_objects(
        client: FakeClient, started: tuple[Informer, Recorder]) -> None:
    informer, _ = started
    client.put(pod("c", owner="rs-1"))
    await eventually(lambda: informer.get("default/c") is not None)
    informer.add_index(OWNER_UID_INDEX, index_by_owner_uid)
    assert [p.metadata.name for p in informer.by_index(OWNER_UID_INDEX, "rs-1")] == ["c"]
    assert informer.by_index(OWNER_UID_INDEX, "rs-2") == []


async def test_wait_synced_times_out(client: FakeClient) -> None:
    informer = Informer(client, "Pod")
    assert not await informer.wait_synced(0.01)


async def test_unknown_kind_is_refused(client: FakeClient) -> None:
    with pytest.raises(KeyError):
        Informer(client, "Gadget")


async def test_factory_shares_informers(client: FakeClient) -> None:
    client.put(pod("a"))
    factory = SharedInformerFactory(client)
    pods = factory.informer_for("Pod")
    assert factory.informer_for("Pod") is pods
    assert factory.informer_for("Pod", "kube-system") is not pods
    factory.start()
    assert await factory.wait_synced(2)
    assert pods.keys() == ["default/a"]
    await factory.stop()
    assert client.list_calls == 2
