"""minictl's node maintenance commands, shaped as kubectl's: cordon, uncordon, drain.

Cordoning sets spec.unschedulable, so the scheduler places no new pod there
(DaemonSet pods tolerate it). Draining cordons the node, then deletes its
pods, as `kubectl drain --disable-eviction` does (there is no eviction API
here, so no PodDisruptionBudget either), and waits until they are gone; their
controllers create replacements elsewhere. Pods no controller would replace,
pods whose emptyDir data would be lost and DaemonSet pods (which would come
straight back) stop the drain unless a flag allows them.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import click

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli.common import CliError, api_options, fail, run
from minik8s.cli.workloads import parse_duration
from minik8s.client import ApiClient
from minik8s.retry import retry_on_conflict

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FINISHED = ("Succeeded", "Failed")
POLL = 0.5  # seconds between looks at the pods a drain waits for


# ---------------------------------------------------------------- what a drain deletes (pure)

@dataclass
class DrainPlan:
    delete: list[t.Pod] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)    # any of these stops the drain
    warnings: list[str] = field(default_factory=list)


def _names(pods: Sequence[t.Pod]) -> str:
    return ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods)


def _controller_kind(pod: t.Pod) -> str:
    return next((r.kind for r in pod.metadata.owner_references if r.controller), "")


def plan_drain(pods: Sequence[t.Pod], *, ignore_daemonsets: bool = False, force: bool = False,
               delete_emptydir_data: bool = False) -> DrainPlan:
    """Which of a node's pods a drain deletes, and what stops it (kubectl's filters).

    Mirror pods are skipped; DaemonSet pods are never deleted, and stop the drain
    unless ignore_daemonsets. Pods without a controller need force, pods with
    emptyDir volumes delete_emptydir_data; finished pods are always deleted.
    """
    plan = DrainPlan()
    daemons: list[t.Pod] = []
    unmanaged: list[t.Pod] = []
    local: list[t.Pod] = []
    for pod in pods:
        if MIRROR_ANNOTATION in pod.metadata.annotations:
            continue
        finished = pod.status.phase in FINISHED
        controller = _controller_kind(pod)
        if controller == "DaemonSet" and not finished:
            daemons.append(pod)
            continue
        if not finished and not controller:
            unmanaged.append(pod)
        if not finished and any(v.HasField("empty_dir") for v in pod.spec.volumes):
            local.append(pod)
        plan.delete.append(pod)
    if daemons:
        if ignore_daemonsets:
            plan.warnings.append(f"ignoring DaemonSet-managed Pods: {_names(daemons)}")
        else:
            plan.errors.append("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets "
                               f"to ignore): {_names(daemons)}")
    if unmanaged:
        if force:
            plan.warnings.append(f"deleting Pods that declare no controller: {_names(unmanaged)}")
        else:
            plan.errors.append("cannot delete Pods that declare no controller (use --force to "
                               f"override): {_names(unmanaged)}")
    if local:
        if delete_emptydir_data:
            plan.warnings.append(f"deleting Pods with local storage: {_names(local)}")
        else:
            plan.errors.append("cannot delete Pods with local storage (use "
                               f"--delete-emptydir-data to override): {_names(local)}")
    return plan


# ---------------------------------------------------------------- cordon, uncordon

async def set_unschedulable(client: ApiClient, name: str, unschedulable: bool) -> bool:
    """Set a node's spec.unschedulable; whether it changed."""
    async def attempt() -> bool:
        node = await client.get("Node", name)
        if node.spec.unschedulable == unschedulable:
            return False
        node.spec.unschedulable = unschedulable
        await client.update(node)
        return True
    return await retry_on_conflict(attempt)


async def _node_names(client: ApiClient, names: Sequence[str], selector: str) -> list[str]:
    if names and selector:
        raise CliError("give NODE names or -l SELECTOR, not both")
    if names:
        return list(names)
    if not selector:
        raise CliError("give at least one NODE, or -l SELECTOR")
    nodes, _ = await client.list("Node", label_selector=selector)
    if not nodes:
        raise CliError(f"no nodes match {selector}")
    return [n.metadata.name for n in nodes]


async def cordon_line(client: ApiClient, name: str, unschedulable: bool) -> str:
    word = "cordoned" if unschedulable else "uncordoned"
    changed = await set_unschedulable(client, name, unschedulable)
    return f"node/{name} {word}" if changed else f"node/{name} already {word}"


