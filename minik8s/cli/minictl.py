"""`minictl`: the kubectl-like command line of minik8s.

The commands that read and write objects live here; what they share
(options, the API session, errors) in common, tables in printers.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import os
import sys
import tempfile
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import docker
import docker.errors
import requests.exceptions
import yaml
from google.protobuf.message import Message

from minik8s import errors, kinds, manifest
from minik8s.cli import printers
from minik8s.cli.common import (
    CASCADES,
    OUTPUTS,
    CliError,
    api_error_text,
    api_options,
    fail,
    parse_kinds,
    read_manifests,
    run,
    scope,
)
from minik8s.client import ApiClient
from minik8s.kinds import Kind
from minik8s.kubeletclient import KubeletClient, KubeletError

IMAGE_CHUNK = 1024 * 1024

# ---------------------------------------------------------------- commands

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@api_options
def main() -> None:
    """minictl controls a minik8s cluster."""


@main.command()
def version() -> None:
    """Print the client version.

    \b
    Examples:
      minictl version
    """
    click.echo(f"Client Version: v{importlib.metadata.version('minik8s')}")


FILENAMES = click.option("-f", "--filename", "filenames", multiple=True, required=True,
                         help="manifest file, directory of manifests, or - for stdin")


@main.command()
@FILENAMES
@api_options
def apply(filenames: tuple[str, ...]) -> None:
    """Create or update the objects in manifests.

    \b
    Examples:
      minictl apply -f web.yaml
      minictl apply -f manifests/ -n shop
      cat web.yaml | minictl apply -f -
    """
    run(lambda client, ns: _apply(client, ns, filenames, create_only=False))


@main.group(invoke_without_command=True)
@click.option("-f", "--filename", "filenames", multiple=True,
              help="manifest file, directory of manifests, or - for stdin")
@api_options
@click.pass_context
def create(ctx: click.Context, filenames: tuple[str, ...]) -> None:
    """Create the objects in manifests (-f); an existing one is an error.
    Or create one object by name: see the commands below.

    \b
    Examples:
      minictl create -f web.yaml
      minictl create deployment web --image nginx:1.25 --replicas 3
      minictl create namespace staging
    """
    if ctx.invoked_subcommand is not None:
        if filenames:
            raise click.UsageError("give either -f FILE or a command, not both")
        return
    if not filenames:
        raise click.UsageError("Missing option '-f' / '--filename' (or a command).")
    run(lambda client, ns: _apply(client, ns, filenames, create_only=True))


async def _apply(client: ApiClient, namespace: str, filenames: Iterable[str],
                 create_only: bool) -> int:
    """Apply each file on its own, so an error names its file; go on after a bad one."""
    status = 0
    for label, text in read_manifests(filenames):
        try:
            results = await client.apply(text, namespace=namespace, create_only=create_only)
        except errors.Unavailable:
            raise
        except errors.Invalid as exc:
            fail(f"error: {label}: {exc.message}")
            status = 1
            continue
        except errors.ApiError as exc:
            fail(api_error_text(exc, label))
            status = 1
            continue
        for result in results:
            kind = kinds.by_name(result.kind)
            click.echo(f"{printers.resource_name(kind, result.name)} {result.action}")
    return status


# ---------------------------------------------------------------- get

@dataclass(frozen=True)
class Query:
    """What `get` asks for; namespace is "" with --all-namespaces."""

    kinds: list[Kind]
    names: tuple[str, ...]
    namespace: str
    label_selector: str
    field_selector: str
    output: str | None

    @property
    def single(self) -> bool:
        """One named object: -o yaml/json print it bare rather than in a List."""
        return len(self.kinds) == 1 and len(self.names) == 1

    def table(self, kind: Kind) -> printers.Table:
        if self.output and self.output.startswith(printers.CUSTOM_COLUMNS):
            return printers.CustomColumnsTable(printers.parse_custom_columns(self.output))
        return printers.Table(kind, wide=self.output == "wide",
                              namespace_column=not self.namespace,
                              kind_prefix=len(self.kinds) > 1)


@main.command()
@click.argument("kind_words", metavar="KIND[,KIND...]")
@click.argument("names", nargs=-1)
@click.option("-A", "--all-namespaces", is_flag=True, help="list across all namespaces")
@click.option("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
@click.option("--field-selector", default="", help="field selector, e.g. spec.nodeName=n1")
@click.option("-o", "--output", type=printers.OutputFormat(OUTPUTS),
              help="output format; custom-columns=HEADER:.json.path,... for your own columns")
@click.option("-w", "--watch", is_flag=True, help="after listing, print changes as they happen")
@click.option("--watch-timeout", type=float, hidden=True, help="stop watching after SECONDS")
@api_options
def get(kind_words: str, names: tuple[str, ...], all_namespaces: bool, selector: str,
        field_selector: str, output: str | None, watch: bool,
        watch_timeout: float | None) -> None:
    """Show objects: a table, or -o yaml|json|name|wide|custom-columns=...

    \b
    Examples:
      minictl get pods -o wide
      minictl get deploy,svc -A
      minictl get pods -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName
      minictl get pod web-1 -o yaml
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        query = Query(parse_kinds(kind_words), names, "" if all_namespaces else namespace,
                      selector, field_selector, output)
        if watch:
            return _get_watch(client, query, watch_timeout)
        return _get(client, query)
    run(work)


