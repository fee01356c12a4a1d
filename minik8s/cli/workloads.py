"""minictl's workload commands, shaped as kubectl's: create deployment|namespace,
expose, scale, rollout (status, history, undo, restart, pause, resume) and
set image.

Every change is a read-modify-write of the whole object, retried on conflict
(another writer, often a controller, got there first). The pure parts
(argument parsing, the objects built, the lines printed) are functions of
their own, tested without a cluster.
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import click
from google.protobuf.message import Message

from minik8s import errors, kinds, manifest, rollout
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli import printers
from minik8s.cli.common import CliError, api_error_text, api_options, fail, run, scope
from minik8s.client import ApiClient
from minik8s.kinds import Kind
from minik8s.retry import retry_on_conflict

Target = tuple[Kind, str]

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")
WITH_ROLLOUT_STATUS = ("Deployment", "StatefulSet")
EXPOSABLE = ("Deployment", "ReplicaSet", "Pod", "Service")
WITH_TEMPLATE = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")
SERVICE_TYPES = ("ClusterIP", "NodePort")
DRY_RUN_CHOICES = ("none", "client")
CREATE_OUTPUTS = ("yaml", "json", "name")
WATCH_RETRY = 0.5  # seconds before following a broken watch again

DRY_RUN = click.option("--dry-run", type=click.Choice(DRY_RUN_CHOICES), default="none",
                       is_flag=False, flag_value="client", show_default=True,
                       help="client: only print the object that would be sent")
OUTPUT = click.option("-o", "--output", type=click.Choice(CREATE_OUTPUTS),
                      help="print the object (yaml, json) or its name instead")


# ---------------------------------------------------------------- arguments (pure)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds in a kubectl duration: "300", "30s", "5m", "1m30s", "500ms", "1h"."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or not re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", text):
        raise CliError(f'invalid duration "{text}": use a number of seconds, or e.g. 30s, 5m, 1h')
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[unit] for n, unit in _DURATION_PART.findall(text))


def parse_count(text: str | None, flag: str = "--replicas") -> int:
    """A --replicas value: an integer, 0 or more."""
    required = (f"The {flag}=COUNT flag is required, and COUNT must be greater than or "
                "equal to 0")
    if text is None:
        raise CliError(required)
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        raise CliError(f'invalid argument "{text}" for "{flag}" flag: not an integer')
    value = int(text)
    if value < 0:
        raise CliError(required)
    return value


def lookup_kind(word: str) -> Kind:
    try:
        return kinds.lookup(word)
    except kinds.UnknownKind:
        raise CliError(f'the server doesn\'t have a resource type "{word}"') from None


def parse_targets(words: Sequence[str]) -> list[Target]:
    """kubectl's resource arguments: TYPE NAME..., or TYPE/NAME..."""
    if not words:
        raise CliError("you must provide one or more resources by argument")
    if "/" in words[0]:
        targets = []
        for word in words:
            kind_word, _, name = word.partition("/")
            if not kind_word or not name or "/" in name:
                raise CliError("arguments in resource/name form must have a single resource "
                               f'and name: "{word}"')
            targets.append((lookup_kind(kind_word), name))
        return targets
    kind, names = lookup_kind(words[0]), words[1:]
    if any("/" in name for name in names):
        raise CliError("there is no need to specify a resource type as a separate argument "
                       "when passing arguments in resource/name form")
    if not names:
        raise CliError(f'resource(s) were provided, but no name was specified: "{words[0]}"')
    return [(kind, name) for name in names]


def only(targets: list[Target], allowed: Sequence[str], what: str) -> list[Target]:
    """The targets, if every one is of an allowed kind."""
    for kind, _ in targets:
        if kind.name not in allowed:
            names = ", ".join(kinds.by_name(k).plural for k in allowed)
            raise CliError(f"{what} is not supported for {kind.plural} (only {names})")
    return targets


def one(targets: list[Target], what: str) -> Target:
    if len(targets) != 1:
        raise CliError(f"{what} takes exactly one resource")
    return targets[0]


