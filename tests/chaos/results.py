"""The measurements of a chaos run, appended scenario by scenario to one JSON file."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Sample:
    """One fault injected and healed."""

    iteration: int
    fault: str
    failover_s: float | None      # fault -> new leader acquired / API answering / replaced
    recovery_s: float | None      # fault healed -> every invariant holds
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    name: str
    title: str
    cluster: str = "process"      # the kind of cluster it ran on: process or compose
    iterations: int = 0
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    acknowledged_writes: int = 0
    unacknowledged_writes: int = 0
    retried_errors: dict[str, int] = field(default_factory=dict)
    fenced_rejected: int = 0
    restarts: dict[str, int] = field(default_factory=dict)
    watch: dict[str, float] = field(default_factory=dict)   # the pod observer's watch
    duration_s: float = 0.0
    passed: bool = False


class Results:
    """The JSON file: {"mode", "command", "started", "finished", "machine",
    "scenarios": {"<cluster>/<scenario name>": ScenarioResult}}."""

    def __init__(self, path: Path, mode: str, command: str) -> None:
        self.path = path
        self.mode = mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
        else:
            self.data = {"mode": mode, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "machine": _machine(), "scenarios": {}}
        self.data["mode"] = mode
        self.data["command"] = command

    def record(self, result: ScenarioResult) -> None:
        self.data["scenarios"][f"{result.cluster}/{result.name}"] = asdict(result)
        self.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.path.write_text(json.dumps(self.data, indent=2))


def _machine() -> str:
    import os
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, " \
           f"Python {platform.python_version()}"
