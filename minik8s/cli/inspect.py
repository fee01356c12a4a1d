"""minictl commands that look at the cluster: describe, events, cluster-info, completion.

Registered on `main` by minictl. The text of a description is written by
describe.py; what it needs besides the object (events, pods, ReplicaSets,
endpoints) is fetched here, per kind.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class
from google.protobuf.message import Message

from minik8s import errors, kinds
from minik8s.cli import describe as text
from minik8s.cli import printers
from minik8s.cli.common import CliError, api_error_text, api_options, fail, parse_kinds, run
from minik8s.cli.describe import Related
from minik8s.client import ApiClient
from minik8s.kinds import Kind

SHELLS = ("bash", "zsh", "fish")
LEADER_LEASES = (("scheduler", "kube-scheduler"), ("controller-manager", "kube-controller-manager"))
LEASE_NAMESPACE = "kube-system"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _complete_kind(ctx: click.Context, param: click.Parameter,
                   incomplete: str) -> list[CompletionItem]:
    words = sorted({w for k in kinds.KINDS for w in (k.name.lower(), k.plural, *k.short_names)})
    return [CompletionItem(w) for w in words if w.startswith(incomplete.lower())]


def _owned_by(obj: Message, owner: Message) -> bool:
    return any(ref.uid == owner.metadata.uid for ref in obj.metadata.owner_references)


# ---------------------------------------------------------------- describe

async def events_for(client: ApiClient, obj: Message) -> list[Message]:
    """The events about obj: same kind and name, and its uid (or none recorded)."""
    kind, meta = kinds.of(obj), obj.metadata
    selector = f"involvedObject.kind={kind.name},involvedObject.name={meta.name}"
    # events about cluster-scoped objects are kept in "default"; look everywhere
    namespace = meta.namespace if kind.namespaced else ""
    items, _ = await client.list("Event", namespace, field_selector=selector)
    return [ev for ev in items if ev.involved_object.uid in ("", meta.uid)]


async def _owned_pods(client: ApiClient, obj: Message) -> Related:
    pods, _ = await client.list("Pod", obj.metadata.namespace)
    return Related(pods=[p for p in pods if _owned_by(p, obj)])


async def _replica_sets(client: ApiClient, obj: Message) -> Related:
    sets, _ = await client.list("ReplicaSet", obj.metadata.namespace)
    return Related(replica_sets=[rs for rs in sets if _owned_by(rs, obj)])


async def _service_endpoints(client: ApiClient, obj: Message) -> Related:
    with contextlib.suppress(errors.NotFound):
        return Related(endpoints=await client.get("Endpoints", obj.metadata.name,
                                                  obj.metadata.namespace))
    return Related()


async def _node_pods(client: ApiClient, obj: Message) -> Related:
    pods, _ = await client.list("Pod", "", field_selector=f"spec.nodeName={obj.metadata.name}")
    return Related(pods=pods)


RELATED: dict[str, Callable[[ApiClient, Message], Awaitable[Related]]] = {
    "Deployment": _replica_sets,
    "ReplicaSet": _owned_pods,
    "StatefulSet": _owned_pods,
    "DaemonSet": _owned_pods,
    "Service": _service_endpoints,
    "Node": _node_pods,
}


@click.command()
@click.argument("kind_word", metavar="KIND[/NAME]", shell_complete=_complete_kind)
@click.argument("names", nargs=-1)
@click.option("-l", "--selector", default="",
              help="without NAME: describe the objects matching this label selector")
@api_options
def describe(kind_word: str, names: tuple[str, ...], selector: str) -> None:
    """Show the details of objects, and their recent events.

    KIND is a kind, its plural or short name (po, svc, deploy, rs, ds, sts, no,
    ns, ep, lease, ev). Without NAME, every object of the kind in the namespace.

    \b
    Examples:
      minictl describe pod web-5d8f7b6b8c-x2x9k
      minictl describe deploy/web -n shop
      minictl describe no node-1
      minictl describe svc -l app=web
    """
    if "/" in kind_word:
        kind_word, _, name = kind_word.partition("/")
        names = (name, *names)

    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        kind = _one_kind(kind_word)
        return _describe(client, kind, namespace if kind.namespaced else "", names, selector)
    run(work)


def _one_kind(word: str) -> Kind:
    found = parse_kinds(word)
    if len(found) != 1:
        raise CliError(f"give one kind, not {word!r}")
    return found[0]


async def _describe(client: ApiClient, kind: Kind, namespace: str, names: tuple[str, ...],
                    selector: str) -> int:
    status = 0
    if names:
        objs = []
        for name in names:
            try:
                objs.append(await client.get(kind.name, name, namespace))
            except errors.NotFound as exc:
                fail(api_error_text(exc))
                status = 1
    else:
        objs, _ = await client.list(kind.name, namespace, selector)
        if not objs:
            fail(f"No resources found in {namespace} namespace." if namespace
                 else "No resources found")
    texts = []
    for obj in objs:
        fetch = RELATED.get(kind.name)
        related = await fetch(client, obj) if fetch else Related()
        related.events = await events_for(client, obj)
        texts.append(text.describe(obj, related, _now()))
    if texts:
        click.echo("\n".join(texts), nl=False)
    return status


# ---------------------------------------------------------------- events

@click.command()
@click.option("-A", "--all-namespaces", is_flag=True, help="events of every namespace")
@click.option("-w", "--watch", is_flag=True, help="after listing, print new events as they come")
@click.option("--for", "for_object", metavar="KIND/NAME",
              help="only the events about this object, e.g. pod/web-1")
@click.option("--types", default="", help="only events of these types, e.g. Warning,Normal")
@click.option("--watch-timeout", type=float, hidden=True, help="stop watching after SECONDS")
@api_options
def events(all_namespaces: bool, watch: bool, for_object: str | None, types: str,
           watch_timeout: float | None) -> None:
    """List events, oldest first: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.

    \b
    Examples:
      minictl events                      # the current namespace
      minictl events -A --types Warning   # every warning in the cluster
      minictl events --for deploy/web -w  # follow one object's events
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        query = _EventQuery("" if all_namespaces else namespace, _for_selector(for_object),
                            {t.strip().lower() for t in types.split(",") if t.strip()})
        return _events(client, query, watch, watch_timeout)
    run(work)