def qualified_plural(kind: Kind) -> str:
    """"deployments.apps", as kubectl names a resource type in errors."""
    group = kind.api_version.rpartition("/")[0]
    return f"{kind.plural}.{group}" if group else kind.plural


def image_pairs(words: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """set image's arguments: the resource words, then CONTAINER=IMAGE pairs."""
    resources = [w for w in words if "=" not in w]
    pairs = [w for w in words if "=" in w]
    if not pairs:
        raise CliError("at least one image update is required (CONTAINER=IMAGE)")
    if words.index(pairs[0]) < len(resources):
        raise CliError("give the resources first, then CONTAINER=IMAGE pairs")
    images = {}
    for pair in pairs:
        container, _, image = pair.partition("=")
        if not container or not image:
            raise CliError(f'"{pair}" is not CONTAINER=IMAGE')
        images[container] = image
    return resources, images


# ---------------------------------------------------------------- objects (pure)

def container_name(image: str) -> str:
    """A container's name from its image, as kubectl create deployment: "nginx" of
    "docker.io/library/nginx:1.25"."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return name.replace("_", "-").replace(".", "-").lower()


def deployment_object(name: str, namespace: str, images: Sequence[str], replicas: int,
                      port: int | None = None, command: Sequence[str] = ()) -> t.Deployment:
    """kubectl create deployment's Deployment: labels app=NAME, a container per image."""
    if len(images) > 1 and command:
        raise CliError("cannot specify multiple --image options and command")
    labels = {"app": name}
    containers: list[t.Container] = []
    for image in images:
        base = container_name(image)
        cname, n = base, 1
        while any(c.name == cname for c in containers):
            n += 1
            cname = f"{base}-{n}"
        containers.append(t.Container(name=cname, image=image, command=list(command)))
    if port is not None:
        containers[0].ports.add(container_port=port)
    return t.Deployment(
        metadata=t.ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=t.DeploymentSpec(
            replicas=replicas, selector=t.LabelSelector(match_labels=labels),
            template=t.PodTemplateSpec(metadata=t.ObjectMeta(labels=labels),
                                       spec=t.PodSpec(containers=containers))))


def selector_of(obj: Message) -> dict[str, str]:
    """The labels a Service exposing obj selects."""
    kind = kinds.of(obj).name
    if kind == "Pod":
        selector = dict(obj.metadata.labels)
    elif kind == "Service":
        selector = dict(obj.spec.selector)
    else:
        if obj.spec.selector.match_expressions:
            raise CliError("couldn't retrieve selectors via --selector flag or introspection: "
                           f'{kind} "{obj.metadata.name}" uses matchExpressions, which a '
                           "service selector cannot express")
        selector = dict(obj.spec.selector.match_labels)
    if not selector:
        raise CliError("couldn't retrieve selectors via --selector flag or introspection: "
                       f'{kind} "{obj.metadata.name}" has no selector, so it cannot be exposed')
    return selector


def _target_port(text: str) -> t.IntOrString:
    return t.IntOrString(int_val=int(text)) if text.isdigit() else t.IntOrString(str_val=text)


def exposed_ports(obj: Message, port: int | None, target_port: str | None,
                  protocol: str | None) -> list[t.ServicePort]:
    """--port (and --target-port), else the ports obj declares, as kubectl expose."""
    if port is not None:
        return [t.ServicePort(port=port, protocol=protocol or "TCP",
                              target_port=_target_port(target_port or str(port)))]
    kind = kinds.of(obj).name
    if kind == "Service":
        found = [(p.port, p.protocol, p.target_port) for p in obj.spec.ports]
    else:
        spec = obj.spec if kind == "Pod" else obj.spec.template.spec
        found = [(p.container_port, p.protocol, t.IntOrString(int_val=p.container_port))
                 for c in spec.containers for p in c.ports]
    if not found:
        raise CliError("couldn't find port via --port flag or introspection")
    if target_port and len(found) > 1:
        raise CliError("--target-port needs --port when the object has several ports")
    ports = []
    for i, (number, proto, target) in enumerate(found, 1):
        name = f"port-{i}" if len(found) > 1 else ""
        ports.append(t.ServicePort(name=name, port=number, protocol=protocol or proto or "TCP",
                                   target_port=_target_port(target_port) if target_port
                                   else target))
    return ports


def service_for(obj: Message, name: str, ports: list[t.ServicePort],
                type_: str | None) -> t.Service:
    """The Service kubectl expose makes for obj: its labels, selecting obj's pods."""
    return t.Service(metadata=t.ObjectMeta(name=name, namespace=obj.metadata.namespace,
                                           labels=dict(obj.metadata.labels)),
                     spec=t.ServiceSpec(type=type_ or "ClusterIP", selector=selector_of(obj),
                                        ports=ports))


def pod_spec_of(obj: Message) -> t.PodSpec:
    return obj.spec if kinds.of(obj).name == "Pod" else obj.spec.template.spec


def set_images(spec: t.PodSpec, images: dict[str, str]) -> None:
    """Set, in place, each named container's image; "*" is every container."""
    containers = [*spec.init_containers, *spec.containers]
    for name, image in images.items():
        matched = [c for c in containers if name in ("*", c.name)]
        if not matched:
            raise CliError(f'unable to find container named "{name}"')
        for c in matched:
            c.image = image


def history_lines(revisions: Sequence[rollout.Revision]) -> list[str]:
    """kubectl rollout history's table (tab-aligned, two spaces apart)."""
    if not revisions:
        return ["No rollout history found."]
    rows = [("REVISION", "CHANGE-CAUSE")]
    rows += [(str(r.number), r.change_cause or printers.NONE) for r in revisions]
    width = max(len(rev) for rev, _ in rows) + 2
    return [f"{rev.ljust(width)}{cause}" for rev, cause in rows]


def template_lines(template: t.PodTemplateSpec) -> list[str]:
    """A pod template as kubectl rollout history --revision describes it."""
    def listing(title: str, items: list[str], indent: str = "  ") -> list[str]:
        head = f"{indent}{title}:"
        if not items:
            return [f"{head}\t{printers.NONE}"]
        return [f"{head}\t{items[0]}", *(f"{indent}{' ' * len(title)} \t{i}" for i in items[1:])]

    meta = template.metadata
    lines = ["Pod Template:"]
    lines += listing("Labels", [f"{k}={v}" for k, v in sorted(meta.labels.items())])
    lines += listing("Annotations", [f"{k}: {v}" for k, v in sorted(meta.annotations.items())])
    lines.append("  Containers:")
    for c in template.spec.containers:
        lines += [f"   {c.name}:", f"    Image:\t{c.image}"]
        ports = [f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports]
        lines.append(f"    Port:\t{', '.join(ports) or printers.NONE}")
        if c.command:
            lines.append(f"    Command:\t{' '.join(c.command)}")
        if c.args:
            lines.append(f"    Args:\t{' '.join(c.args)}")
        env = [f"{e.name}={e.value}" for e in c.env]
        lines.append(f"    Environment:\t{', '.join(env) or printers.NONE}")
    return lines


# ---------------------------------------------------------------- shared steps

async def modify(client: ApiClient, kind: Kind, name: str, namespace: str,
                 change: Callable[[Any], None]) -> tuple[Message, bool]:
    """Get, change and update one object, retried on conflict; whether it changed."""
    async def attempt() -> tuple[Message, bool]:
        obj = await client.get(kind.name, name, scope(kind, namespace))
        before = kind.new()
        before.CopyFrom(obj)
        change(obj)
        if obj == before:
            return obj, False
        return await client.update(obj), True
    return await retry_on_conflict(attempt)


async def each(targets: list[Target], act: Callable[[Kind, str], Awaitable[str]]) -> int:
    """act on every target, printing its line; an API error (a missing object, say) is
    printed and the rest still done, as kubectl."""
    status = 0
    for kind, name in targets:
        try:
            line = await act(kind, name)
        except errors.Unavailable:
            raise
        except errors.ApiError as exc:
            fail(api_error_text(exc))
            status = 1
            continue
        if line:
            click.echo(line)
    return status


async def create_object(client: ApiClient, obj: Message, dry_run: str,
                        output: str | None) -> int:
    if dry_run == "none":
        obj = await client.create(obj)
    emit(obj, "created", dry_run, output)
    return 0


def emit(obj: Message, action: str, dry_run: str, output: str | None) -> None:
    """What a creating command prints: "<kind>/<name> <action>", or the object."""
    if output == "yaml":
        click.echo(manifest.dump_yaml(obj), nl=False)
    elif output == "json":
        click.echo(manifest.dump_json(obj), nl=False)
    else:
        name = printers.resource_name(kinds.of(obj), obj.metadata.name)
        dry = " (dry run)" if dry_run != "none" else ""
        click.echo(name if output == "name" else f"{name} {action}{dry}")


# ---------------------------------------------------------------- create deployment|namespace|rolebinding

@click.command("deployment")
@click.argument("name")
@click.argument("command", nargs=-1)
@click.option("--image", "images", multiple=True, required=True,
              help="image of a container (repeat for several containers)")
@click.option("--replicas", default="1", show_default=True, help="number of pods")
@click.option("--port", type=click.IntRange(1, 65535),
              help="port the (first) container listens on")
@DRY_RUN
@OUTPUT
@api_options
def create_deployment(name: str, command: tuple[str, ...], images: tuple[str, ...],
                      replicas: str, port: int | None, dry_run: str,
                      output: str | None) -> None:
    """Create a deployment NAME of the given image(s), labelled app=NAME.

    A COMMAND after -- replaces the image's entrypoint.

    \b
    Examples:
      minictl create deployment web --image nginx:1.25 --replicas 3 --port 80
      minictl create deployment sleeper --image busybox:1.36 -- sleep 3600
      minictl create deployment web --image nginx:1.25 --dry-run -o yaml
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        d = deployment_object(name, namespace, images, parse_count(replicas), port, command)
        return create_object(client, d, dry_run, output)
    run(work)


@click.command("namespace")
@click.argument("name")
@DRY_RUN
@OUTPUT
@api_options
def create_namespace(name: str, dry_run: str, output: str | None) -> None:
    """Create a namespace NAME.

    \b
    Examples:
      minictl create namespace staging
    """
    ns = t.Namespace(metadata=t.ObjectMeta(name=name))
    run(lambda client, _ns: create_object(client, ns, dry_run, output))


@click.command("rolebinding")
@click.argument("name")
@click.option("--clusterrole", help="the ClusterRole to grant in the namespace")
@click.option("--role", help="the Role (of the namespace) to grant")
@click.option("--user", "users", multiple=True, help="a user to grant it to (repeatable)")
@click.option("--group", "groups", multiple=True, help="a group to grant it to (repeatable)")
@DRY_RUN
@OUTPUT
@api_options
def create_rolebinding(name: str, clusterrole: str | None, role: str | None,
                       users: tuple[str, ...], groups: tuple[str, ...], dry_run: str,
                       output: str | None) -> None:
    """Create a rolebinding NAME granting a Role or ClusterRole in a namespace.

    \b
    Examples:
      minictl create rolebinding alice-edit --clusterrole edit --user alice -n team-a
      minictl create rolebinding readers --role pod-reader --group team-a -n team-a
    """
    if (clusterrole is None) == (role is None):
        raise click.UsageError("give exactly one of --clusterrole and --role")
    if not users and not groups:
        raise click.UsageError("give at least one --user or --group")

    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        binding = t.RoleBinding(
            metadata=t.ObjectMeta(name=name, namespace=namespace),
            role_ref=t.RoleRef(api_group=kinds.RBAC_GROUP, kind="ClusterRole" if clusterrole else "Role",
                               name=clusterrole or role or ""),
            subjects=[t.Subject(kind=kind, api_group=kinds.RBAC_GROUP, name=who)
                      for kind, names in (("User", users), ("Group", groups)) for who in names])
        return create_object(client, binding, dry_run, output)
    run(work)


# ---------------------------------------------------------------- expose

@click.command()
@click.argument("resource", nargs=-1, required=True)
@click.option("--port", type=click.IntRange(1, 65535),
              help="the service's port (default: the ports the object's containers declare)")
@click.option("--target-port", help="container port (number or name) traffic goes to "
                                    "(default: --port)")
@click.option("--protocol", type=click.Choice(["TCP", "UDP"]), help="(default: TCP)")
@click.option("--type", "type_", type=click.Choice(SERVICE_TYPES, case_sensitive=False),
              help="service type (default: ClusterIP)")
@click.option("--name", "service_name", help="the service's name (default: the object's)")
@DRY_RUN
@OUTPUT
@api_options
def expose(resource: tuple[str, ...], port: int | None, target_port: str | None,
           protocol: str | None, type_: str | None, service_name: str | None, dry_run: str,
           output: str | None) -> None:
    """Expose a deployment, replica set, pod or service as a new service.

    The service selects the object's pods by its selector (a pod's labels).

    \b
    Examples:
      minictl expose deployment web --port 80 --target-port 8080
      minictl expose deploy/web --port 80 --type NodePort --name web-public
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        kind, name = one(only(parse_targets(resource), EXPOSABLE, "expose"), "expose")
        return _expose(client, namespace, kind, name, port, target_port, protocol, type_,
                       service_name, dry_run, output)
    run(work)


