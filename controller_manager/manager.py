"""The controller-manager: every controller in one leader-elected process."""
from __future__ import annotations

import asyncio
import logging

from controller_manager.base import Context, Controller, Options
from controller_manager.daemonset import DaemonSetController
from controller_manager.deployment import DeploymentController
from controller_manager.endpoints import EndpointsController
from controller_manager.garbagecollector import GarbageCollector
from controller_manager.namespace import NamespaceController
from controller_manager.nodeipam import NodeIpamController
from controller_manager.nodelifecycle import NodeLifecycleController
from controller_manager.replicaset import ReplicaSetController
from controller_manager.statefulset import StatefulSetController
from minik8s.client import ApiClient
from minik8s.component import Setup, Work
from minik8s.events import EventRecorder
from minik8s.informer import SharedInformerFactory
from minik8s.leaderelection import LeadershipLost

log = logging.getLogger("minik8s.controller-manager")

CONTROLLERS: tuple[type[Controller], ...] = (ReplicaSetController, DaemonSetController,
                                             StatefulSetController, EndpointsController,
                                             DeploymentController, NodeLifecycleController,
                                             NodeIpamController, GarbageCollector,
                                             NamespaceController)


def setup(options: Options, identity: str) -> Setup:
    async def build(_client: ApiClient, factory: SharedInformerFactory) -> Work:
        ctx = Context(factory, options)
        controllers = [cls(ctx) for cls in CONTROLLERS]

        async def lead(fenced: ApiClient) -> None:
            ctx.client = fenced
            ctx.events = EventRecorder(fenced, "controller-manager", identity)
            tasks = [asyncio.create_task(c.run(), name=c.name) for c in controllers]
            tasks.append(asyncio.create_task(ctx.events.run(), name="events"))
            fenced_out = asyncio.create_task(ctx.fenced.wait(), name="fenced")
            try:
                done, _ = await asyncio.wait([*tasks, fenced_out],
                                             return_when=asyncio.FIRST_COMPLETED)
                if fenced_out in done:
                    raise LeadershipLost("a write was fenced: a successor leads")
                for task in done:
                    task.result()
            finally:
                for task in (*tasks, fenced_out):
                    task.cancel()
                await asyncio.gather(*tasks, fenced_out, return_exceptions=True)
        return Work(lead)
    return build