class _EventQuery:
    def __init__(self, namespace: str, field_selector: str, types: set[str]) -> None:
        self.namespace, self.field_selector, self.types = namespace, field_selector, types
        self.table = printers.Table(kinds.by_name("Event"), namespace_column=not namespace)

    def keep(self, ev: Any) -> bool:
        return not self.types or ev.type.lower() in self.types

    def print(self, items: list[Any]) -> None:
        rows = sorted(filter(self.keep, items), key=printers.event_sort_key)
        if rows:
            click.echo("\n".join(self.table.lines(rows)))


def _for_selector(for_object: str | None) -> str:
    if not for_object:
        return ""
    word, sep, name = for_object.partition("/")
    if not sep or not name:
        raise CliError(f"--for: expected KIND/NAME, got {for_object!r}")
    kind = _one_kind(word)
    return f"involvedObject.kind={kind.name},involvedObject.name={name}"


async def _events(client: ApiClient, query: _EventQuery, watch: bool,
                  timeout: float | None) -> int:
    items, resource_version = await client.list("Event", query.namespace,
                                                field_selector=query.field_selector)
    query.print(items)
    if not any(map(query.keep, items)) and not watch:
        fail(f"No events found in {query.namespace} namespace." if query.namespace
             else "No events found.")
    if watch:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await _follow_events(client, query, resource_version)
    return 0


async def _follow_events(client: ApiClient, query: _EventQuery, resource_version: str) -> None:
    """Print each new or repeated event; resume where a broken stream left off."""
    while True:
        try:
            async for ev in client.watch("Event", query.namespace,
                                         field_selector=query.field_selector,
                                         resource_version=resource_version):
                resource_version = ev.resource_version or resource_version
                if ev.type in ("ADDED", "MODIFIED"):
                    query.print([ev.object])
        except errors.Expired:
            _, resource_version = await client.list("Event", query.namespace,
                                                    field_selector=query.field_selector)
        except errors.Unavailable:
            await asyncio.sleep(1)


# ---------------------------------------------------------------- cluster-info

