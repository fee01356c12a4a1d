"""`minictl auth can-i`: ask the apiserver whether a request would be allowed."""
from __future__ import annotations

import click

from minik8s import kinds
from minik8s.cli.common import DEFAULT_NAMESPACE, CliError, api_options, run
from minik8s.client import ApiClient


def _resource(word: str) -> tuple[str, bool]:
    """The plural (with any /subresource) of a CLI word, and whether it is namespaced."""
    base, slash, sub = word.partition("/")
    if base == "*":
        return word, True
    try:
        kind = kinds.lookup(base)
    except kinds.UnknownKind:
        raise CliError(f'the server doesn\'t have a resource type "{base}"') from None
    return kind.plural + slash + sub, kind.namespaced


@click.group()
def auth() -> None:
    """Inspect authorization."""


@auth.command("can-i")
@click.argument("verb")
@click.argument("resource")
@click.argument("name", required=False, default="")
@click.option("-A", "--all-namespaces", is_flag=True, help="in every namespace")
@click.option("--as", "as_user", default="", help="ask for this user (administrators only)")
@click.option("--as-group", "as_groups", multiple=True, help="with this group (with --as)")
@api_options
def can_i(verb: str, resource: str, name: str, all_namespaces: bool, as_user: str,
          as_groups: tuple[str, ...]) -> None:
    """Say yes (exit 0) or no (exit 1): may I do VERB on RESOURCE?

    \b
    Examples:
      minictl auth can-i create pods -n team-a
      minictl auth can-i update pods/status
      minictl auth can-i list nodes --as alice
    """
    if as_groups and not as_user:
        raise click.UsageError("--as-group needs --as")

    async def work(client: ApiClient, namespace: str) -> int:
        plural, namespaced = _resource(resource)
        where = "" if all_namespaces or not namespaced else namespace or DEFAULT_NAMESPACE
        answer = await client.access_review(verb, plural, where, name, as_user, as_groups)
        click.echo("yes" if answer.allowed else "no")
        return 0 if answer.allowed else 1
    run(work)


COMMANDS = (auth,)
