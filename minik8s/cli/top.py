"""`minictl top nodes|pods`: CPU and memory in use, as `kubectl top` shows them.

There is no metrics-server: minictl asks each node's kubelet (its Stats RPC,
answered from the kubelet's stats cache, refreshed every 10 s) directly, the
way `minictl logs` reaches a pod's kubelet. CPU is shown in millicores
(rounded up), memory in MiB (rounded down) and percentages of the node's
allocatable, as kubectl does. A node's usage is the sum of its pods'.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import click

from minik8s import errors
from minik8s.api.v1 import kubelet_pb2 as k
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli.common import CliError, api_options, fail, run
from minik8s.cli.printers import render_row
from minik8s.client import ApiClient
from minik8s.kubeletclient import KubeletClient, KubeletError
from minik8s.quantity import cpu_millis, to_bytes

UNKNOWN = "<unknown>"
NODE_HEADERS = ("NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%")
POD_HEADERS = ("NAME", "CPU(cores)", "MEMORY(bytes)")
SORT_KEYS = ("cpu", "memory")
MIB = 1024 * 1024


# ---------------------------------------------------------------- pure

def cpu_text(nano_cores: int) -> str:
    """Millicores, rounded up as a Kubernetes quantity's MilliValue: "12m"."""
    return f"{math.ceil(nano_cores / 1_000_000)}m"


def memory_text(nbytes: int) -> str:
    """Whole MiB, rounded down as kubectl prints them: "5Mi"."""
    return f"{nbytes // MIB}Mi"


def percent_text(used: int, allocatable: int) -> str:
    return f"{used * 100 // allocatable}%" if allocatable > 0 else UNKNOWN


def pod_usage(stats: k.PodStats) -> tuple[int, int]:
    """(nano cores, working set bytes) of a pod: the sum of its containers."""
    return (sum(c.usage_nano_cores for c in stats.containers),
            sum(c.working_set_bytes for c in stats.containers))


def _allocatable(node: t.Node, resource: str, convert: Callable[[str], int]) -> int:
    """The node's allocatable amount (else its capacity); 0 if it reports none."""
    value = node.status.allocatable.get(resource) or node.status.capacity.get(resource)
    try:
        return convert(value) if value else 0
    except ValueError:
        return 0


def node_row(node: t.Node, stats: k.StatsResponse | None) -> list[str]:
    name = node.metadata.name
    if stats is None or not stats.HasField("time"):
        return [name, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN]
    millis = math.ceil(stats.usage_nano_cores / 1_000_000)
    return [name, cpu_text(stats.usage_nano_cores),
            percent_text(millis, _allocatable(node, "cpu", cpu_millis)),
            memory_text(stats.working_set_bytes),
            percent_text(stats.working_set_bytes, _allocatable(node, "memory", to_bytes))]


def node_rows(nodes: Iterable[t.Node], stats: Mapping[str, k.StatsResponse | None],
              sort_by: str = "") -> list[list[str]]:
    """One row per node; nodes without metrics last, with <unknown> (as kubectl)."""
    def key(node: t.Node) -> tuple[bool, int, str]:
        s = stats.get(node.metadata.name)
        known = s is not None and s.HasField("time")
        usage = 0 if s is None else {"cpu": s.usage_nano_cores,
                                     "memory": s.working_set_bytes}.get(sort_by, 0)
        return not known, -usage, node.metadata.name
    return [node_row(n, stats.get(n.metadata.name)) for n in sorted(nodes, key=key)]


def pod_rows(pods: Iterable[t.Pod], stats: Mapping[str, k.PodStats], all_namespaces: bool,
             sort_by: str = "") -> list[list[str]]:
    """One row per pod that has metrics (stats by pod uid), in the given order
    unless sort_by is cpu or memory (most first)."""
    measured = [(pod, pod_usage(stats[pod.metadata.uid])) for pod in pods
                if pod.metadata.uid in stats]
    if sort_by in SORT_KEYS:
        index = SORT_KEYS.index(sort_by)
        measured.sort(key=lambda item: -item[1][index])
    rows = []
    for pod, (cores, memory) in measured:
        row = [pod.metadata.name, cpu_text(cores), memory_text(memory)]
        rows.append([pod.metadata.namespace, *row] if all_namespaces else row)
    return rows


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned lines, as `minictl get` prints its tables."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [render_row(r, widths) for r in [headers, *rows]]


