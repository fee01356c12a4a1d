"""The scheduling queue: ordering, backoff, moves on cluster events, with a fake clock."""
from __future__ import annotations

import asyncio

import pytest

from minik8s.api.v1 import types_pb2
from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue
from tests.unit.fakeclock import Clock


def make_pod(name: str, priority: int = 0) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.uid = name, f"uid-{name}"
    pod.spec.priority = priority
    pod.spec.containers.add(name="c", image="img")
    return pod


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(clock=clock, initial_backoff=1.0, max_backoff=10.0)


async def pop_names(queue: SchedulingQueue, n: int) -> list[str]:
    return [(await queue.pop()).pod.metadata.name for _ in range(n)]


async def fail(queue: SchedulingQueue, unschedulable: bool = True) -> QueuedPod:
    """Pop the next pod and report a failed attempt."""
    qp = await queue.pop()
    if unschedulable:
        queue.add_unschedulable(qp)
    else:
        queue.add_backoff(qp)
    queue.done(qp.uid)
    return qp


async def test_pops_by_priority_then_arrival(queue: SchedulingQueue, clock: Clock) -> None:
    for name, priority in (("low", 0), ("high", 10), ("low2", 0), ("high2", 10)):
        queue.add(make_pod(name, priority))
        clock.now += 1
    assert await pop_names(queue, 4) == ["high", "high2", "low", "low2"]


async def test_pop_waits_for_a_pod(queue: SchedulingQueue) -> None:
    waiter = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.add(make_pod("a"))
    qp = await asyncio.wait_for(waiter, 1)
    assert (qp.pod.metadata.name, qp.attempts) == ("a", 1)


async def test_adding_a_known_pod_replaces_it(queue: SchedulingQueue) -> None:
    queue.add(make_pod("a"))
    newer = make_pod("a")
    newer.metadata.labels["v"] = "2"
    queue.add(newer)
    assert len(queue) == 1
    assert (await queue.pop()).pod is newer


async def test_first_seen_and_enqueued_at(queue: SchedulingQueue, clock: Clock) -> None:
    queue.add(make_pod("a"))
    clock.now += 5
    qp = await fail(queue)
    assert (qp.first_seen, qp.enqueued_at) == (1000.0, 1005.0)


