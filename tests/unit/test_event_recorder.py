"""The event recorder folds repeats into one Event, even when they come at once."""
from __future__ import annotations

import asyncio

from minik8s.api.v1 import types_pb2 as t
from minik8s.events import EventRecorder


class SlowApi:
    """Stores Events; every write takes a while, so repeats overlap with it."""

    def __init__(self) -> None:
        self.events: dict[str, t.Event] = {}
        self.creates = 0

    async def create(self, ev: t.Event) -> t.Event:
        await asyncio.sleep(0.01)
        self.creates += 1
        self.events[ev.metadata.name] = ev
        return ev

    async def update(self, ev: t.Event) -> t.Event:
        await asyncio.sleep(0.01)
        self.events[ev.metadata.name] = ev
        return ev


def pod(name: str) -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace="ns", uid=f"uid-{name}"))


async def test_repeats_recorded_at_once_make_one_event_with_their_count() -> None:
    api = SlowApi()
    recorder = EventRecorder(api, "kubelet", host="node-0", workers=4)  # type: ignore[arg-type]
    task = asyncio.create_task(recorder.run())
    try:
        for _ in range(5):
            recorder.record(pod("a"), "Warning", "BackOff", "Back-off restarting failed container")
        recorder.record(pod("b"), "Warning", "BackOff", "Back-off restarting failed container")
        recorder.record(pod("a"), "Normal", "Pulled", "already present")
        async with asyncio.timeout(5):
            while sum(e.count for e in api.events.values()) < 7:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    backoffs = {e.involved_object.name: e for e in api.events.values() if e.reason == "BackOff"}
    assert sorted(backoffs) == ["a", "b"]
    assert backoffs["a"].count == 5 and backoffs["b"].count == 1
    assert api.creates == 3
    first, last = backoffs["a"].first_timestamp, backoffs["a"].last_timestamp
    assert last.ToNanoseconds() > first.ToNanoseconds()