# ---------------------------------------------------------------- asking the kubelets

async def _stats_of(node: t.Node) -> k.StatsResponse | None:
    """A node's stats; None (with a warning) if its kubelet cannot say."""
    try:
        async with KubeletClient.for_node(node) as kubelet:
            return await kubelet.stats()
    except (KubeletError, errors.ApiError) as exc:
        fail(f"warning: node {node.metadata.name}: {exc}")
        return None


async def stats_by_node(nodes: Sequence[t.Node]) -> dict[str, k.StatsResponse | None]:
    answers = await asyncio.gather(*(_stats_of(n) for n in nodes))
    return {n.metadata.name: s for n, s in zip(nodes, answers, strict=True)}


# ---------------------------------------------------------------- commands

class _Top(click.Group):
    """`top node` and `top pod` work as well as the plurals, as in kubectl."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, {"node": "nodes", "no": "nodes",
                                         "pod": "pods", "po": "pods"}.get(cmd_name, cmd_name))


@click.group(cls=_Top)
def top() -> None:
    """Show the CPU and memory in use by nodes or pods."""


SORT_BY = click.option("--sort-by", type=click.Choice(SORT_KEYS), default=None,
                       help="list the largest users of cpu or memory first")


@top.command("nodes")
@click.argument("name", required=False)
@click.option("-l", "--selector", default="", help="label selector, e.g. disk=ssd")
@SORT_BY
@api_options
def top_nodes(name: str | None, selector: str, sort_by: str | None) -> None:
    """Show the CPU and memory in use on nodes: NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%.

    A node's usage is the sum of its pods' containers; percentages are of its
    allocatable cpu and memory.

    \b
    Examples:
      minictl top nodes
      minictl top node node-0
      minictl top nodes --sort-by cpu
    """
    async def work(client: ApiClient, _namespace: str) -> int:
        if name:
            nodes = [await client.get("Node", name)]
        else:
            nodes, _ = await client.list("Node", label_selector=selector)
        if not nodes:
            fail("No resources found")
            return 0
        stats = await stats_by_node(nodes)
        if not any(s is not None and s.HasField("time") for s in stats.values()):
            raise CliError("metrics not available yet")
        click.echo("\n".join(table(NODE_HEADERS, node_rows(nodes, stats, sort_by or ""))))
        return 0
    run(work)


@top.command("pods")
@click.argument("name", required=False)
@click.option("-A", "--all-namespaces", is_flag=True, help="pods of every namespace")
@click.option("-l", "--selector", default="", help="label selector, e.g. app=web")
@SORT_BY
@api_options
def top_pods(name: str | None, all_namespaces: bool, selector: str,
             sort_by: str | None) -> None:
    """Show the CPU and memory in use by pods: NAME CPU(cores) MEMORY(bytes).

    A pod's usage is the sum of its running containers'.

    \b
    Examples:
      minictl top pods
      minictl top pods -A --sort-by memory
      minictl top pod web-7d9f-abc12 -n shop
      minictl top pods -l app=web
    """
    async def work(client: ApiClient, namespace: str) -> int:
        scope = "" if all_namespaces else namespace
        if name:
            pods = [await client.get("Pod", name, namespace)]
        else:
            pods, _ = await client.list("Pod", scope, label_selector=selector)
        if not pods:
            fail(f"No resources found in {scope} namespace." if scope
                 else "No resources found")
            return 0
        rows = pod_rows(pods, await _pod_stats(client, pods), all_namespaces, sort_by or "")
        if not rows:
            raise CliError("metrics not available yet")
        headers = ("NAMESPACE", *POD_HEADERS) if all_namespaces else POD_HEADERS
        click.echo("\n".join(table(headers, rows)))
        return 0
    run(work)


async def _pod_stats(client: ApiClient, pods: Sequence[t.Pod]) -> dict[str, k.PodStats]:
    """Stats of every pod the kubelets of these pods' nodes report, by pod uid."""
    wanted = {p.spec.node_name for p in pods if p.spec.node_name}
    nodes = [n for n in (await client.list("Node"))[0] if n.metadata.name in wanted]
    answers = await stats_by_node(nodes)
    return {pod.uid: pod for stats in answers.values() if stats is not None
            for pod in stats.pods}


COMMANDS = (top,)