async def _expose(client: ApiClient, namespace: str, kind: Kind, name: str, port: int | None,
                  target_port: str | None, protocol: str | None, type_: str | None,
                  service_name: str | None, dry_run: str, output: str | None) -> int:
    obj = await client.get(kind.name, name, namespace)
    svc = service_for(obj, service_name or name, exposed_ports(obj, port, target_port, protocol),
                      type_)
    if dry_run == "none":
        svc = await client.create(svc)
    emit(svc, "exposed", dry_run, output)
    return 0


# ---------------------------------------------------------------- scale

@click.command()
@click.argument("resource", nargs=-1, required=True)
@click.option("--replicas", help="the new number of replicas (required)")
@click.option("--current-replicas", help="only scale if the current number is this")
@api_options
def scale(resource: tuple[str, ...], replicas: str | None,
          current_replicas: str | None) -> None:
    """Set the number of replicas of deployments, replica sets or stateful sets.

    \b
    Examples:
      minictl scale deployment web --replicas 3
      minictl scale deploy/web rs/cache --replicas 0
      minictl scale deployment web --current-replicas 2 --replicas 3
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        count = parse_count(replicas)
        current = None if current_replicas is None else \
            parse_count(current_replicas, "--current-replicas")
        targets = only(parse_targets(resource), SCALABLE, "scale")

        async def act(kind: Kind, name: str) -> str:
            def change(obj: Any) -> None:
                if current is not None and obj.spec.replicas != current:
                    raise CliError(f"expected replicas to be {current}, was "
                                   f"{obj.spec.replicas}")
                obj.spec.replicas = count
            await modify(client, kind, name, namespace, change)
            return f"{printers.resource_name(kind, name)} scaled"
        return each(targets, act)
    run(work)


# ---------------------------------------------------------------- rollout

@click.group("rollout")
@api_options
def rollout_group() -> None:
    """Manage the rollout of deployments (status: of stateful sets too).

    \b
    Examples:
      minictl rollout status deployment/web
      minictl rollout status statefulset/db
      minictl rollout history deployment/web
      minictl rollout undo deployment/web --to-revision 2
      minictl rollout restart deployment/web
    """


def _deployments(resource: tuple[str, ...], what: str) -> list[Target]:
    return only(parse_targets(resource), ("Deployment",), what)


@rollout_group.command("status")
@click.argument("resource", nargs=-1, required=True)
@click.option("-w", "--watch", type=bool, default=True, show_default=True,
              help="wait for the rollout to finish; false: print its state once")
@click.option("--timeout", default="300s", show_default=True,
              help="how long to wait (e.g. 90s, 5m; 0: no limit)")
@api_options
def rollout_status(resource: tuple[str, ...], watch: bool, timeout: str) -> None:
    """Wait for a deployment's or stateful set's rollout to finish, printing its progress.

    \b
    Examples:
      minictl rollout status deployment/web
      minictl rollout status deployment web --timeout 2m
      minictl rollout status deploy/web --watch=false
      minictl rollout status statefulset/db
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        kind, name = one(only(parse_targets(resource), WITH_ROLLOUT_STATUS, "rollout status"),
                         "rollout status")
        return _rollout_status(client, kind, namespace, name, watch, parse_duration(timeout))
    run(work)


