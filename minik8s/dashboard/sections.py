"""The live sections of the page: what each shows, and which kinds it is drawn from."""
from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from minik8s.dashboard import model, render
from minik8s.dashboard.render import Html

Objects = Callable[[str], list[Message]]  # the cached objects of a kind


@dataclass(frozen=True)
class Section:
    id: str                  # the id of its <section> element
    kinds: tuple[str, ...]   # a change to any of these re-renders it
    render: Callable[[Objects, datetime.datetime], Html]


SECTIONS = (
    Section("leaders", ("Lease",),
            lambda objs, now: render.leaders(model.leader_views(objs("Lease"), now))),
    Section("nodes", ("Node", "Pod"),
            lambda objs, now: render.nodes(model.node_views(objs("Node"), objs("Pod")))),
    Section("workloads", ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Pod"),
            lambda objs, now: render.workloads(model.workload_views(
                objs("Deployment"), objs("ReplicaSet"), objs("StatefulSet"),
                objs("DaemonSet"), objs("Pod")))),
    Section("services", ("Service", "Endpoints"),
            lambda objs, now: render.services(model.service_views(objs("Service"),
                                                                  objs("Endpoints")))),
    Section("events", ("Event",),
            lambda objs, now: render.events(model.event_views(objs("Event"), now))),
)

KINDS = tuple(sorted({kind for section in SECTIONS for kind in section.kinds}))
# Leases elsewhere (the nodes' heartbeats) renew every few seconds and are not shown.
NAMESPACES = {"Lease": "kube-system"}
