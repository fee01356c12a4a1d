"""The ReplicaSet controller: exactly spec.replicas pods matching the selector."""
from __future__ import annotations

import asyncio
import logging

from controller_manager import pods as podutil
from controller_manager.base import Controller, write_status
from controller_manager.expectations import Expectations
from controller_manager.ownership import claim
from minik8s import errors, selectors
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import NAMESPACE_INDEX

log = logging.getLogger("minik8s.controller.replicaset")

UID_INDEX = "uid"
MAX_BATCH = 500  # creates in flight at once (batches grow 1, 2, 4, ... as Kubernetes' slow start)


class ReplicaSetController(Controller):
    name = "replicaset"
    kind = "ReplicaSet"

    def register(self) -> None:
        self.expectations = Expectations()
        self.primary.add_index(UID_INDEX, lambda rs: [rs.metadata.uid])
        self.pods = self.ctx.informer("Pod")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ------------------------------------------------------------ pod events

    def _owner_key(self, pod: t.Pod) -> str | None:
        ref = podutil.controller_of(pod)
        if ref is None or ref.kind != self.kind:
            return None
        owners = self.primary.by_index(UID_INDEX, ref.uid)
        return f"{pod.metadata.namespace}/{owners[0].metadata.name}" if owners else None

    def _enqueue_matching(self, pod: t.Pod) -> None:
        """An orphan: every ReplicaSet that might adopt it should look."""
        for rs in self.primary.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            if selectors.LabelSelector.from_proto(rs.spec.selector).matches(pod.metadata.labels):
                self.enqueue(rs)

    def _pod_added(self, pod: t.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif podutil.controller_of(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: t.Pod, new: t.Pod) -> None:
        for pod in (old, new):
            key = self._owner_key(pod)
            if key is not None:
                self.queue.add(key)
        if podutil.controller_of(new) is None and old.metadata.labels != new.metadata.labels:
            self._enqueue_matching(new)
        if new.metadata.HasField("deletion_timestamp") and \
                not old.metadata.HasField("deletion_timestamp"):
            self._deletion_seen(new)

    def _pod_deleted(self, pod: t.Pod) -> None:
        self._deletion_seen(pod)

    def _deletion_seen(self, pod: t.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod.metadata.uid)
            self.queue.add(key)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        rs = self.primary.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        mine = await claim(self.ctx.api, rs,
                           self.pods.by_index(NAMESPACE_INDEX, rs.metadata.namespace),
                           adoptable=podutil.is_active)
        active = [p for p in mine if podutil.is_active(p)]
        if self.expectations.satisfied(key) and not rs.metadata.HasField("deletion_timestamp"):
            diff = rs.spec.replicas - len(active)
            if diff > 0:
                await self._create(key, rs, diff)
            elif diff < 0:
                await self._delete(key, rs, active, -diff)
        await self._update_status(rs, mine)

    async def _create(self, key: str, rs: t.ReplicaSet, count: int) -> None:
        self.expectations.expect_creations(key, count)
        created, batch = 0, 1
        while created < count:
            size = min(batch, count - created, MAX_BATCH)
            results = await asyncio.gather(
                *(self.ctx.api.create(podutil.from_template(rs.spec.template, rs))
                  for _ in range(size)), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            for pod in results:
                if not isinstance(pod, BaseException):
                    self.ctx.record(rs, "Normal", "SuccessfulCreate",
                                    f"Created pod: {pod.metadata.name}")
            created += size
            if failed:
                # the ones not created (and never to be observed) are no longer expected
                for _ in range(len(failed) + count - created):
                    self.expectations.creation_observed(key)
                raise failed[0]
            batch *= 2

    async def _delete(self, key: str, rs: t.ReplicaSet, active: list[t.Pod],
                      count: int) -> None:
        doomed = sorted(active, key=podutil.deletion_rank)[:count]
        self.expectations.expect_deletions(key, [p.metadata.uid for p in doomed])
        results = await asyncio.gather(
            *(self.ctx.api.delete("Pod", p.metadata.name, p.metadata.namespace)
              for p in doomed), return_exceptions=True)
        for pod, result in zip(doomed, results, strict=True):
            if isinstance(result, errors.NotFound):
                self.expectations.deletion_observed(key, pod.metadata.uid)
            elif isinstance(result, BaseException):
                self.expectations.deletion_observed(key, pod.metadata.uid)
                raise result
            else:
                self.ctx.record(rs, "Normal", "SuccessfulDelete",
                                f"Deleted pod: {pod.metadata.name}")

    async def _update_status(self, rs: t.ReplicaSet, mine: list[t.Pod]) -> None:
        now = podutil.now()
        active = [p for p in mine if podutil.is_active(p)]
        status = t.ReplicaSetStatus(
            replicas=len(active),
            fully_labeled_replicas=sum(1 for p in active if all(
                p.metadata.labels.get(k) == v for k, v in rs.spec.template.metadata.labels.items())),
            ready_replicas=sum(1 for p in active if podutil.is_ready(p)),
            available_replicas=sum(1 for p in active if podutil.is_available(
                p, rs.spec.min_ready_seconds, now)),
            observed_generation=rs.metadata.generation)
        if status.ready_replicas > status.available_replicas:
            # look again once they have been ready for minReadySeconds
            self.queue.add_after(f"{rs.metadata.namespace}/{rs.metadata.name}",
                                 rs.spec.min_ready_seconds)
        await write_status(self.ctx.api, rs, status)

