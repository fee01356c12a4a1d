"""Per-container restart back-off (kubelet/backoff.py), driven by a fake clock the
way the kubelet drives it: on a failure at `since`, wait remaining(); when it is
over, record the retry with next() and restart."""
from __future__ import annotations

import pytest

from kubelet.backoff import Backoff
from tests.unit.fakeclock import Clock

KEY = "uid-1/app"



@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backoff(clock: Clock) -> Backoff:
    return Backoff(initial=1.0, cap=8.0, clock=clock)


def crash_and_restart(backoff: Backoff, clock: Clock, key: str = KEY) -> float:
    """A failure now: wait out the back-off, restart; return how long it waited."""
    since = clock.now
    waited = backoff.remaining(key, since)
    clock.now += waited
    assert backoff.remaining(key, since) == 0.0
    backoff.next(key, since)
    return waited


def test_first_failure_is_retried_at_once(backoff: Backoff) -> None:
    assert backoff.remaining(KEY, 1000.0) == 0.0
    assert backoff.delay(KEY) == 0.0


def test_delays_double_up_to_the_cap(backoff: Backoff, clock: Clock) -> None:
    waits = [crash_and_restart(backoff, clock) for _ in range(6)]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.delay(KEY) == 8.0


def test_remaining_is_measured_from_the_failure(backoff: Backoff, clock: Clock) -> None:
    for _ in range(3):
        crash_and_restart(backoff, clock)  # the delay is now 4s
    failed_at = clock.now
    clock.now += 1.5
    assert backoff.remaining(KEY, failed_at) == 2.5
    assert backoff.remaining(KEY, failed_at - 10) == 0.0  # failed long ago: overdue


def test_running_well_for_twice_the_cap_starts_over(backoff: Backoff, clock: Clock) -> None:
    for _ in range(5):
        crash_and_restart(backoff, clock)
    assert backoff.delay(KEY) == 8.0

    clock.now += 2 * 8.0 + 1  # ran well since the last restart
    assert crash_and_restart(backoff, clock) == 0.0  # retried at once ...
    assert crash_and_restart(backoff, clock) == 1.0  # ... and from the initial delay again


def test_a_shorter_run_keeps_backing_off(backoff: Backoff, clock: Clock) -> None:
    for _ in range(5):
        crash_and_restart(backoff, clock)

    clock.now += 1.5 * 8.0  # ran, but not for twice the cap (the 8s wait does not count)
    assert crash_and_restart(backoff, clock) == 8.0
    assert backoff.delay(KEY) == 8.0


def test_forget_drops_every_key_of_a_pod(backoff: Backoff, clock: Clock) -> None:
    for key in ("uid-1/app", "uid-1/app/pull", "uid-2/app"):
        crash_and_restart(backoff, clock, key)
        crash_and_restart(backoff, clock, key)

    backoff.forget("uid-1/")

    assert backoff.remaining("uid-1/app", clock.now) == 0.0
    assert backoff.delay("uid-1/app/pull") == 0.0
    assert backoff.delay("uid-2/app") == 2.0
