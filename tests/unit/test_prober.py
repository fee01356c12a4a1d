"""The probe manager (kubelet/prober.py): schedules, thresholds, startup gating
and the lifecycle of its workers, with real asyncio tasks and a scripted exec.

Probes run every (scaled) 10ms. The scripted exec hands each probe the
result the test feeds it, one at a time, so every threshold is stepped
through deterministically rather than raced against a clock.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import REGISTRY

from kubelet.prober import ProbeManager
from minik8s.api.v1 import types_pb2 as t

UID = "uid-1"
KEY = "ns/web"
SCALE = 0.01  # 1s probe periods take 10ms; timeouts of 100s take 1s


async def eventually(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


class ScriptedExec:
    """An exec_fn whose calls wait for the test to feed each one a result.

    The command names the probe (["ready"], ["live"], ...); a fed exception is
    raised instead of returning.
    """

    def __init__(self) -> None:
        self.results: defaultdict[str, asyncio.Queue[int | Exception]] = \
            defaultdict(asyncio.Queue)
        self.waiting: defaultdict[str, int] = defaultdict(int)
        self.calls: list[tuple[str, str]] = []  # (container id, command)

    async def __call__(self, container_id: str, command: list[str],
                       timeout: float) -> tuple[int, bytes]:
        name = command[0]
        self.calls.append((container_id, name))
        self.waiting[name] += 1
        try:
            result = await self.results[name].get()
        finally:
            self.waiting[name] -= 1
        if isinstance(result, Exception):
            raise result
        return result, f"{name} exit {result}".encode()

    async def answer(self, name: str, *results: int | Exception) -> None:
        """Answer the next probes of `name`, each once it is pending, then wait
        until the worker comes back with another probe (the result is counted)."""
        for result in results:
            await self._answer_one(name, result)

    async def _answer_one(self, name: str, result: int | Exception) -> None:
        await eventually(lambda: self.waiting[name] > 0)
        calls = self.count(name)
        self.results[name].put_nowait(result)
        await eventually(lambda: self.waiting[name] > 0 and self.count(name) > calls)

    async def answer_last(self, name: str, result: int) -> None:
        """Answer a probe after which the worker stops probing."""
        await eventually(lambda: self.waiting[name] > 0)
        self.results[name].put_nowait(result)

    def count(self, name: str) -> int:
        return sum(1 for _, command in self.calls if command == name)


def _probe(command: str, **kwargs: int) -> t.Probe:
    return t.Probe(exec=t.ExecAction(command=[command]), period_seconds=1, timeout_seconds=100,
                   **kwargs)


def _pod(**probes: t.Probe) -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(uid=UID, namespace="ns", name="web"),
                 spec=t.PodSpec(containers=[t.Container(name="app", **probes),
                                            t.Container(name="sidecar")]),
                 status=t.PodStatus(pod_ip="127.0.0.1"))


def _probe_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if " probe " in task.get_name()]


@pytest.fixture
def exec_fn() -> ScriptedExec:
    return ScriptedExec()


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
async def manager(exec_fn: ScriptedExec,
                  changes: list[tuple[str, str]]) -> AsyncIterator[ProbeManager]:
    manager = ProbeManager(exec_fn, lambda key, reason: changes.append((key, reason)),
                           time_scale=SCALE)
    yield manager
    await manager.stop()
    assert not _probe_tasks()


async def test_without_probes_running_containers_are_ready(manager: ProbeManager) -> None:
    manager.sync(_pod(), {"app": "c1", "sidecar": "s1"})
    assert manager.ready(UID, "app", "c1") and manager.ready(UID, "sidecar", "s1")
    assert manager.started(UID, "app", "c1")
    assert manager.liveness_failed(UID, "app", "c1") is None
    assert not _probe_tasks()


async def test_readiness_thresholds(manager: ProbeManager, exec_fn: ScriptedExec,
                                    changes: list[tuple[str, str]]) -> None:
    manager.sync(_pod(readiness_probe=_probe("ready", success_threshold=2, failure_threshold=2)),
                 {"app": "c1", "sidecar": "s1"})
    assert not manager.ready(UID, "app", "c1")
    assert manager.ready(UID, "sidecar", "s1")
    await exec_fn.answer("ready", 0, 1, 0)
    assert not manager.ready(UID, "app", "c1")  # successes must come in a row
    await exec_fn.answer("ready", 0)
    assert manager.ready(UID, "app", "c1")
    assert changes == [(KEY, "readiness probe succeeded")]
    await exec_fn.answer("ready", 1, 0, 1)
    assert manager.ready(UID, "app", "c1")  # failures must come in a row too
    await exec_fn.answer("ready", 1)
    assert not manager.ready(UID, "app", "c1")
    assert changes == [(KEY, "readiness probe succeeded"), (KEY, "readiness probe failed")]
    assert exec_fn.calls[0] == ("c1", "ready")


async def test_liveness_failure_reported_once_and_probing_stops(
        manager: ProbeManager, exec_fn: ScriptedExec, changes: list[tuple[str, str]]) -> None:
    manager.sync(_pod(liveness_probe=_probe("live", failure_threshold=3)), {"app": "c1"})
    await exec_fn.answer("live", 1, 1, 0, 1, 1)
    assert manager.liveness_failed(UID, "app", "c1") is None
    assert manager.ready(UID, "app", "c1")  # liveness has no say in readiness
    await exec_fn.answer_last("live", 1)
    await eventually(lambda: manager.liveness_failed(UID, "app", "c1") == "live exit 1")
    await eventually(lambda: not _probe_tasks())  # the worker finished
    assert exec_fn.count("live") == 6
    assert changes == [(KEY, "liveness probe failed")]
    assert manager.liveness_failed(UID, "app", "c2") is None


async def test_new_container_id_resets_results(manager: ProbeManager, exec_fn: ScriptedExec,
                                               changes: list[tuple[str, str]]) -> None:
    pod = _pod(readiness_probe=_probe("ready"), liveness_probe=_probe("live", failure_threshold=1))
    manager.sync(pod, {"app": "c1"})
    await exec_fn.answer("ready", 0)
    await exec_fn.answer_last("live", 1)
    await eventually(lambda: manager.liveness_failed(UID, "app", "c1") is not None)
    assert manager.ready(UID, "app", "c1")

    first_c2_call = len(exec_fn.calls)
    manager.sync(pod, {"app": "c2"})
    assert not manager.ready(UID, "app", "c2") and not manager.ready(UID, "app", "c1")
    assert manager.liveness_failed(UID, "app", "c2") is None
    assert manager.liveness_failed(UID, "app", "c1") is None
    await exec_fn.answer("ready", 0)
    await exec_fn.answer("live", 0)
    assert manager.ready(UID, "app", "c2")
    assert {cid for cid, _ in exec_fn.calls[first_c2_call:]} == {"c2"}
    assert len(_probe_tasks()) == 2


async def test_startup_gates_liveness_and_readiness(
        manager: ProbeManager, exec_fn: ScriptedExec, changes: list[tuple[str, str]]) -> None:
    manager.sync(_pod(startup_probe=_probe("start", failure_threshold=5),
                      readiness_probe=_probe("ready"), liveness_probe=_probe("live")),
                 {"app": "c1"})
    await exec_fn.answer("start", 1, 1, 1)
    assert not manager.started(UID, "app", "c1") and not manager.ready(UID, "app", "c1")
    assert exec_fn.count("ready") == exec_fn.count("live") == 0
    await exec_fn.answer_last("start", 0)
    await eventually(lambda: manager.started(UID, "app", "c1"))
    assert changes == [(KEY, "startup probe succeeded")]
    await exec_fn.answer("ready", 0)
    await exec_fn.answer("live", 0)
    assert manager.ready(UID, "app", "c1")
    assert exec_fn.count("start") == 4  # a startup probe stops once it passed
    assert len(_probe_tasks()) == 2


async def test_startup_failure_past_threshold(manager: ProbeManager, exec_fn: ScriptedExec,
                                             changes: list[tuple[str, str]]) -> None:
    manager.sync(_pod(startup_probe=_probe("start", failure_threshold=2)), {"app": "c1"})
    await exec_fn.answer("start", 1)
    assert manager.startup_failed(UID, "app", "c1") is None
    await exec_fn.answer_last("start", 1)
    await eventually(lambda: manager.startup_failed(UID, "app", "c1") == "start exit 1")
    assert not manager.started(UID, "app", "c1")
    assert changes == [(KEY, "startup probe failed")]
    await eventually(lambda: not _probe_tasks())


async def test_initial_delay(manager: ProbeManager, exec_fn: ScriptedExec) -> None:
    began = time.monotonic()
    manager.sync(_pod(readiness_probe=_probe("ready", initial_delay_seconds=30)), {"app": "c1"})
    await eventually(lambda: exec_fn.count("ready") > 0)
    assert time.monotonic() - began >= 30 * SCALE


async def test_http_readiness_against_a_real_server(manager: ProbeManager) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 204 No Content\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = t.Probe(http_get=t.HTTPGetAction(port=t.IntOrString(str_val="http")), period_seconds=1,
                    timeout_seconds=100)
    pod = t.Pod(metadata=t.ObjectMeta(uid=UID, namespace="ns", name="web"),
                spec=t.PodSpec(containers=[t.Container(
                    name="app", readiness_probe=probe,
                    ports=[t.ContainerPort(name="http", container_port=port)])]),
                status=t.PodStatus(pod_ip="127.0.0.1"))
    before = REGISTRY.get_sample_value(
        "kubelet_prober_probe_total", {"probe_type": "readiness", "result": "successful"}) or 0
    try:
        manager.sync(pod, {"app": "c1"})
        await eventually(lambda: manager.ready(UID, "app", "c1"))
    finally:
        server.close()
    after = REGISTRY.get_sample_value(
        "kubelet_prober_probe_total", {"probe_type": "readiness", "result": "successful"})
    assert after is not None and after >= before + 1


async def test_exec_errors_are_logged_and_probing_goes_on(
        manager: ProbeManager, exec_fn: ScriptedExec, caplog: pytest.LogCaptureFixture) -> None:
    manager.sync(_pod(readiness_probe=_probe("ready")), {"app": "c1"})
    with caplog.at_level(logging.ERROR, logger="minik8s.kubelet.prober"):
        await exec_fn.answer("ready", RuntimeError("docker went away"))
    assert "readiness probe of ns/web/app failed to run" in caplog.text
    assert not manager.ready(UID, "app", "c1")
    await exec_fn.answer("ready", 0)
    assert manager.ready(UID, "app", "c1")


async def test_sync_stops_workers_of_containers_no_longer_running(
        manager: ProbeManager, exec_fn: ScriptedExec) -> None:
    pod = _pod(readiness_probe=_probe("ready"))
    manager.sync(pod, {"app": "c1"})
    await eventually(lambda: exec_fn.waiting["ready"] > 0)
    manager.sync(pod, {})
    await eventually(lambda: not _probe_tasks())
    assert not manager.ready(UID, "app", "c1")


async def test_forget_stops_every_worker(manager: ProbeManager, exec_fn: ScriptedExec) -> None:
    manager.sync(_pod(readiness_probe=_probe("ready"), liveness_probe=_probe("live")),
                 {"app": "c1"})
    await eventually(lambda: exec_fn.waiting["ready"] > 0 and exec_fn.waiting["live"] > 0)
    assert len(_probe_tasks()) == 2
    manager.forget(UID)
    await eventually(lambda: not _probe_tasks())
    assert exec_fn.waiting["ready"] == exec_fn.waiting["live"] == 0
