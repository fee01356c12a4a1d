"""Adopting and releasing: which owner controls an object.

kube-controller-manager's ControllerRefManager, for every workload
controller: an owner keeps the objects it controls while they match its
selector, releases those that stopped matching, and adopts matching orphans
(unless it is being deleted). Ownership is changed by an Update on the
object's resourceVersion, so two owners can never both adopt one object.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from google.protobuf.message import Message

from controller_manager import pods as podutil
from minik8s import errors, selectors
from minik8s.client import ApiClient


def controlled_by(obj: Message, uid: str) -> bool:
    ref = podutil.controller_of(obj)
    return ref is not None and ref.uid == uid


def with_controller(obj: Message, owner: Message | None) -> Message:
    """A copy of obj controlled by owner (or by nothing)."""
    changed = obj.__deepcopy__()
    refs = [r for r in changed.metadata.owner_references if not r.controller]
    del changed.metadata.owner_references[:]
    changed.metadata.owner_references.extend(refs)
    if owner is not None:
        changed.metadata.owner_references.append(podutil.controller_ref(owner))
    return changed


async def set_controller(api: ApiClient, obj: Message, owner: Message | None) -> Message | None:
    """Adopt obj (owner) or release it (None); None if it changed meanwhile."""
    try:
        return await api.update(with_controller(obj, owner))
    except (errors.Conflict, errors.NotFound):
        return None


async def claim(api: ApiClient, owner: Message, candidates: Iterable[Message],
                adoptable: Callable[[Message], bool] = lambda _: True,
                on_write: Callable[[Message], None] = lambda _: None) -> list[Message]:
    """The candidates owner controls after adopting and releasing (see the module doc).

    on_write sees every object this wrote, as the server stored it.
    """
    selector = selectors.LabelSelector.from_proto(owner.spec.selector)
    uid = owner.metadata.uid
    deleting = owner.metadata.HasField("deletion_timestamp")
    mine = []
    for obj in candidates:
        matches = selector.matches(obj.metadata.labels)
        if controlled_by(obj, uid):
            if matches:
                mine.append(obj)
                continue
            new_owner = None
        elif podutil.controller_of(obj) is None and matches and not deleting and adoptable(obj):
            new_owner = owner
        else:
            continue
        written = await set_controller(api, obj, new_owner)
        if written is not None:
            on_write(written)
            if new_owner is not None:
                mine.append(written)
    return mine
