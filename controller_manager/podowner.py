"""A controller whose primary objects own pods directly (DaemonSet, StatefulSet).

Both keep two expectation books, so one pass may create and delete, and react
to pod events the same way: a pod's controller is enqueued and its creations
and deletions observed; an orphan enqueues every owner that might adopt it.
Subclasses say which owners might (``might_adopt``).
"""
from __future__ import annotations

from google.protobuf.message import Message

from controller_manager import pods as podutil
from controller_manager.base import Controller
from controller_manager.expectations import Expectations
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import NAMESPACE_INDEX


class PodOwnerController(Controller):
    def register(self) -> None:
        self.creations, self.deletions = Expectations(), Expectations()
        self.pods = self.ctx.informer("Pod")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    def might_adopt(self, owner: Message, pod: t.Pod) -> bool:
        raise NotImplementedError

    def _owner_key(self, pod: t.Pod) -> str | None:
        ref = podutil.controller_of(pod)
        if ref is None or ref.kind != self.kind:
            return None
        key = f"{pod.metadata.namespace}/{ref.name}"
        owner = self.primary.get(key)
        return key if owner is not None and owner.metadata.uid == ref.uid else None

    def _enqueue_matching(self, pod: t.Pod) -> None:
        """An orphan: every owner that might adopt it should look."""
        for owner in self.primary.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            if self.might_adopt(owner, pod):
                self.enqueue(owner)

    def _pod_added(self, pod: t.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.creations.creation_observed(key)
            self.queue.add(key)
        elif podutil.controller_of(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: t.Pod, new: t.Pod) -> None:
        for pod in (old, new):
            if (key := self._owner_key(pod)) is not None:
                self.queue.add(key)
        if podutil.controller_of(new) is None and old.metadata.labels != new.metadata.labels:
            self._enqueue_matching(new)
        if podutil.is_terminating(new) and not podutil.is_terminating(old):
            self._deletion_seen(new)

    def _pod_deleted(self, pod: t.Pod) -> None:
        self._deletion_seen(pod)

    def _deletion_seen(self, pod: t.Pod) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.deletions.deletion_observed(key, pod.metadata.uid)
            self.queue.add(key)
