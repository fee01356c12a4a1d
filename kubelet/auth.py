"""Who may use a kubelet's API, and for what.

Callers prove who they are with a client certificate of the cluster CA (the
TLS layer has checked it; CN is the user, O the groups). What they may do is
the apiserver's answer to an access review for them, as Kubernetes' kubelet
asks with a SubjectAccessReview: `get pods/log` and `create pods/exec` on the
pod, `get nodes/stats` and `create nodes/images` on this node. Answers are
cached briefly, so a `minictl top` loop or a burst of exec calls costs one
review every few seconds, and a revoked grant stops working within
ALLOWED_TTL. A review that fails (no apiserver) is not cached.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from cryptography import x509

from minik8s import errors, pki
from minik8s.client import ApiClient

ALLOWED_TTL = 10.0   # seconds an allowed answer is reused
DENIED_TTL = 2.0     # shorter: a user just granted a role should not wait long
CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Request:
    """What one call does, in the apiserver's RBAC terms."""

    verb: str
    resource: str
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Caller:
    user: str
    groups: tuple[str, ...]


# (caller, request) -> (allowed, the apiserver's reason for a refusal)
Review = Callable[[Caller, Request], Awaitable[tuple[bool, str]]]


def apiserver_review(client: ApiClient) -> Review:
    """Reviews asked of the apiserver, as this kubelet's node identity."""
    async def review(caller: Caller, request: Request) -> tuple[bool, str]:
        answer = await client.access_review(request.verb, request.resource, request.namespace,
                                            request.name, user=caller.user,
                                            groups=caller.groups)
        return answer.allowed, answer.reason
    return review


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    """The identity of the client certificate the call came with."""
    pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
    if not pem:
        raise errors.Unauthenticated("Unauthorized: no client certificate")
    user, groups = pki.identity_of(x509.load_pem_x509_certificate(pem))
    return Caller(user, groups)


class Guard:
    """Authorizes each call of the kubelet API through cached access reviews."""

    def __init__(self, review: Review, clock: Callable[[], float] = time.monotonic) -> None:
        self._review = review
        self._clock = clock
        self._answers: dict[tuple[Caller, Request], tuple[float, bool, str]] = {}

    async def check(self, context: grpc.aio.ServicerContext, request: Request) -> None:
        """errors.Unauthenticated, Forbidden, or Unavailable unless the caller may."""
        caller = caller_of(context)
        allowed, reason = await self._answer(caller, request)
        if not allowed:
            raise errors.Forbidden(reason or f'User "{caller.user}" cannot {request.verb} '
                                   f'resource "{request.resource}"')

    async def _answer(self, caller: Caller, request: Request) -> tuple[bool, str]:
        now = self._clock()
        cached = self._answers.get((caller, request))
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        try:
            allowed, reason = await self._review(caller, request)
        except errors.ApiError as err:
            raise errors.Unavailable(f"cannot authorize the call: the apiserver's access "
                                     f"review failed: {err.message}") from None
        if len(self._answers) >= CACHE_LIMIT:
            self._answers.clear()
        self._answers[(caller, request)] = (
            now + (ALLOWED_TTL if allowed else DENIED_TTL), allowed, reason)
        return allowed, reason
