"""WorkQueue semantics (client-go's workqueue) and the worker loop."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from minik8s.workqueue import ExponentialBackoff, QueueShutDown, WorkQueue, run_workers


async def eventually(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def test_add_deduplicates() -> None:
    q = WorkQueue()
    for key in ("a", "b", "a", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_key_added_while_processing_waits_for_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not second.done()
    q.done("a")
    assert await asyncio.wait_for(second, 1) == "a"
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q = WorkQueue()
    q.add("a")
    q.done(await q.get())
    assert len(q) == 0


async def test_get_waits_for_add() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_cancelled_getter_passes_wakeup_on() -> None:
    q = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "x"


def test_backoff_grows_caps_and_forget_resets() -> None:
    limiter = ExponentialBackoff(base=0.005, cap=0.04)
    assert [limiter.when("k") for _ in range(6)] == [0.005, 0.01, 0.02, 0.04, 0.04, 0.04]
    assert limiter.num_requeues("k") == 6
    assert limiter.when("other") == 0.005
    limiter.forget("k")
    assert limiter.num_requeues("k") == 0
    assert limiter.when("k") == 0.005


def test_backoff_survives_many_failures() -> None:
    limiter = ExponentialBackoff(cap=60.0)
    for _ in range(2000):
        delay = limiter.when("k")
    assert delay == 60.0


async def test_add_rate_limited_counts_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.001, max_delay=0.002)
    for expected in (1, 2, 3):
        q.add_rate_limited("k")
        assert q.num_requeues("k") == expected
        assert await asyncio.wait_for(q.get(), 1) == "k"
        q.done("k")
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_add_after_orders_by_ready_time() -> None:
    q = WorkQueue()
    q.add_after("late", 0.06)
    q.add_after("early", 0.02)
    q.add_after("now", 0)
    assert len(q) == 1
    assert [await asyncio.wait_for(q.get(), 1) for _ in range(3)] == ["now", "early", "late"]


async def test_add_after_keeps_earliest_of_pending_delays() -> None:
    q = WorkQueue()
    q.add_after("k", 0.02)
    q.add_after("k", 30)  # later: ignored
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    q.add_after("k", 30)
    q.add_after("k", 0.01)  # earlier: replaces
    assert await asyncio.wait_for(q.get(), 1) == "k"


async def test_shutdown_wakes_getters_and_ignores_adds() -> None:
    q = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add_after("later", 0.01)
    q.shutdown()
    for getter in getters:
        with pytest.raises(QueueShutDown):
            await asyncio.wait_for(getter, 1)
    q.add("x")
    assert len(q) == 0
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_drops_queued_keys() -> None:
    q = WorkQueue()
    q.add("a")
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_run_workers_retries_failures_then_forgets() -> None:
    q = WorkQueue(base_delay=0.001)
    calls: list[str] = []

    async def reconcile(key: str) -> None:
        calls.append(key)
        if calls.count(key) < 3:
            raise RuntimeError("not yet")

    workers = asyncio.create_task(run_workers(q, reconcile, workers=2))
    q.add("a")
    await eventually(lambda: calls.count("a") == 3 and q.num_requeues("a") == 0)
    q.shutdown()
    await asyncio.wait_for(workers, 1)
    assert calls == ["a", "a", "a"]


async def test_run_workers_one_worker_per_key() -> None:
    q = WorkQueue()
    running: set[str] = set()
    overlaps: list[str] = []
    done: list[str] = []

    async def reconcile(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        await asyncio.sleep(0.005)
        running.discard(key)
        done.append(key)

    workers = asyncio.create_task(run_workers(q, reconcile, workers=4))
    q.add("a")
    await eventually(lambda: "a" in running)
    q.add("a")  # re-added while processing: runs again, after the first finishes
    q.add("b")
    await eventually(lambda: sorted(done) == ["a", "a", "b"])
    q.shutdown()
    await asyncio.wait_for(workers, 1)
    assert overlaps == []


async def test_metrics_per_queue_name() -> None:
    first, second = WorkQueue("wq-test-one"), WorkQueue("wq-test-two")
    first.add("a")
    first.add("b")
    second.add("c")
    first.add_rate_limited("a")

    def sample(metric: str, name: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"name": name})

    assert sample("workqueue_depth", "wq-test-one") == 2
    assert sample("workqueue_adds_total", "wq-test-one") == 2
    assert sample("workqueue_adds_total", "wq-test-two") == 1
    assert sample("workqueue_retries_total", "wq-test-one") == 1
    await first.get()
    assert sample("workqueue_depth", "wq-test-one") == 1
    assert sample("workqueue_queue_duration_seconds_count", "wq-test-one") == 1
    first.shutdown()
    second.shutdown()