async def _rollout_status(client: ApiClient, kind: Kind, namespace: str, name: str,
                          watch: bool, timeout: float) -> int:
    try:
        async with asyncio.timeout(timeout or None):
            await _follow_rollout(client, kind, namespace, name, watch)
    except TimeoutError:
        raise CliError("timed out waiting for the condition") from None
    return 0


async def _follow_rollout(client: ApiClient, kind: Kind, namespace: str, name: str,
                          watch: bool) -> None:
    """Print each new status line until the rollout is done (or once, without watch)."""
    printed = ""
    gone = f'{kind.name.lower()} "{name}" was deleted'

    def show(obj: Message) -> bool:
        nonlocal printed
        try:
            line, done = rollout.status_of(obj)
        except (rollout.RolloutFailed, rollout.NoRolloutStatus) as exc:
            raise CliError(str(exc)) from None
        if line != printed:
            click.echo(line)
            printed = line
        return done

    if show(await client.get(kind.name, name, namespace)) or not watch:
        return
    fields = f"metadata.name={name}"
    while True:
        found, resource_version = await client.list(kind.name, namespace,
                                                    field_selector=fields)
        if not found:
            raise CliError(gone)
        if show(found[0]):
            return
        try:
            async for event in client.watch(kind.name, namespace, field_selector=fields,
                                            resource_version=resource_version):
                if event.type == "DELETED":
                    raise CliError(gone)
                if event.type != "BOOKMARK" and show(event.object):
                    return
        except (errors.Expired, errors.Unavailable):
            pass  # the stream broke: list again, then follow from there
        await asyncio.sleep(WATCH_RETRY)


