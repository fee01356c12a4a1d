"""What every minictl command shares: its options, the API session, errors, input.

A command is a click function that hands an async function to `run`, which
resolves the apiservers and the namespace, runs it with one ApiClient
(asyncio.run per command) and turns every expected failure into kubectl-style
text on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from minik8s import config, errors, kinds
from minik8s.client import ApiClient
from minik8s.kinds import Kind
from minik8s.kubeletclient import KubeletError

DEFAULT_NAMESPACE = "default"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "STDIN"
OUTPUTS = ("wide", "yaml", "json", "name")
CASCADES = {"background": "Background", "orphan": "Orphan", "foreground": "Foreground"}
REASONS: dict[type[errors.ApiError], str] = {
    errors.ApiError: "InternalError",
    errors.Unavailable: "ServiceUnavailable",
    errors.Unauthenticated: "Unauthorized",
    errors.Forbidden: "Forbidden",
}


class CliError(Exception):
    """A mistake on the client side: printed as "error: <message>"."""


@dataclass
class Settings:
    """The options every API command takes, before or after the command name."""

    server: str | None = None
    namespace: str | None = None


Work = Callable[[ApiClient, str], Awaitable[int]]


def _remember(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        settings = ctx.ensure_object(Settings)
        if value is not None:
            setattr(settings, field, value)
    return callback


def api_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-s", "--server", expose_value=False, callback=_remember("server"),
                     help="apiserver endpoints host:port,... "
                          "(default: $MINIK8S_SERVERS, then the config file)")(f)
    return click.option("-n", "--namespace", expose_value=False, callback=_remember("namespace"),
                        help=f"namespace (default: {DEFAULT_NAMESPACE})")(f)


def fail(message: str) -> None:
    click.echo(message, err=True)


def api_error_text(exc: errors.ApiError, where: str = "") -> str:
    """kubectl's wording: Error from server (NotFound): pods "x" not found."""
    reason = REASONS.get(type(exc), type(exc).__name__)
    return f"Error from server ({reason}): {where + ': ' if where else ''}{exc.message}"


def run(work: Work) -> None:
    """Run one command against the API and exit with its status."""
    settings = click.get_current_context().ensure_object(Settings)
    try:
        servers = config.servers(settings.server)
        status = asyncio.run(_with_client(servers, settings.namespace or DEFAULT_NAMESPACE, work))
    except KeyboardInterrupt:
        status = 0
    except (config.ConfigError, CliError, KubeletError) as exc:
        fail(f"error: {exc}")
        status = 1
    except errors.Unavailable as exc:
        fail(f"error: the API at {','.join(servers)} is unavailable: {exc.message}")
        status = 1
    except errors.ApiError as exc:
        fail(api_error_text(exc))
        status = 1
    sys.exit(status)


async def _with_client(servers: list[str], namespace: str, work: Work) -> int:
    # fail over between apiservers for a while, but do not keep a user waiting long
    async with ApiClient(servers, retry_deadline=10) as client:
        return await work(client, namespace)


def parse_kinds(words: str) -> list[Kind]:
    """The kinds of "deploy,svc", in order, without repeats."""
    found: list[Kind] = []
    for word in filter(None, words.split(",")):
        try:
            kind = kinds.lookup(word)
        except kinds.UnknownKind:
            raise CliError(f'the server doesn\'t have a resource type "{word}"') from None
        if kind not in found:
            found.append(kind)
    if not found:
        raise CliError("you must specify the type of resource")
    return found


def scope(kind: Kind, namespace: str) -> str:
    """The namespace to send for a kind: none for cluster-scoped kinds."""
    return namespace if kind.namespaced else ""


def read_manifests(filenames: Iterable[str]) -> list[tuple[str, str]]:
    """(label, text) of every -f argument: a file, the manifests of a directory, or stdin."""
    sources = []
    for name in filenames:
        if name == "-":
            sources.append((STDIN, sys.stdin.read()))
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.suffix in MANIFEST_SUFFIXES and p.is_file())
        elif path.exists():
            files = [path]
        else:
            raise CliError(f'the path "{name}" does not exist')
        sources += [(str(p), _read(p)) for p in files]
    if not sources:
        raise CliError("no objects passed")
    return sources


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: {exc}") from None
