"""What every benchmark shares: logging, the report file, a local cluster's lifetime.

Each benchmark owns one section of docs/BENCHMARKS.md, between its
`<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` markers, and
rewrites only that.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minik8s.localcluster import LocalCluster

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
DOC_INTRO = """# Benchmarks

Numbers measured on a local cluster of real processes (etcd and apiservers on
one machine, talking over 127.0.0.1). Each section is rewritten by the
benchmark named in it; rerun it to refresh the numbers.
"""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def write_section(path: Path, name: str, section: str) -> None:
    """Replace the bench:NAME section of path (appending it, or creating the file, if needed)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else DOC_INTRO
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def interrupt(signum: int, frame: object) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so that `finally` stops the cluster."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def local_cluster(keep: bool, **cluster_args: Any) -> Iterator[LocalCluster]:
    """A fresh cluster (LocalCluster(**cluster_args)) in a temporary workdir, stopped (and
    the workdir removed) at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="minik8s-bench-"))
    log(f"cluster workdir {workdir}")
    cluster = LocalCluster(workdir=workdir, **cluster_args)
    try:
        cluster.start()
        # the benchmark's own clients talk to this cluster as its administrator
        os.environ["MINIK8S_CONFIG"] = str(workdir / "config")
        yield cluster
    finally:
        log("stopping the cluster")
        with signals_ignored():  # a second Ctrl-C must not leave processes behind
            cluster.stop()
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def timed(report: Any) -> Iterator[None]:
    """Set report.duration to the seconds the block took, also when it fails."""
    began = time.monotonic()
    try:
        yield
    finally:
        report.duration = time.monotonic() - began