@rollout_group.command("history")
@click.argument("resource", nargs=-1, required=True)
@click.option("--revision", type=click.IntRange(min=0), default=0,
              help="show the pod template of this revision")
@api_options
def rollout_history(resource: tuple[str, ...], revision: int) -> None:
    """List a deployment's revisions, or show one's pod template.

    The revisions are those of the deployment's replica sets; CHANGE-CAUSE is
    their kubernetes.io/change-cause annotation, which they take from the
    deployment's.

    \b
    Examples:
      minictl rollout history deployment/web
      minictl rollout history deployment/web --revision 2
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        targets = _deployments(resource, "rollout history")

        async def act(kind: Kind, name: str) -> str:
            d = await client.get(kind.name, name, namespace)
            revisions = rollout.history(await rollout.owned_replica_sets(client, d))
            title = printers.resource_name(kind, name)
            if not revision:
                return "\n".join([title, *history_lines(revisions)])
            chosen = next((r for r in revisions if r.number == revision), None)
            if chosen is None:
                raise CliError(f"unable to find the specified revision {revision}")
            template = rollout.without_hash(chosen.replica_set.spec.template)
            return "\n".join([f"{title} with revision #{revision}", *template_lines(template)])
        return each(targets, act)
    run(work)


@rollout_group.command("undo")
@click.argument("resource", nargs=-1, required=True)
@click.option("--to-revision", type=click.IntRange(min=0), default=0,
              help="the revision to go back to (default: the one before the latest)")
@api_options
def rollout_undo(resource: tuple[str, ...], to_revision: int) -> None:
    """Roll a deployment back to an earlier revision's pod template.

    \b
    Examples:
      minictl rollout undo deployment/web
      minictl rollout undo deployment web --to-revision 1
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        targets = _deployments(resource, "rollout undo")

        async def act(kind: Kind, name: str) -> str:
            try:
                result = await rollout.roll_back(client, namespace, name, to_revision)
            except (rollout.NoRevision, rollout.Paused) as exc:
                raise CliError(exc.message) from None
            title = printers.resource_name(kind, name)
            if not result.changed:
                return (f"{title} skipped rollback (current template already matches "
                        f"revision {result.revision})")
            return f"{title} rolled back"
        return each(targets, act)
    run(work)


