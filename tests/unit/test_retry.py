"""retry_on_conflict and Backoff."""
from __future__ import annotations

import pytest

from minik8s import errors, retry
from minik8s.retry import Backoff, retry_on_conflict


class Flaky:
    """An async callable that raises the given errors in turn, then returns "ok"."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the delays retry sleeps for, without sleeping."""
    recorded: list[float] = []

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr(retry.asyncio, "sleep", fake_sleep)
    return recorded


async def test_returns_first_success(sleeps: list[float]) -> None:
    fn = Flaky()
    assert await retry_on_conflict(fn) == "ok"
    assert fn.calls == 1
    assert sleeps == []


async def test_retries_conflicts_with_growing_backoff(sleeps: list[float]) -> None:
    fn = Flaky(errors.Conflict("a"), errors.Conflict("b"), errors.Conflict("c"))
    assert await retry_on_conflict(fn, backoff=0.01) == "ok"
    assert fn.calls == 4
    assert len(sleeps) == 3
    for n, delay in enumerate(sleeps):
        assert 0.01 * 2**n <= delay <= 0.01 * 2**n * 1.1


async def test_reraises_after_attempts(sleeps: list[float]) -> None:
    fn = Flaky(*(errors.Conflict(str(i)) for i in range(10)))
    with pytest.raises(errors.Conflict, match="2"):
        await retry_on_conflict(fn, attempts=3)
    assert fn.calls == 3
    assert len(sleeps) == 2


async def test_other_errors_are_not_retried(sleeps: list[float]) -> None:
    fn = Flaky(errors.NotFound("gone"))
    with pytest.raises(errors.NotFound):
        await retry_on_conflict(fn)
    assert fn.calls == 1
    assert sleeps == []


async def test_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError):
        await retry_on_conflict(Flaky(), attempts=0)


def test_backoff_doubles_caps_and_resets() -> None:
    backoff = Backoff(1.0, cap=4.0, jitter=0.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 1.0