def _cordon(names: tuple[str, ...], selector: str, unschedulable: bool) -> None:
    async def work(client: ApiClient, _namespace: str) -> int:
        status = 0
        for name in await _node_names(client, names, selector):
            try:
                click.echo(await cordon_line(client, name, unschedulable))
            except errors.NotFound as exc:
                fail(f"Error from server (NotFound): {exc.message}")
                status = 1
        return status
    run(work)


@click.command()
@click.argument("names", nargs=-1, metavar="NODE...")
@click.option("-l", "--selector", default="", help="cordon the nodes with these labels")
@api_options
def cordon(names: tuple[str, ...], selector: str) -> None:
    """Mark nodes unschedulable: no new pod is placed there (the ones running stay).

    \b
    Examples:
      minictl cordon node-1
      minictl cordon -l disk=hdd
    """
    _cordon(names, selector, True)


@click.command()
@click.argument("names", nargs=-1, metavar="NODE...")
@click.option("-l", "--selector", default="", help="uncordon the nodes with these labels")
@api_options
def uncordon(names: tuple[str, ...], selector: str) -> None:
    """Mark nodes schedulable again.

    \b
    Examples:
      minictl uncordon node-1
    """
    _cordon(names, selector, False)


# ---------------------------------------------------------------- drain

@click.command()
@click.argument("node")
@click.option("--ignore-daemonsets", is_flag=True,
              help="leave DaemonSet pods (they would come back at once) instead of stopping")
@click.option("--force", is_flag=True,
              help="also delete pods that no controller manages (they are lost)")
@click.option("--delete-emptydir-data", is_flag=True,
              help="also delete pods with emptyDir volumes (their data is lost)")
@click.option("--grace-period", type=int, default=-1, show_default=True,
              help="seconds each pod gets to stop; negative: the pod's own")
@click.option("--timeout", default="300s", show_default=True,
              help="how long to wait for the pods to go (e.g. 90s, 5m; 0: no limit)")
@api_options
def drain(node: str, ignore_daemonsets: bool, force: bool, delete_emptydir_data: bool,
          grace_period: int, timeout: str) -> None:
    """Cordon a node, then delete its pods and wait until they are gone.

    Controllers recreate their pods on other nodes. Run `minictl uncordon NODE`
    when the node may take pods again.

    \b
    Examples:
      minictl drain node-1 --ignore-daemonsets
      minictl drain node-1 --ignore-daemonsets --force --grace-period 10 --timeout 2m
    """
    def work(client: ApiClient, _namespace: str) -> Awaitable[int]:
        limit = parse_duration(timeout)
        grace = grace_period if grace_period >= 0 else None
        options = {"ignore_daemonsets": ignore_daemonsets, "force": force,
                   "delete_emptydir_data": delete_emptydir_data}
        return _drain(client, node, options, grace, limit)
    run(work)


async def _pods_on(client: ApiClient, node: str) -> list[t.Pod]:
    pods, _ = await client.list("Pod", "", field_selector=f"spec.nodeName={node}")
    return pods


async def _drain(client: ApiClient, node: str, options: dict[str, bool], grace: int | None,
                 timeout: float) -> int:
    click.echo(await cordon_line(client, node, True))
    plan = plan_drain(await _pods_on(client, node), **options)
    if plan.errors:
        raise CliError(f'unable to drain node "{node}" due to error: {"; ".join(plan.errors)}')
    for warning in plan.warnings:
        fail(f"Warning: {warning}")
    for pod in plan.delete:
        with contextlib.suppress(errors.NotFound):
            await client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                grace_period_seconds=grace)
    await _wait_gone(client, node, plan.delete, timeout)
    click.echo(f"node/{node} drained")
    return 0


async def _wait_gone(client: ApiClient, node: str, pods: list[t.Pod], timeout: float) -> None:
    """Print "pod/NAME deleted" as each pod goes; an error if some remain after timeout."""
    waiting = {p.metadata.uid: p for p in pods}
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        present = {p.metadata.uid for p in await _pods_on(client, node)}
        for uid in [uid for uid in waiting if uid not in present]:
            click.echo(f"pod/{waiting.pop(uid).metadata.name} deleted")
        if not waiting:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(f'unable to drain node "{node}": timed out after {timeout:g}s '
                           f"waiting for pods to be deleted: {_names(list(waiting.values()))}")
        await asyncio.sleep(POLL)


COMMANDS = (cordon, uncordon, drain)