@rollout_group.command("restart")
@click.argument("resource", nargs=-1, required=True)
@api_options
def rollout_restart(resource: tuple[str, ...]) -> None:
    """Replace a deployment's pods with new ones, rolled out as any change.

    Sets the template annotation kubectl.kubernetes.io/restartedAt to now.

    \b
    Examples:
      minictl rollout restart deployment/web
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        targets = _deployments(resource, "rollout restart")
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        async def act(kind: Kind, name: str) -> str:
            def change(d: t.Deployment) -> None:
                if d.spec.paused:
                    raise CliError(f'{qualified_plural(kind)} "{name}" can\'t restart paused '
                                   "deployment (run rollout resume first)")
                d.spec.template.metadata.annotations[rollout.RESTARTED_AT] = now
            await modify(client, kind, name, namespace, change)
            return f"{printers.resource_name(kind, name)} restarted"
        return each(targets, act)
    run(work)


def _set_paused(resource: tuple[str, ...], paused: bool) -> None:
    word = "paused" if paused else "resumed"

    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        targets = _deployments(resource, f"rollout {'pause' if paused else 'resume'}")

        async def act(kind: Kind, name: str) -> str:
            def change(d: t.Deployment) -> None:
                if d.spec.paused == paused:
                    state = "already paused" if paused else "not paused"
                    raise CliError(f'{qualified_plural(kind)} "{name}" is {state}')
                d.spec.paused = paused
            await modify(client, kind, name, namespace, change)
            return f"{printers.resource_name(kind, name)} {word}"
        return each(targets, act)
    run(work)


@rollout_group.command("pause")
@click.argument("resource", nargs=-1, required=True)
@api_options
def rollout_pause(resource: tuple[str, ...]) -> None:
    """Stop rolling out changes to a deployment's template until it is resumed.

    \b
    Examples:
      minictl rollout pause deployment/web
    """
    _set_paused(resource, True)


@rollout_group.command("resume")
@click.argument("resource", nargs=-1, required=True)
@api_options
def rollout_resume(resource: tuple[str, ...]) -> None:
    """Resume a paused deployment: changes made meanwhile are rolled out.

    \b
    Examples:
      minictl rollout resume deployment/web
    """
    _set_paused(resource, False)


# ---------------------------------------------------------------- set image

@click.group("set")
@api_options
def set_group() -> None:
    """Change one part of objects.

    \b
    Examples:
      minictl set image deployment/web nginx=nginx:1.26
    """


@set_group.command("image")
@click.argument("words", nargs=-1, required=True, metavar="RESOURCE... CONTAINER=IMAGE...")
@api_options
def set_image(words: tuple[str, ...]) -> None:
    """Change the image of containers of pods or workloads (deployments, replica
    sets, daemon sets, stateful sets). CONTAINER * is every container.

    \b
    Examples:
      minictl set image deployment/web nginx=nginx:1.26
      minictl set image deployment web nginx=nginx:1.26 sidecar=busybox:1.37
      minictl set image ds/agent '*=agent:2'
    """
    def work(client: ApiClient, namespace: str) -> Awaitable[int]:
        resources, images = image_pairs(words)
        targets = only(parse_targets(resources), (*WITH_TEMPLATE, "Pod"), "set image")

        async def act(kind: Kind, name: str) -> str:
            _, changed = await modify(client, kind, name, namespace,
                                      lambda obj: set_images(pod_spec_of(obj), images))
            # as kubectl: nothing to print when the images were already these
            return f"{printers.resource_name(kind, name)} image updated" if changed else ""
        return each(targets, act)
    run(work)


def _alias(command: click.Command, name: str) -> click.Command:
    """The command under another name, left out of the help (kubectl's short names)."""
    alias = copy.copy(command)
    alias.name, alias.hidden = name, True
    return alias


# the commands minictl adds to its own (create deployment|namespace go under `create`)
COMMANDS = (expose, scale, rollout_group, set_group)
CREATE_COMMANDS = (create_deployment, create_namespace, create_rolebinding,
                   _alias(create_deployment, "deploy"), _alias(create_namespace, "ns"))
