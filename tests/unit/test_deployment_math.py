"""The Deployment controller's pure parts: rollout math, hashing, revisions, conditions."""
from __future__ import annotations

import datetime

import pytest

from controller_manager.deployment import (
    HASH_ALPHABET,
    HASH_LABEL,
    REVISION,
    complete,
    drop_unavailable,
    fenceposts,
    new_rs_replicas,
    old_rs_replicas,
    progressed,
    proportional,
    scaled_value,
    set_condition,
    take_oldest_first,
    template_hash,
    timed_out,
)
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.rollout import revision_to_restore

NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def value(v: int | str) -> t.IntOrString:
    return t.IntOrString(int_val=v) if isinstance(v, int) else t.IntOrString(str_val=v)


def spec(replicas: int, surge: int | str, unavailable: int | str,
         strategy: str = "RollingUpdate") -> t.DeploymentSpec:
    rolling = t.RollingUpdateDeployment(max_surge=value(surge),
                                        max_unavailable=value(unavailable))
    return t.DeploymentSpec(replicas=replicas, strategy=t.DeploymentStrategy(
        type=strategy, rolling_update=rolling))


@pytest.mark.parametrize(("v", "total", "up", "expected"), [
    (3, 10, True, 3), (3, 10, False, 3),
    ("25%", 10, True, 3), ("25%", 10, False, 2),
    ("25%", 4, True, 1), ("25%", 4, False, 1),
    ("100%", 7, False, 7), ("0%", 7, True, 0), ("1%", 1, True, 1), ("1%", 1, False, 0),
])
def test_scaled_value_rounds_percentages(v: int | str, total: int, up: bool,
                                         expected: int) -> None:
    assert scaled_value(value(v), total, round_up=up) == expected


@pytest.mark.parametrize(("s", "expected"), [
    (spec(4, "25%", "25%"), (1, 1)),
    (spec(10, "25%", "25%"), (3, 2)),
    (spec(10, 2, 1), (2, 1)),
    (spec(5, "10%", "10%"), (1, 0)),
    (spec(5, "0%", "10%"), (0, 1)),      # both round to 0: maxUnavailable becomes 1
    (spec(3, 0, 5), (0, 3)),             # maxUnavailable at most replicas
    (spec(0, 1, 1), (1, 0)),
    (spec(10, 2, 1, strategy="Recreate"), (0, 0)),
])
def test_fenceposts(s: t.DeploymentSpec, expected: tuple[int, int]) -> None:
    assert fenceposts(s) == expected


@pytest.mark.parametrize(("replicas", "surge", "new", "pods", "expected"), [
    (10, 2, 0, 10, 2),     # start of a rollout: only the surge
    (10, 2, 2, 12, 2),     # at the ceiling: wait
    (10, 2, 2, 11, 3),
    (10, 2, 9, 10, 10),    # never beyond replicas
    (10, 0, 0, 10, 0),     # no surge: old pods must go first
    (10, 2, 0, 0, 10),     # a fresh deployment
    (10, 2, 12, 12, 10),   # scaled down: the new ReplicaSet follows at once
    (10, 2, 3, 14, 3),     # over the ceiling (old pods not yet gone): no scale-down either
])
def test_new_rs_replicas(replicas: int, surge: int, new: int, pods: int,
                         expected: int) -> None:
    assert new_rs_replicas(replicas, surge, new, pods) == expected


def test_old_rs_replicas_keeps_min_available() -> None:
    # 10 old all available, 2 new not yet available, minAvailable 9: one old may go
    assert old_rs_replicas([(10, 10)], (2, 0), 9) == [9]
    # the new pods became available: down to 7 keeps 9 available
    assert old_rs_replicas([(9, 9)], (3, 2), 9) == [7]
    # new pods unavailable use up the budget
    assert old_rs_replicas([(9, 9)], (3, 0), 9) == [9]


def test_old_rs_replicas_drops_unavailable_old_pods_first() -> None:
    # 12 pods, 9 available, min 8: the oldest's 3 unavailable pods go, then 1 available one
    assert old_rs_replicas([(5, 2), (5, 5)], (2, 2), 8) == [1, 5]


def test_old_rs_replicas_oldest_first() -> None:
    assert old_rs_replicas([(2, 2), (4, 4)], (4, 4), 6) == [0, 2]
    assert old_rs_replicas([(2, 2), (4, 4)], (4, 4), 4) == [0, 0]


def test_drop_unavailable_and_take_oldest_first() -> None:
    assert drop_unavailable([(5, 2), (4, 1)], 4) == [2, 3]
    assert drop_unavailable([(5, 5)], 4) == [5]
    assert take_oldest_first([2, 3, 4], 4) == [0, 1, 4]
    assert take_oldest_first([2, 3], 0) == [2, 3]
    assert take_oldest_first([2, 3], -1) == [2, 3]


@pytest.mark.parametrize(("sizes", "target", "expected"), [
    ([6, 4], 20, [12, 8]),
    ([5, 5], 11, [6, 5]),     # the leftover goes to the newest (first)
    ([3, 1], 2, [2, 0]),
    ([0, 0], 3, [3, 0]),
    ([], 3, []),
])
def test_proportional(sizes: list[int], target: int, expected: list[int]) -> None:
    assert proportional(sizes, target) == expected
    assert sum(expected) == (target if sizes else 0)