async def _fetch(client: ApiClient, query: Query, kind: Kind) -> tuple[list[Message], str]:
    """The objects of one kind, and the resourceVersion to watch from (lists only)."""
    namespace = scope(kind, query.namespace)
    if query.names:
        return [await client.get(kind.name, name, namespace) for name in query.names], ""
    return await client.list(kind.name, namespace, query.label_selector, query.field_selector)


async def _get(client: ApiClient, query: Query) -> int:
    found = [(kind, (await _fetch(client, query, kind))[0]) for kind in query.kinds]
    objs = [obj for _, group in found for obj in group]
    if query.output in ("yaml", "json"):
        click.echo(_dump(query.output, objs[0] if query.single else objs), nl=False)
    elif not objs:
        fail(_nothing_found(query))
    elif query.output == "name":
        click.echo("\n".join(_name(obj) for obj in objs))
    else:
        tables = ["\n".join(query.table(kind).lines(group)) for kind, group in found if group]
        click.echo("\n\n".join(tables))
    return 0


def _dump(output: str, objs: Message | list[Message]) -> str:
    """-o yaml/json: one object as itself, several as a kind: List."""
    if output == "json":
        return manifest.dump_json(objs)
    if isinstance(objs, Message):
        return manifest.dump_yaml(objs)
    items = {"apiVersion": "v1", "kind": "List", "items": [manifest.to_dict(o) for o in objs]}
    return yaml.safe_dump(items, sort_keys=False, default_flow_style=False)


def _name(obj: Message) -> str:
    return printers.resource_name(kinds.of(obj), obj.metadata.name)


def _nothing_found(query: Query) -> str:
    if query.namespace and any(kind.namespaced for kind in query.kinds):
        return f"No resources found in {query.namespace} namespace."
    return "No resources found"


async def _get_watch(client: ApiClient, query: Query, timeout: float | None) -> int:
    """List, print, then print one row per change until Ctrl-C (or the hidden timeout)."""
    if len(query.kinds) > 1 or len(query.names) > 1:
        raise CliError("watch is only supported on one kind, and at most one name")
    kind = query.kinds[0]
    fields = ",".join(filter(None, [query.field_selector,
                                    *(f"metadata.name={n}" for n in query.names)]))
    # a named object is listed and watched by field selector, so the watch has a start
    listing = Query(query.kinds, (), query.namespace, query.label_selector, fields, query.output)
    objs, resource_version = await _fetch(client, listing, kind)
    if query.names and not objs:
        raise errors.NotFound(f'{kind.plural} "{query.names[0]}" not found')
    table = listing.table(kind)
    _print_watched(listing, table, objs)
    if not objs:
        fail(_nothing_found(listing))
    try:
        async with asyncio.timeout(timeout):
            await _follow(client, listing, kind, table, resource_version)
    except TimeoutError:
        pass
    return 0