@click.command("cluster-info")
@api_options
def cluster_info() -> None:
    """Show the health of the control plane: apiservers, etcd members, leaders.

    Every apiserver endpoint is asked for its gRPC health; etcd's members and
    their leader come from an apiserver (only apiservers talk to etcd); the
    scheduler's and controller-manager's leaders are the holders of their
    Leases in kube-system. Exits 1 only when no apiserver answers.

    \b
    Examples:
      minictl cluster-info
      minictl cluster-info -s 127.0.0.1:6443,127.0.0.1:6444
    """
    run(lambda client, _ns: _cluster_info(client))


async def _cluster_info(client: ApiClient) -> int:
    healths = await asyncio.gather(*(client.endpoint_health(s) for s in client.servers))
    for server, health in zip(client.servers, healths, strict=True):
        state = "healthy" if health == "SERVING" else f"unhealthy ({health})"
        click.echo(f"apiserver {server}: {state}")
    if not any(h in ("SERVING", "NOT_SERVING") for h in healths):
        raise CliError(f"no apiserver answers at {','.join(client.servers)}")
    # concurrently: without an etcd quorum each of these waits out the apiserver's budget
    etcd, *leaders = await asyncio.gather(_etcd_info(client),
                                          *(_leader(client, lease) for _, lease in LEADER_LEASES))
    click.echo("\n".join(etcd))
    for (role, _), leader in zip(LEADER_LEASES, leaders, strict=True):
        click.echo(f"{role} leader: {leader}")
    return 0


async def _etcd_info(client: ApiClient) -> list[str]:
    try:
        members = await client.etcd_status()
    except errors.ApiError as exc:
        return [f"etcd: unknown ({api_error_text(exc)})"]
    leaders = [m.name or m.id for m in members if m.leader]
    return [*(f"etcd {etcd_member_line(m)}" for m in members),
            f"etcd leader: {', '.join(leaders) or printers.NONE}"]


def etcd_member_line(m: Any) -> str:
    """"etcd-0 (http://127.0.0.1:2379): healthy, leader, db 24.6 kB, v3.4.23"."""
    where = ",".join(m.client_urls) or printers.NONE
    name = f"{m.name} ({where})" if m.name else where
    if not m.healthy:
        return f"{name}: unhealthy ({m.error or 'unknown error'})"
    details = ["leader"] if m.leader else []
    details += [f"db {byte_size(m.db_size)}", f"v{m.version}" if m.version else ""]
    return f"{name}: healthy, {', '.join(d for d in details if d)}"


def byte_size(n: int) -> str:
    """Decimal units, as etcdctl prints DB SIZE: "25 kB", "3.1 MB"."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


async def _leader(client: ApiClient, name: str) -> str:
    """"<holder> (renewed 2s ago)", or why there is none."""
    try:
        lease = await client.get("Lease", name, LEASE_NAMESPACE)
    except errors.NotFound:
        return f"{printers.NONE} (no lease {LEASE_NAMESPACE}/{name})"
    except errors.ApiError as exc:
        return f"unknown ({api_error_text(exc)})"
    spec = lease.spec
    if not spec.holder_identity:
        return f"{printers.NONE} (lease {LEASE_NAMESPACE}/{name} is free)"
    now = _now()
    text = f"{spec.holder_identity} (lease renewed {printers.since(spec.renew_time, now)} ago"
    if spec.HasField("lease_duration_seconds") and spec.renew_time.seconds:
        renewed = spec.renew_time.ToDatetime(tzinfo=datetime.UTC)
        if (now - renewed).total_seconds() > spec.lease_duration_seconds:
            text += ", expired"
    return text + ")"


# ---------------------------------------------------------------- completion

@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for minictl.

    \b
    Examples:
      source <(minictl completion bash)      # now; add it to ~/.bashrc to keep it
      source <(minictl completion zsh)       # likewise, in ~/.zshrc
      minictl completion fish > ~/.config/fish/completions/minictl.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # every SHELLS entry is one of click's
    root = ctx.find_root().command
    click.echo(cls(root, {}, "minictl", "_MINICTL_COMPLETE").source())


COMMANDS = (describe, events, cluster_info, completion)
