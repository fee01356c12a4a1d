"""The kubelet's gRPC API against a real Docker engine, no apiserver needed.

Each test plays the kubelet's part itself: it creates containers carrying the
kubelet's labels (under a cluster name of its own, so no other test or
kubelet sees them) and talks to a KubeletApi served on loopback (mutual TLS
with the session's CA; access reviews answered here: administrators only)
through the KubeletClient that minictl uses, as the session's administrator. Containers and image tags are removed by id
and tag afterwards; nothing else is touched.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker
import docker.errors
import pytest
import requests.exceptions
from docker.models.containers import Container

from kubelet import labels
from kubelet.api import KubeletApi, add_to_server
from kubelet.auth import Caller, Guard, Request
from minik8s import clusterpki, errors
from minik8s.kubeletclient import KubeletClient
from minik8s.pki import CertificateAuthority
from minik8s.serving import TlsFiles, add_port, make_grpc_server
from tests.session_pki import session_pki

IMAGE = "minik8s/echo:latest"
TEST_LABEL = "io.minik8s.test"
NODE = "node-a"
NAMESPACE = "default"
CHUNK = 1024 * 1024


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        pytest.skip(f"Docker does not answer: {exc}")
    yield client
    client.close()


@dataclass
class Pods:
    """Creates containers the way the kubelet labels them, and removes exactly those."""

    engine: docker.DockerClient
    cluster: str
    created: list[str] = field(default_factory=list)

    async def container(self, pod: str, name: str, script: str, *, restarts: int = 0,
                        node: str = NODE, init: bool = False) -> Container:
        lbls = {
            labels.CLUSTER: self.cluster, labels.NODE: node,
            labels.POD_NAMESPACE: NAMESPACE, labels.POD_NAME: pod,
            labels.POD_UID: f"uid-{pod}", labels.CONTAINER_NAME: name,
            labels.RESTART_COUNT: str(restarts), TEST_LABEL: self.cluster,
        }
        if init:
            lbls[labels.INIT] = "true"
        c = await asyncio.to_thread(self.engine.containers.create, IMAGE, ["sh", "-c", script],
                                    labels=lbls)
        self.created.append(c.id)
        await asyncio.to_thread(c.start)
        return c

    async def exited(self, pod: str, name: str, script: str, **kwargs: object) -> Container:
        """A container that has run to its end."""
        c = await self.container(pod, name, script, **kwargs)  # type: ignore[arg-type]
        await asyncio.to_thread(c.wait, timeout=30)
        return c

    def remove_all(self) -> None:
        for cid in self.created:
            with contextlib.suppress(docker.errors.NotFound):
                self.engine.api.remove_container(cid, force=True)


@pytest.fixture
def pods(engine: docker.DockerClient) -> Iterator[Pods]:
    p = Pods(engine, f"test-{uuid.uuid4().hex[:8]}")
    yield p
    p.remove_all()


def serving_tls() -> TlsFiles:
    """node-a's serving certificate from the session's CA (which signs our admin's)."""
    ca = CertificateAuthority.ensure(session_pki())
    files = ca.issue("kubelet-api-test", clusterpki.node_subject(NODE, ["127.0.0.1"]))
    return TlsFiles(files.cert, files.key, ca.cert_path)


async def masters_only(caller: Caller, request: Request) -> tuple[bool, str]:
    return "system:masters" in caller.groups, f'User "{caller.user}" cannot {request.verb}'


@pytest.fixture
async def kubelet(engine: docker.DockerClient, pods: Pods) -> AsyncIterator[KubeletClient]:
    """A KubeletApi for node-a of the test's own cluster, and a client of it."""
    executor = ThreadPoolExecutor(4, thread_name_prefix="test-kubelet-api")
    server = make_grpc_server()
    add_to_server(server, KubeletApi(engine, executor, pods.cluster, NODE,
                                     guard=Guard(masters_only)))
    port = add_port(server, "127.0.0.1:0", serving_tls())
    await server.start()
    client = KubeletClient(f"127.0.0.1:{port}")
    yield client
    await client.close()
    await server.stop(grace=None)
    executor.shutdown(wait=False, cancel_futures=True)


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- logs

async def test_logs_whole_and_tail(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "for i in 1 2 3 4 5; do echo line$i; done")
    assert await collect(kubelet.logs(NAMESPACE, "web")) == (
        b"line1\nline2\nline3\nline4\nline5\n")
    assert await collect(kubelet.logs(NAMESPACE, "web", "app", tail_lines=2)) == b"line4\nline5\n"
    assert await collect(kubelet.logs(NAMESPACE, "web", tail_lines=0)) == b""
    everything = await collect(kubelet.logs(NAMESPACE, "web", tail_lines=-1))
    assert everything.startswith(b"line1\n")


async def test_logs_include_stderr(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "echo oops >&2")
    assert await collect(kubelet.logs(NAMESPACE, "web")) == b"oops\n"


async def test_logs_timestamps(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "echo hello")
    line = await collect(kubelet.logs(NAMESPACE, "web", timestamps=True))
    stamp, _, text = line.partition(b" ")
    assert text == b"hello\n"
    assert stamp[:2] == b"20" and stamp.endswith(b"Z")


async def test_logs_current_and_previous_instance(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "echo first run", restarts=0)
    await pods.exited("web", "app", "echo second run", restarts=1)
    assert await collect(kubelet.logs(NAMESPACE, "web")) == b"second run\n"
    assert await collect(kubelet.logs(NAMESPACE, "web", previous=True)) == b"first run\n"


async def test_logs_previous_missing(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "echo only run")
    with pytest.raises(errors.NotFound) as caught:
        await collect(kubelet.logs(NAMESPACE, "web", "app", previous=True))
    assert caught.value.message == (
        f'previous terminated container "app" in pod "{NAMESPACE}/web" not found')


async def test_logs_follow_receives_later_lines(pods: Pods, kubelet: KubeletClient) -> None:
    # "two" is written only once the test has seen "one" through the open stream
    await pods.container("web", "app", "echo one; while [ ! -e /tmp/go ]; do sleep 0.1; done; "
                                       "echo two; sleep 30")
    received = b""
    stream = kubelet.logs(NAMESPACE, "web", follow=True)
    async with asyncio.timeout(20):
        async for chunk in stream:
            received += chunk
            if received == b"one\n":
                await kubelet.exec(NAMESPACE, "web", ["touch", "/tmp/go"])
            if b"two\n" in received:
                break
    await stream.aclose()
    assert received == b"one\ntwo\n"


async def test_cancelled_follows_free_their_threads(pods: Pods, kubelet: KubeletClient) -> None:
    """More follows than the executor has threads: each must end when its call does."""
    await pods.container("web", "app", "echo ready; sleep 60")
    for _ in range(6):
        stream = kubelet.logs(NAMESPACE, "web", follow=True)
        async with asyncio.timeout(15):
            assert await anext(stream) == b"ready\n"
        await stream.aclose()


async def test_logs_of_the_only_app_container(pods: Pods, kubelet: KubeletClient) -> None:
    """The sandbox and init containers do not count when the name is left out."""
    await pods.exited("web", labels.SANDBOX, "echo sandbox")
    await pods.exited("web", "setup", "echo init", init=True)
    await pods.exited("web", "app", "echo app")
    assert await collect(kubelet.logs(NAMESPACE, "web")) == b"app\n"
    assert await collect(kubelet.logs(NAMESPACE, "web", "setup")) == b"init\n"


async def test_logs_needs_a_name_among_several(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "true")
    await pods.exited("web", "sidecar", "true")
    with pytest.raises(errors.Invalid) as caught:
        await collect(kubelet.logs(NAMESPACE, "web"))
    assert "choose one of: [app sidecar]" in caught.value.message


async def test_logs_not_found(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "true")
    await pods.exited("other-node", "app", "true", node="node-b")
    with pytest.raises(errors.NotFound, match='container "nope" in pod "default/web"'):
        await collect(kubelet.logs(NAMESPACE, "web", "nope"))
    with pytest.raises(errors.NotFound, match='pod "default/ghost" not found on node "node-a"'):
        await collect(kubelet.logs(NAMESPACE, "ghost"))
    with pytest.raises(errors.NotFound):  # another kubelet's container is not ours to show
        await collect(kubelet.logs(NAMESPACE, "other-node"))


# ---------------------------------------------------------------- exec

async def test_exec_output_and_exit_code(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.container("web", "app", "sleep 60")
    result = await kubelet.exec(NAMESPACE, "web", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 3)
    result = await kubelet.exec(NAMESPACE, "web", ["true"], container="app")
    assert (result.stdout, result.stderr, result.exit_code) == (b"", b"", 0)


async def test_exec_uses_the_running_instance(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "true", restarts=0)
    await pods.container("web", "app", "echo second > /tmp/run; sleep 60", restarts=1)

    async def written() -> bool:
        return (await kubelet.exec(NAMESPACE, "web", ["cat", "/tmp/run"])).stdout == b"second\n"
    await eventually(written)


async def test_exec_in_a_stopped_container(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.exited("web", "app", "true")
    with pytest.raises(errors.PreconditionFailed,
                       match='container "app" in pod "default/web" is not running'):
        await kubelet.exec(NAMESPACE, "web", ["true"])


async def test_exec_timeout(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.container("web", "app", "sleep 60")
    with pytest.raises(errors.Timeout, match="did not finish within 0.5s"):
        await kubelet.exec(NAMESPACE, "web", ["sleep", "5"], timeout=0.5)


async def test_exec_errors(pods: Pods, kubelet: KubeletClient) -> None:
    await pods.container("web", "app", "sleep 60")
    with pytest.raises(errors.Invalid, match="a command is required"):
        await kubelet.exec(NAMESPACE, "web", [])
    with pytest.raises(errors.NotFound, match='pod "default/ghost" not found'):
        await kubelet.exec(NAMESPACE, "ghost", ["true"])


# ---------------------------------------------------------------- image load

@pytest.fixture
def scratch_tag(engine: docker.DockerClient) -> Iterator[str]:
    """A tag of the echo image of the test's own, removed afterwards (by tag only)."""
    repo, tag = "minik8s/test-load", uuid.uuid4().hex[:8]
    engine.images.get(IMAGE).tag(repo, tag)
    yield f"{repo}:{tag}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.remove(f"{repo}:{tag}")


async def test_load_image(engine: docker.DockerClient, kubelet: KubeletClient,
                          scratch_tag: str) -> None:
    archive = b"".join(await asyncio.to_thread(lambda: list(engine.api.get_image(scratch_tag))))
    await asyncio.to_thread(engine.images.remove, scratch_tag)
    chunks = [archive[i:i + CHUNK] for i in range(0, len(archive), CHUNK)]
    assert len(chunks) > 1
    assert await kubelet.load_image(chunks) == [scratch_tag]
    assert scratch_tag in (await asyncio.to_thread(engine.images.get, scratch_tag)).tags


async def test_load_image_refuses_garbage(kubelet: KubeletClient) -> None:
    with pytest.raises(errors.Invalid, match="loading the image archive failed"):
        await kubelet.load_image([b"not a tar archive" * 100])
    with pytest.raises(errors.Invalid, match="the image archive is empty"):
        await kubelet.load_image([])
