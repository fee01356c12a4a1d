"""The kubelet API's guard: the caller from its certificate, reviews cached briefly."""
from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.auth import ALLOWED_TTL, DENIED_TTL, Caller, Guard, Request
from minik8s import errors
from minik8s.pki import CertificateAuthority, Subject
from tests.unit.fakeclock import Clock

LOGS = Request("get", "pods/log", "team-a", "web")


class Context:
    """What the guard reads of a gRPC call: the TLS peer's certificate."""

    def __init__(self, pem: bytes = b"") -> None:
        self.pem = pem

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self.pem]} if self.pem else {}


class Reviews:
    """A fake apiserver: alice may read logs; counts the reviews asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[Caller, Request]] = []
        self.failing = False

    async def __call__(self, caller: Caller, request: Request) -> tuple[bool, str]:
        self.asked.append((caller, request))
        if self.failing:
            raise errors.Unavailable("no apiserver answers")
        if caller.user == "alice":
            return True, ""
        return False, f'User "{caller.user}" cannot {request.verb} resource "{request.resource}"'



@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.ensure(tmp_path)


def context_of(ca: CertificateAuthority, user: str, *groups: str) -> Context:
    return Context(ca.issue(user, Subject(user, groups)).cert.read_bytes())


async def test_no_certificate_is_unauthenticated() -> None:
    with pytest.raises(errors.Unauthenticated, match="no client certificate"):
        await Guard(Reviews()).check(Context(), LOGS)  # type: ignore[arg-type]


async def test_the_caller_is_the_certificates_subject(ca: CertificateAuthority) -> None:
    reviews = Reviews()
    await Guard(reviews).check(context_of(ca, "alice", "team-a"), LOGS)  # type: ignore[arg-type]
    assert reviews.asked == [(Caller("alice", ("team-a",)), LOGS)]


async def test_an_allowed_answer_is_reused_until_it_expires(ca: CertificateAuthority) -> None:
    reviews, clock = Reviews(), Clock()
    guard, alice = Guard(reviews, clock), context_of(ca, "alice")
    for _ in range(3):
        await guard.check(alice, LOGS)  # type: ignore[arg-type]
    assert len(reviews.asked) == 1
    clock.now += ALLOWED_TTL + 0.1
    await guard.check(alice, LOGS)  # type: ignore[arg-type]
    assert len(reviews.asked) == 2


async def test_a_refusal_names_the_user_and_is_asked_again_soon(ca: CertificateAuthority) -> None:
    reviews, clock = Reviews(), Clock()
    guard, bob = Guard(reviews, clock), context_of(ca, "bob")
    with pytest.raises(errors.Forbidden, match='User "bob" cannot get resource "pods/log"'):
        await guard.check(bob, LOGS)  # type: ignore[arg-type]
    with pytest.raises(errors.Forbidden):
        await guard.check(bob, LOGS)  # type: ignore[arg-type]
    assert len(reviews.asked) == 1
    clock.now += DENIED_TTL + 0.1
    with pytest.raises(errors.Forbidden):
        await guard.check(bob, LOGS)  # type: ignore[arg-type]
    assert len(reviews.asked) == 2


async def test_a_failed_review_is_unavailable_and_not_cached(ca: CertificateAuthority) -> None:
    reviews = Reviews()
    guard, alice = Guard(reviews), context_of(ca, "alice")
    reviews.failing = True
    with pytest.raises(errors.Unavailable, match="access review failed: no apiserver"):
        await guard.check(alice, LOGS)  # type: ignore[arg-type]
    reviews.failing = False
    await guard.check(alice, LOGS)  # type: ignore[arg-type]
    assert len(reviews.asked) == 2
