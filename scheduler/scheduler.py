"""The scheduling loop: pending pods in, bindings out.

Informers feed the cache (nodes and bound pods) and the queue (pending pods)
on every replica, so a standby that becomes leader starts with warm state.
The leader pops one pod at a time, runs the filter and score plugins over a
snapshot of the cache, assumes the pod onto the chosen node at once (so the
next pod sees the node's new usage) and binds it asynchronously: scoring
never waits for etcd. A failed bind forgets the assumption and retries the
pod after a backoff; a bind refused by fencing means this replica is no
longer the leader, and it stops.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import time

from prometheus_client import Counter, Gauge, Histogram

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.events import EventRecorder
from minik8s.informer import SharedInformerFactory
from minik8s.leaderelection import LeadershipLost
from scheduler.cache import SchedulerCache
from scheduler.framework import Framework, FrameworkError, failure_message
from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue

log = logging.getLogger("minik8s.scheduler")

ATTEMPTS = Counter("scheduler_schedule_attempts_total", "scheduling attempts by result",
                   ["result"])
E2E_LATENCY = Histogram(
    "scheduler_pod_scheduling_duration_seconds",
    "from a pod entering the queue to its bind being stored",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ATTEMPT_LATENCY = Histogram(
    "scheduler_scheduling_attempt_duration_seconds", "one attempt: filter, score, assume",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
PENDING = Gauge("scheduler_pending_pods", "pending pods by queue", ["queue"])

DEFAULT_SCHEDULER = "default-scheduler"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Scheduler:
    def __init__(self, factory: SharedInformerFactory, framework: Framework, *,
                 name: str = DEFAULT_SCHEDULER, identity: str = "",
                 max_binds_in_flight: int = 256) -> None:
        self.name = name
        self.identity = identity
        self.framework = framework
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        self._binds = asyncio.Semaphore(max_binds_in_flight)
        self._bind_tasks: set[asyncio.Task] = set()
        self._lost: LeadershipLost | None = None
        factory.informer_for("Node").add_handler(self._node_added, self._node_updated,
                                                 self._node_deleted)
        self._pods = factory.informer_for("Pod")
        self._pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ------------------------------------------------------------ informer events

    def _pending(self, pod: t.Pod) -> bool:
        return (not pod.spec.node_name and pod.spec.scheduler_name == self.name
                and not pod.metadata.HasField("deletion_timestamp"))

    def _node_added(self, node: t.Node) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff("node added")

    def _node_updated(self, old: t.Node, new: t.Node) -> None:
        self.cache.add_node(new)
        if old.spec != new.spec or old.metadata.labels != new.metadata.labels or \
                old.status.allocatable != new.status.allocatable or \
                _ready(old) != _ready(new):
            self.queue.move_all_to_active_or_backoff("node updated")

    def _node_deleted(self, node: t.Node) -> None:
        self.cache.remove_node(node)

    def _pod_added(self, pod: t.Pod) -> None:
        if pod.spec.node_name:
            self.cache.add_pod(pod)
        elif self._pending(pod):
            self.queue.add(pod)

    def _pod_updated(self, old: t.Pod, new: t.Pod) -> None:
        if new.spec.node_name:
            if not old.spec.node_name:
                self.queue.delete(new)
            self.cache.add_pod(new)
        elif self._pending(new):
            self.queue.update(new)
        else:
            self.queue.delete(new)

    def _pod_deleted(self, pod: t.Pod) -> None:
        if pod.spec.node_name:
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff("pod deleted")
        else:
            self.queue.delete(pod)

    # ------------------------------------------------------------ leading

    async def run(self, client: ApiClient) -> None:
        """Schedule until cancelled or fenced out; client's writes carry the lease token."""
        events = EventRecorder(client, "default-scheduler", self.identity)
        housekeeping = [asyncio.create_task(events.run()),
                        asyncio.create_task(self._housekeeping())]
        try:
            while True:
                try:
                    qp = await self.queue.pop()
                except QueueClosed:
                    raise self._lost or LeadershipLost("scheduling queue closed") from None
                await self._schedule_one(qp, client, events)
                # let binds, informers and the lease renewal run between attempts
                await asyncio.sleep(0)
        finally:
            for task in (*housekeeping, *self._bind_tasks):
                task.cancel()
            await asyncio.gather(*housekeeping, *self._bind_tasks, return_exceptions=True)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for pod in self.cache.cleanup_expired():
                log.warning("bind of %s/%s never showed up; forgetting it",
                            pod.metadata.namespace, pod.metadata.name)
            self.queue.flush_unschedulable()
            for queue, depth in self.queue.depths().items():
                PENDING.labels(queue).set(depth)

    async def _schedule_one(self, qp: QueuedPod, client: ApiClient,
                            events: EventRecorder) -> None:
        pod = qp.pod
        start = time.perf_counter()
        try:
            result = self.framework.schedule(pod, self.cache.node_infos())
        except FrameworkError as exc:
            log.error("scheduling %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc)
            ATTEMPTS.labels("error").inc()
            self.queue.add_backoff(qp)
            self.queue.done(qp.uid)
            return
        if result.node_name is None:
            ATTEMPTS.labels("unschedulable").inc()
            message = failure_message(self.cache.node_count(), result.diagnosis)
            self.queue.add_unschedulable(qp)
            self.queue.done(qp.uid)
            events.record(pod, "Warning", "FailedScheduling", message)
            log.info("cannot schedule %s/%s: %s", pod.metadata.namespace, pod.metadata.name,
                     message)
            return
        self.cache.assume(pod, result.node_name)
        ATTEMPT_LATENCY.observe(time.perf_counter() - start)
        await self._binds.acquire()
        task = asyncio.create_task(self._bind(qp, result.node_name, client, events))
        self._bind_tasks.add(task)
        task.add_done_callback(self._bind_tasks.discard)

    async def _bind(self, qp: QueuedPod, node: str, client: ApiClient,
                    events: EventRecorder) -> None:
        """Bind, then tell the queue the outcome (it tracks the pod until then)."""
        pod = qp.pod
        try:
            await client.bind(pod.metadata.namespace, pod.metadata.name, node, pod.metadata.uid)
        except errors.Fenced as exc:
            self.cache.forget(pod)
            self._lost = LeadershipLost(f"bind refused: {exc.message}")
            self.queue.close()
            return
        except (errors.NotFound, errors.PreconditionFailed) as exc:
            # deleted, or bound by someone else meanwhile: nothing left to do
            self.cache.forget(pod)
            ATTEMPTS.labels("error").inc()
            log.info("bind of %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc)
            return
        except errors.ApiError as exc:
            self.cache.forget(pod)
            ATTEMPTS.labels("error").inc()
            log.warning("bind of %s/%s failed: %s; retrying", pod.metadata.namespace,
                        pod.metadata.name, exc)
            self.queue.add_backoff(qp)
            return
        finally:
            self._binds.release()
            self.queue.done(qp.uid)
        self.cache.finish_binding(pod)
        ATTEMPTS.labels("scheduled").inc()
        E2E_LATENCY.observe(time.monotonic() - qp.first_seen)
        events.record(pod, "Normal", "Scheduled",
                      f"Successfully assigned {pod.metadata.namespace}/{pod.metadata.name} "
                      f"to {node}")


def _ready(node: t.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