async def _follow(client: ApiClient, query: Query, kind: Kind, table: printers.Table,
                  resource_version: str) -> None:
    """Print every change after resource_version; resume where it broke if a stream breaks."""
    while True:
        try:
            async for event in client.watch(kind.name, scope(kind, query.namespace),
                                            query.label_selector, query.field_selector,
                                            resource_version=resource_version):
                resource_version = event.resource_version or resource_version
                if event.type != "BOOKMARK":
                    _print_watched(query, table, [event.object])
        except errors.Unavailable:
            await asyncio.sleep(1)


def _print_watched(query: Query, table: printers.Table, objs: list[Message]) -> None:
    if not objs:
        return
    if query.output == "name":
        click.echo("\n".join(_name(obj) for obj in objs))
    elif query.output == "yaml":
        click.echo("".join("---\n" + manifest.dump_yaml(obj) for obj in objs), nl=False)
    elif query.output == "json":
        click.echo("".join(manifest.dump_json(obj) for obj in objs), nl=False)
    else:
        click.echo("\n".join(table.lines(objs)))


# ---------------------------------------------------------------- delete

@main.command()
@click.argument("kind_words", metavar="KIND[,KIND...]", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "filenames", multiple=True,
              help="delete the objects in this manifest (file, directory or -)")
@click.option("--grace-period", type=click.IntRange(min=0), help="seconds a pod gets to stop (default: its own)")
@click.option("--cascade", type=click.Choice(list(CASCADES)), default="background",
              show_default=True, help="what happens to the objects this one owns")
@click.option("-l", "--selector", default="", help="delete the objects with these labels")
@click.option("--all", "all_", is_flag=True, help="delete every object of the kinds")
@api_options
def delete(kind_words: str | None, names: tuple[str, ...], filenames: tuple[str, ...],
           grace_period: int | None, cascade: str, selector: str, all_: bool) -> None:
    """Delete objects by kind and name, by label (-l) or all (--all), or those in a
    manifest.

    \b
    Examples:
      minictl delete deployment web
      minictl delete pods -l app=web
      minictl delete -f web.yaml --cascade=orphan
    """
    async def work(client: ApiClient, namespace: str) -> int:
        if selector or all_:
            targets = await _selected_targets(client, kind_words, names, filenames, namespace,
                                              selector)
            if not targets:
                click.echo("No resources found")
                return 0
        else:
            targets = _delete_targets(kind_words, names, filenames, namespace)
        return await _delete(client, targets, grace_period, CASCADES[cascade])
    run(work)


def _delete_targets(kind_words: str | None, names: tuple[str, ...], filenames: tuple[str, ...],
                    namespace: str) -> list[tuple[Kind, str, str]]:
    """(kind, namespace, name) of every object to delete."""
    if filenames:
        if kind_words:
            raise CliError("give either KIND NAME... or -f, not both")
        objs = [obj for label, text in read_manifests(filenames)
                for obj in _load(label, text, namespace)]
        return [(kinds.of(o), o.metadata.namespace, o.metadata.name) for o in objs]
    if not kind_words or not names:
        raise CliError("give KIND and at least one NAME, or -f FILE")
    return [(kind, scope(kind, namespace), name)
            for kind in parse_kinds(kind_words) for name in names]


