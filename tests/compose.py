"""A compose cluster of the tests' own (deploy/docker-compose.yml), shared by e2e and chaos.

`compose_cluster(project, tmp)` brings up a compose project with
scripts/compose-up.sh (after a compose-down of that project, so it starts
clean; a cluster of the user's from `make up`, project `minik8s`, is left
alone), yields a `Compose` handle, and removes the project at the end.
Traffic goes only to 127.0.0.1 (published ports) and to the project's own
containers.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
MINICTL = ROOT / ".venv" / "bin" / "minictl"
MINIK8S = ROOT / ".venv" / "bin" / "minik8s"
T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, interval: float = 1.0) -> T:
    """check()'s first truthy result within timeout; AssertionError naming `what` if none."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def run(*argv: str | Path, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], env=env, cwd=ROOT, check=check, text=True,
                          capture_output=True, timeout=timeout, input=stdin)


def compose_cmd(project: str) -> list[str]:
    if run("docker", "compose", "version", check=False).returncode == 0:
        return ["docker", "compose", "-p", project, "-f", str(COMPOSE_FILE)]
    return ["docker-compose", "-p", project, "-f", str(COMPOSE_FILE)]


def state_dir(project: str) -> Path:
    return ROOT / ".work" / "compose" / project


@dataclass
class Compose:
    project: str
    env: dict[str, str]          # minictl's environment (MINIK8S_CONFIG of this cluster)
    settings: dict[str, str]     # .work/compose/<project>/env: subnet and published ports

    def minictl(self, *args: str, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(MINICTL, *args, env=self.env, stdin=stdin, check=check, timeout=60)

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.minictl("get", *args, "-o", "json").stdout)

    def container(self, service: str) -> str:
        """The id of the project's container of a service (stopped ones too)."""
        out = run("docker", "ps", "-aq",
                  "--filter", f"label=com.docker.compose.project={self.project}",
                  "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert out, f"no container for service {service}"
        return out[0]

    def nodeport(self, node: str) -> int:
        return int(self.settings[f"MINIK8S_NODEPORT_{node.split('-')[1]}"])

    @property
    def servers(self) -> list[str]:
        return [f"127.0.0.1:{self.settings[f'MINIK8S_APISERVER_PORT_{i}']}" for i in range(3)]

    def labelled(self, kind: str) -> set[str]:
        """Names of the Docker objects of this kind (container, network, volume) labelled as ours."""
        found: set[str] = set()
        for label in (f"com.docker.compose.project={self.project}",
                      f"io.minik8s.compose={self.project}"):
            argv = ["docker", kind, "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]
            if kind == "container":
                argv = ["docker", "ps", "-a", "--filter", f"label={label}",
                        "--format", "{{.Names}}"]
            found |= set(run(*argv).stdout.split())
        return found


def compose_down(project: str) -> subprocess.CompletedProcess[str]:
    return run(ROOT / "scripts" / "compose-down.sh", check=False, timeout=300,
               env=dict(os.environ, MINIK8S_COMPOSE_PROJECT=project))


@contextmanager
def compose_cluster(project: str, workdir: Path, *, demo: bool = True) -> Iterator[Compose]:
    """Bring up the compose project (clean), yield its handle, remove it afterwards."""
    config = workdir / "config"
    # leave ~/.minik8s/config and a compose cluster of the user's alone
    env = dict(os.environ, MINIK8S_CONFIG=str(config), MINIK8S_COMPOSE_PROJECT=project)
    env.pop("MINIK8S_SERVERS", None)
    if not demo:
        env["MINIK8S_COMPOSE_NO_DEMO"] = "1"
    compose_down(project)
    log = workdir / "compose-up.log"
    with open(log, "w") as out:
        proc = subprocess.run([str(ROOT / "scripts" / "compose-up.sh")], env=env, cwd=ROOT,
                              stdout=out, stderr=subprocess.STDOUT, timeout=840, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-60:])
        compose_down(project)
        raise RuntimeError(f"scripts/compose-up.sh failed ({proc.returncode}); log {log}:\n{tail}")
    settings = dict(line.split("=", 1) for line in
                    (state_dir(project) / "env").read_text().split())
    try:
        yield Compose(project=project, env=env, settings=settings)
    finally:
        compose_down(project)
