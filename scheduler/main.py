"""Wiring of the scheduler process (`minik8s scheduler`)."""
from __future__ import annotations

from minik8s.client import ApiClient
from minik8s.component import Setup, Work
from minik8s.informer import SharedInformerFactory
from scheduler.plugins import default_framework
from scheduler.scheduler import Scheduler


def setup(scheduler_name: str, percentage_of_nodes_to_score: int, identity: str) -> Setup:
    async def build(_client: ApiClient, factory: SharedInformerFactory) -> Work:
        framework = default_framework(percentage_of_nodes_to_score=percentage_of_nodes_to_score)
        scheduler = Scheduler(factory, framework, name=scheduler_name, identity=identity)
        return Work(scheduler.run, writes=("Pod",))  # binds (events are not reasoned on)
    return build