async def _selected_targets(client: ApiClient, kind_words: str | None, names: tuple[str, ...],
                            filenames: tuple[str, ...], namespace: str,
                            selector: str) -> list[tuple[Kind, str, str]]:
    """(kind, namespace, name) of every object of the kinds matching selector (-l, --all)."""
    if filenames or names:
        raise CliError("name cannot be provided when a selector or --all is specified")
    if not kind_words:
        raise CliError("give the KIND of the objects to delete")
    targets = []
    for kind in parse_kinds(kind_words):
        objs, _ = await client.list(kind.name, scope(kind, namespace), selector)
        targets += [(kind, o.metadata.namespace, o.metadata.name) for o in objs]
    return targets


def _load(label: str, text: str, namespace: str) -> list[Message]:
    try:
        return manifest.load(text, default_namespace=namespace)
    except manifest.ManifestError as exc:
        raise CliError(f"{label}: {exc}") from None


async def _delete(client: ApiClient, targets: list[tuple[Kind, str, str]],
                  grace_period: int | None, propagation: str) -> int:
    """Delete each target, going on after one that fails (a missing one, say)."""
    status = 0
    for kind, namespace, name in targets:
        try:
            await client.delete(kind.name, name, namespace, grace_period_seconds=grace_period,
                                propagation_policy=propagation)
        except errors.Unavailable:
            raise
        except errors.ApiError as exc:
            fail(api_error_text(exc))
            status = 1
            continue
        click.echo(f'{printers.qualified_kind(kind)} "{name}" deleted')
    return status


# ---------------------------------------------------------------- logs, exec (through the kubelet)

@main.command()
@click.argument("pod")
@click.option("-c", "--container", default="", help="container name (default: the pod's only one)")
@click.option("-f", "--follow", is_flag=True, help="keep printing what the container writes")
@click.option("--tail", type=int, default=-1, show_default=True,
              help="print only the last N lines; -1: all")
@click.option("-p", "--previous", is_flag=True,
              help="the log of the container's previous, terminated instance")
@click.option("--timestamps", is_flag=True, help="prefix every line with its time")
@api_options
def logs(pod: str, container: str, follow: bool, tail: int, previous: bool,
         timestamps: bool) -> None:
    """Print the log of a container in a pod.

    \b
    Examples:
      minictl logs web-7d9f-abc12
      minictl logs web-7d9f-abc12 -c side -f --tail 20
      minictl logs web-7d9f-abc12 --previous
    """
    options = {"container": container, "follow": follow, "tail_lines": tail,
               "previous": previous, "timestamps": timestamps}
    run(lambda client, ns: _logs(client, ns, pod, options))


async def _logs(client: ApiClient, namespace: str, pod: str, options: dict[str, Any]) -> int:
    out = sys.stdout.buffer
    async with await KubeletClient.for_pod(client, namespace, pod) as kubelet:
        try:
            async for data in kubelet.logs(namespace, pod, **options):
                out.write(data)
                out.flush()
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            _discard_stdout()
    return 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the exit-time flush does not fail on a closed pipe."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@main.command("exec")
@click.argument("pod")
@click.argument("command", nargs=-1, required=True)
@click.option("-c", "--container", default="", help="container name (default: the pod's only one)")
@api_options
def exec_(pod: str, command: tuple[str, ...], container: str) -> None:
    """Run a command in a container: minictl exec POD -- CMD ARGS...

    Exits with the command's exit status.

    \b
    Examples:
      minictl exec web-7d9f-abc12 -- wget -qO- http://127.0.0.1:8080/
      minictl exec web-7d9f-abc12 -c side -- sh -c 'ls /data'
    """
    run(lambda client, ns: _exec(client, ns, pod, container, command))


async def _exec(client: ApiClient, namespace: str, pod: str, container: str,
                command: tuple[str, ...]) -> int:
    async with await KubeletClient.for_pod(client, namespace, pod) as kubelet:
        result = await kubelet.exec(namespace, pod, command, container)
    for stream, data in ((sys.stdout, result.stdout), (sys.stderr, result.stderr)):
        stream.buffer.write(data)
        stream.buffer.flush()
    return result.exit_code


# ---------------------------------------------------------------- image

@main.group()
def image() -> None:
    """Manage images on the cluster's nodes."""


