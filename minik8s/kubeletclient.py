"""How clients reach a node's kubelet (logs, exec, image load, stats).

These calls do not go through the apiserver: the apiserver only says where a
pod runs (spec.nodeName) and where that node's kubelet listens (the node's
address and status.daemonEndpoints.kubeletEndpoint), and the client then
talks to that kubelet directly, as `kubectl logs` does through the kubelet.
It presents the same credentials as to the apiserver (a client certificate:
the kubelet API takes no tokens), and the kubelet asks the apiserver whether
the caller may (kubelet/auth.py).
"""
from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

import grpc

from minik8s import config, errors
from minik8s.api.v1 import kubelet_pb2 as k
from minik8s.api.v1 import kubelet_pb2_grpc as k_grpc
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient, make_channel
from minik8s.config import Credentials

ADDRESS_PREFERENCE = ("InternalIP", "Hostname")
FALLBACK_ADDRESS = "127.0.0.1"
STATS_TIMEOUT = 10.0   # seconds: the answer is cached, so a slow one means a stuck kubelet

Chunks = Iterable[bytes] | AsyncIterable[bytes]


class KubeletError(Exception):
    """A kubelet cannot be reached: the pod has no node yet, the node no
    kubelet endpoint, or the kubelet does not answer."""


def node_address(node: t.Node) -> str:
    """The address to reach a node at: InternalIP, else Hostname, else loopback."""
    found = (a.address for kind in ADDRESS_PREFERENCE
             for a in node.status.addresses if a.type == kind and a.address)
    return next(found, FALLBACK_ADDRESS)


def kubelet_target(node: t.Node) -> str:
    """host:port of a node's kubelet API; KubeletError if it publishes none."""
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    if port <= 0:
        raise KubeletError(f'node "{node.metadata.name}" has no kubelet endpoint')
    host = node_address(node)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error(target: str, err: grpc.aio.AioRpcError) -> Exception:
    if err.code() == grpc.StatusCode.UNAVAILABLE:
        return KubeletError(f"the kubelet at {target} is unavailable: {err.details()}")
    return errors.from_rpc_error(err)


async def _requests(chunks: Chunks) -> AsyncIterator[k.ImageChunk]:
    if isinstance(chunks, AsyncIterable):
        async for data in chunks:
            yield k.ImageChunk(data=data)
    else:
        for data in chunks:
            yield k.ImageChunk(data=data)


class KubeletClient:
    """The Kubelet gRPC service of one node. Errors the kubelet answers are
    raised as minik8s.errors.ApiError; an unreachable kubelet as KubeletError."""

    def __init__(self, target: str, credentials: Credentials | None = None) -> None:
        """credentials: by default those of the config file (config.credentials())."""
        creds = credentials or config.credentials()
        if not (creds.insecure or creds.cert):
            raise KubeletError("the kubelet API takes a client certificate, and these "
                               "credentials have only a token")
        self.target = target
        self._channel = make_channel(target, creds)
        self._stub = k_grpc.KubeletStub(self._channel)

    @classmethod
    def for_node(cls, node: t.Node, credentials: Credentials | None = None) -> KubeletClient:
        return cls(kubelet_target(node), credentials)

    @classmethod
    async def for_pod(cls, api: ApiClient, namespace: str, name: str) -> KubeletClient:
        """The kubelet of the node a pod is bound to."""
        pod = await api.get("Pod", name, namespace)
        if not pod.spec.node_name:
            raise KubeletError(f'pod "{namespace}/{name}" is not scheduled yet')
        node = await api.get("Node", pod.spec.node_name)
        return cls.for_node(node, api.credentials)

    async def logs(self, namespace: str, pod: str, container: str = "", *,
                   follow: bool = False, tail_lines: int | None = None,
                   previous: bool = False, timestamps: bool = False) -> AsyncIterator[bytes]:
        """A container's log, as it arrives (until it stops, with follow)."""
        request = k.LogsRequest(namespace=namespace, pod=pod, container=container,
                                follow=follow, previous=previous, timestamps=timestamps,
                                tail_lines=tail_lines)
        call = self._stub.Logs(request)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as err:
            raise _error(self.target, err) from None
        finally:
            call.cancel()

    async def exec(self, namespace: str, pod: str, command: Sequence[str],
                   container: str = "", timeout: float = 0.0) -> k.ExecResponse:
        """Run a command in a running container; its output and exit code."""
        request = k.ExecRequest(namespace=namespace, pod=pod, container=container,
                                command=list(command), timeout_seconds=timeout)
        try:
            return await self._stub.Exec(request)
        except grpc.aio.AioRpcError as err:
            raise _error(self.target, err) from None

    async def load_image(self, chunks: Chunks) -> list[str]:
        """Stream a `docker save` archive into the node's engine; the tags loaded."""
        try:
            response = await self._stub.LoadImage(_requests(chunks))
        except grpc.aio.AioRpcError as err:
            raise _error(self.target, err) from None
        return list(response.images)

    async def stats(self, timeout: float = STATS_TIMEOUT) -> k.StatsResponse:
        """The node's and its pods' resource usage, as the kubelet last sampled it."""
        try:
            return await self._stub.Stats(k.StatsRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise KubeletError(f"the kubelet at {self.target} did not answer within "
                                   f"{timeout:g}s") from None
            raise _error(self.target, err) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> KubeletClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