def test_backoff_doubles_up_to_the_maximum(queue: SchedulingQueue) -> None:
    assert [queue.backoff_duration(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_an_unschedulable_pod_waits_for_an_event(queue: SchedulingQueue,
                                                        clock: Clock) -> None:
    queue.add(make_pod("a"))
    await fail(queue)
    clock.now += 100
    assert queue.flush_backoff() == 0
    assert queue.depths() == {"active": 0, "backoff": 0, "unschedulable": 1}
    assert queue.move_all_to_active_or_backoff("NodeAdd") == 1
    assert queue.depths() == {"active": 1, "backoff": 0, "unschedulable": 0}
    assert (await queue.pop()).attempts == 2


async def test_a_pod_moved_early_waits_out_its_backoff(queue: SchedulingQueue,
                                                       clock: Clock) -> None:
    queue.add(make_pod("a"))
    await fail(queue)
    clock.now += 0.5
    queue.move_all_to_active_or_backoff("NodeAdd")
    assert queue.depths() == {"active": 0, "backoff": 1, "unschedulable": 0}
    clock.now += 0.4
    assert queue.flush_backoff() == 0
    clock.now += 0.1
    assert queue.flush_backoff() == 1
    assert queue.depths()["active"] == 1


async def test_backoff_grows_with_the_attempts(queue: SchedulingQueue, clock: Clock) -> None:
    queue.add(make_pod("a"))
    for _ in range(3):
        await fail(queue, unschedulable=False)
        clock.now += 3.9
        queue.flush_backoff()
    # After the third failure the backoff is 4 s: not over after 3.9 s.
    assert queue.depths() == {"active": 0, "backoff": 1, "unschedulable": 0}
    clock.now += 0.1
    assert (await queue.pop()).attempts == 4


async def test_pop_takes_a_pod_whose_backoff_expired(queue: SchedulingQueue,
                                                     clock: Clock) -> None:
    queue.add(make_pod("a"))
    await fail(queue, unschedulable=False)
    clock.now += 1
    assert (await queue.pop()).pod.metadata.name == "a"


async def test_pop_wakes_up_when_a_backoff_expires() -> None:
    queue = SchedulingQueue(initial_backoff=0.01)  # the real clock
    queue.add(make_pod("a"))
    await fail(queue, unschedulable=False)
    qp = await asyncio.wait_for(queue.pop(), 2)
    assert qp.attempts == 2


async def test_an_event_during_the_attempt_is_not_lost(queue: SchedulingQueue,
                                                       clock: Clock) -> None:
    queue.add(make_pod("a"))
    qp = await queue.pop()
    queue.move_all_to_active_or_backoff("NodeAdd")  # while "a" is being scheduled
    queue.add_unschedulable(qp)
    queue.done(qp.uid)
    assert queue.depths() == {"active": 0, "backoff": 1, "unschedulable": 0}


async def test_an_event_before_the_attempt_does_not_count(queue: SchedulingQueue) -> None:
    queue.add(make_pod("a"))
    queue.move_all_to_active_or_backoff("NodeAdd")
    await fail(queue)
    assert queue.depths()["unschedulable"] == 1


async def test_a_changed_unschedulable_pod_is_retried(queue: SchedulingQueue,
                                                      clock: Clock) -> None:
    queue.add(make_pod("a"))
    await fail(queue)
    status_only = make_pod("a")
    status_only.status.conditions.add(type="PodScheduled", status="False")
    queue.update(status_only)
    assert queue.depths()["unschedulable"] == 1
    clock.now += 1
    relabelled = make_pod("a")
    relabelled.metadata.labels["x"] = "y"
    queue.update(relabelled)
    assert queue.depths() == {"active": 1, "backoff": 0, "unschedulable": 0}
    assert (await queue.pop()).pod is relabelled


async def test_an_update_during_the_attempt_is_kept(queue: SchedulingQueue) -> None:
    queue.add(make_pod("a"))
    qp = await queue.pop()
    relabelled = make_pod("a")
    relabelled.metadata.labels["x"] = "y"
    queue.update(relabelled)
    queue.add_unschedulable(qp)
    queue.done(qp.uid)
    assert queue.depths()["backoff"] == 1
    assert qp.pod is relabelled


async def test_a_pod_deleted_during_the_attempt_is_dropped(queue: SchedulingQueue) -> None:
    queue.add(make_pod("a"))
    qp = await queue.pop()
    queue.delete(make_pod("a"))
    queue.add_backoff(qp)
    queue.done(qp.uid)
    assert len(queue) == 0


async def test_delete_removes_a_pod_wherever_it_waits(queue: SchedulingQueue) -> None:
    for name in ("a", "b", "c"):
        queue.add(make_pod(name))
    await fail(queue)  # a: unschedulable
    await fail(queue, unschedulable=False)  # b: backoff
    assert queue.depths() == {"active": 1, "backoff": 1, "unschedulable": 1}
    for name in ("a", "b", "c"):
        queue.delete(make_pod(name))
    assert len(queue) == 0
    assert queue.flush_backoff() == 0


async def test_flush_unschedulable_retries_pods_that_waited_too_long(
        queue: SchedulingQueue, clock: Clock) -> None:
    queue.add(make_pod("a"))
    await fail(queue)
    clock.now += 60
    assert queue.flush_unschedulable(max_wait=60) == 0
    clock.now += 1
    assert queue.flush_unschedulable(max_wait=60) == 1
    assert queue.depths()["active"] == 1


async def test_close_stops_pop(queue: SchedulingQueue) -> None:
    waiter = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(waiter, 1)
    queue.add(make_pod("a"))
    with pytest.raises(QueueClosed):
        await queue.pop()