@image.command("load")
@click.argument("images", nargs=-1)
@click.option("--file", "archive", type=click.Path(exists=True, dir_okay=False),
              help="a `docker save` archive to load (as well as any IMAGE)")
@api_options
def image_load(images: tuple[str, ...], archive: str | None) -> None:
    """Copy images from the local Docker engine, or an archive, to every node.

    \b
    Examples:
      minictl image load myapp:1.0
      minictl image load --file myapp.tar
    """
    if not images and not archive:
        raise click.UsageError("give at least one IMAGE, or --file ARCHIVE")
    run(lambda client, _ns: _image_load(client, images, archive))


async def _image_load(client: ApiClient, images: tuple[str, ...], archive: str | None) -> int:
    nodes, _ = await client.list("Node")
    nodes = [n for n in nodes if n.status.daemon_endpoints.kubelet_endpoint.port > 0]
    if not nodes:
        raise CliError("no node has a kubelet endpoint to load images into")
    with tempfile.TemporaryDirectory(prefix="minictl-image-") as tmp:
        archives = [Path(archive)] if archive else []
        archives += await asyncio.to_thread(_save_images, images, Path(tmp))
        results = await asyncio.gather(*(_load_on_node(node, archives) for node in nodes))
    for line, ok in results:
        if ok:
            click.echo(line)
        else:
            fail(line)
    return 0 if all(ok for _, ok in results) else 1


def _save_images(names: Iterable[str], directory: Path) -> list[Path]:
    """`docker save` each image from the local engine into its own archive."""
    try:
        engine = docker.from_env()
        try:
            return [_save_image(engine, name, directory / f"{i}.tar")
                    for i, name in enumerate(names)]
        finally:
            engine.close()
    except docker.errors.APIError as exc:
        raise CliError(f"the local Docker engine: {exc.explanation or exc}") from None
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise CliError(f"cannot reach the local Docker engine: {exc}") from None


def _save_image(engine: docker.DockerClient, name: str, path: Path) -> Path:
    try:
        engine.images.get(name)
    except docker.errors.ImageNotFound:
        raise CliError(f'image "{name}" not found in the local Docker engine') from None
    with path.open("wb") as out:
        for chunk in engine.api.get_image(name, chunk_size=IMAGE_CHUNK):
            out.write(chunk)
    return path


async def _load_on_node(node: Message, archives: list[Path]) -> tuple[str, bool]:
    """One node's line of output, and whether it loaded everything."""
    name = node.metadata.name
    try:
        async with KubeletClient.for_node(node) as kubelet:
            loaded = [tag for path in archives for tag in await kubelet.load_image(_chunks(path))]
    except (KubeletError, OSError) as exc:
        return f"{name}: error: {exc}", False
    except errors.ApiError as exc:
        return f"{name}: {api_error_text(exc)}", False
    return f"{name}: loaded {', '.join(loaded)}", True


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as archive:
        while chunk := archive.read(IMAGE_CHUNK):
            yield chunk


# ---------------------------------------------------------------- commands of other modules
# (each module defines click commands; they are added to `main` here)

from minik8s.cli import inspect as _inspect  # noqa: E402  (describe, events, cluster-info, completion)

for _command in _inspect.COMMANDS:
    main.add_command(_command)

from minik8s.cli import auth as _auth  # noqa: E402  (auth can-i)
from minik8s.cli import nodes as _nodes  # noqa: E402  (cordon, uncordon, drain)
from minik8s.cli import top as _top  # noqa: E402  (top nodes, top pods)
from minik8s.cli import workloads as _workloads  # noqa: E402  (expose, scale, rollout, set)

for _command in (*_workloads.COMMANDS, *_nodes.COMMANDS, *_top.COMMANDS, *_auth.COMMANDS):
    main.add_command(_command)
for _command in _workloads.CREATE_COMMANDS:  # create deployment, create namespace
    create.add_command(_command)


if __name__ == "__main__":
    main()
