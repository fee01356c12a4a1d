"""The apiserver's pacing of a connection whose calls keep being refused."""
from __future__ import annotations

import pytest

from apiserver.limits import RefusalPacer
from tests.unit.fakeclock import Clock


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits asked of asyncio.sleep, which returns at once."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(round(seconds, 6))
    monkeypatch.setattr("apiserver.limits.asyncio.sleep", sleep)
    return asked


async def test_a_good_connection_never_waits(sleeps: list[float]) -> None:
    pacer = RefusalPacer(rate=10, clock=Clock())
    assert [await pacer.admit("ipv4:127.0.0.1:1") for _ in range(100)] == [False] * 100
    assert sleeps == []


async def test_refusals_past_the_burst_are_paced(sleeps: list[float]) -> None:
    clock = Clock()
    pacer = RefusalPacer(rate=100, clock=clock)   # a burst of 0.1 s: 10 refusals
    for _ in range(9):
        assert not await pacer.admit("bad")
        pacer.refused("bad")
    pacer.refused("bad")
    pacer.refused("bad")                    # 11 refusals: 0.11 s of debt
    assert sleeps == []
    assert await pacer.admit("bad") and await pacer.admit("bad")
    assert sleeps == [0.01, 0.02]           # one turn after another, 1/rate apart
    assert not await pacer.admit("good")    # other connections are not slowed
    clock.now += 1.0                        # the debt is paid off
    assert not await pacer.admit("bad")