def simulate(replicas: int, surge: int, unavailable: int, ready_per_step: int) -> int:
    """A rollout run by the pure functions, where ready_per_step new pods become
    available each step; asserts the bounds throughout; returns the steps taken."""
    old, new, new_ready = replicas, 0, 0
    for steps in range(1, 1000):
        target = new_rs_replicas(replicas, surge, new, old + new)
        if target != new:
            new = target
        else:
            (old,) = old_rs_replicas([(old, old)], (new, new_ready), replicas - unavailable)
        assert old + new <= replicas + surge
        assert old + new_ready >= replicas - unavailable
        new_ready = min(new, new_ready + ready_per_step)
        if old == 0 and new_ready == new == replicas:
            return steps
    raise AssertionError("the rollout did not finish")


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [
    (10, 2, 1), (4, 1, 1), (10, 0, 1), (10, 1, 0), (1, 1, 0), (1, 0, 1), (7, 3, 3),
])
@pytest.mark.parametrize("ready_per_step", [1, 5])
def test_rollout_keeps_bounds_and_finishes(replicas: int, surge: int, unavailable: int,
                                           ready_per_step: int) -> None:
    simulate(replicas, surge, unavailable, ready_per_step)


def template(image: str, **labels: str) -> t.PodTemplateSpec:
    return t.PodTemplateSpec(metadata=t.ObjectMeta(labels={"app": "web", **labels}),
                             spec=t.PodSpec(containers=[t.Container(name="c", image=image)]))


def test_template_hash() -> None:
    h = template_hash(template("a:1"))
    assert len(h) == 10 and set(h) <= set(HASH_ALPHABET)
    assert template_hash(template("a:1")) == h
    assert template_hash(template("a:1", **{HASH_LABEL: h})) == h   # the label is ignored
    assert template_hash(template("a:2")) != h
    assert template_hash(template("a:1"), collision_count=1) != h


def replica_set(revision: int, image: str) -> t.ReplicaSet:
    return t.ReplicaSet(metadata=t.ObjectMeta(name=f"web-{revision}",
                                              annotations={REVISION: str(revision)}),
                        spec=t.ReplicaSetSpec(template=template(image)))


def test_revision_to_restore() -> None:
    history = [replica_set(1, "a:1"), replica_set(3, "a:3"), replica_set(2, "a:2")]
    assert revision_to_restore(history, 0).metadata.name == "web-2"   # the one before the latest
    assert revision_to_restore(history, 1).metadata.name == "web-1"
    with pytest.raises(errors.NotFound):
        revision_to_restore(history, 7)
    with pytest.raises(errors.NotFound):
        revision_to_restore(history[:1], 0)


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    status = t.DeploymentStatus()
    set_condition(status.conditions, "Progressing", "True", "A", "a", NOW)
    later = NOW + datetime.timedelta(seconds=5)
    set_condition(status.conditions, "Progressing", "True", "A", "again", later)
    (cond,) = status.conditions
    assert cond.message == "a"   # same status and reason: left alone
    set_condition(status.conditions, "Progressing", "True", "A", "progress", later, touch=True)
    (cond,) = status.conditions
    assert cond.last_update_time.ToDatetime(datetime.UTC) == later
    assert cond.last_transition_time.ToDatetime(datetime.UTC) == NOW
    set_condition(status.conditions, "Progressing", "False", "B", "b", later)
    assert status.conditions[0].last_transition_time.ToDatetime(datetime.UTC) == later


def test_progress_complete_and_timeout() -> None:
    old = t.DeploymentStatus(replicas=10, updated_replicas=2, ready_replicas=9,
                             available_replicas=9)
    assert not progressed(old, old)
    assert progressed(old, t.DeploymentStatus(replicas=10, updated_replicas=3,
                                              ready_replicas=9, available_replicas=9))
    assert progressed(old, t.DeploymentStatus(replicas=9, updated_replicas=2,
                                              ready_replicas=9, available_replicas=9))
    d = t.Deployment(metadata=t.ObjectMeta(generation=2), spec=t.DeploymentSpec(replicas=3))
    assert complete(d, t.DeploymentStatus(observed_generation=2, replicas=3, updated_replicas=3,
                                          available_replicas=3))
    assert not complete(d, t.DeploymentStatus(observed_generation=2, replicas=4,
                                              updated_replicas=3, available_replicas=3))
    cond = t.WorkloadCondition(type="Progressing", status="True", reason="ReplicaSetUpdated")
    cond.last_update_time.FromDatetime(NOW)
    assert not timed_out(cond, 600, NOW + datetime.timedelta(seconds=600))
    assert timed_out(cond, 600, NOW + datetime.timedelta(seconds=601))
    cond.reason = "NewReplicaSetAvailable"
    assert not timed_out(cond, 600, NOW + datetime.timedelta(days=1))
    assert not timed_out(None, 600, NOW)
