"""The pure parts of StatefulSets: identity, revisions, what a pass does, status,
rollout status, defaulting and validation, and how the kubelet mounts a claim."""
from __future__ import annotations

import datetime

import pytest

from apiserver.defaults import apply_defaults
from controller_manager import statefulset as ss
from kubelet.containers import claim_volume_name, mounts_of
from minik8s import rollout
from minik8s.api.v1 import types_pb2 as t
from minik8s.validation import FieldError, validate, validate_update

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
LABELS = {"app": "web"}


def stateful_set(replicas: int = 3, image: str = "echo:1", policy: str = "OrderedReady",
                 strategy: str = "RollingUpdate", partition: int = 0,
                 claims: tuple[str, ...] = ("www",)) -> t.StatefulSet:
    container = t.Container(name="c", image=image,
                            volume_mounts=[t.VolumeMount(name=c, mount_path=f"/{c}")
                                           for c in claims])
    sts = t.StatefulSet(
        metadata=t.ObjectMeta(name="web", namespace="ns", uid="uid-web", generation=1),
        spec=t.StatefulSetSpec(
            replicas=replicas, service_name="nginx", pod_management_policy=policy,
            selector=t.LabelSelector(match_labels=LABELS),
            update_strategy=t.StatefulSetUpdateStrategy(type=strategy),
            template=t.PodTemplateSpec(metadata=t.ObjectMeta(labels=LABELS),
                                       spec=t.PodSpec(containers=[container])),
            volume_claim_templates=[t.PersistentVolumeClaim(
                metadata=t.ObjectMeta(name=c),
                spec=t.PersistentVolumeClaimSpec(
                    access_modes=["ReadWriteOnce"],
                    resources=t.ResourceRequirements(requests={"storage": "1Gi"})))
                for c in claims]))
    if strategy == "RollingUpdate":
        sts.spec.update_strategy.rolling_update.partition = partition
    return sts


def pod(sts: t.StatefulSet, ordinal: int, state: str = "ready", revision: str = "") -> t.Pod:
    """A pod of sts as the controller makes it, then as the kubelet reports it.

    state: pending, running (not ready), ready, failed, terminating (ready, being deleted).
    """
    p = ss.new_pod(sts, sts.spec.template, revision or ss.update_revision(sts), ordinal)
    p.metadata.uid = f"uid-{ordinal}"
    p.spec.node_name = "node-0"
    if state == "failed":
        p.status.phase = "Failed"
    elif state != "pending":
        p.status.phase = "Running"
    if state in ("ready", "terminating"):
        ready = p.status.conditions.add(type="Ready", status="True")
        ready.last_transition_time.FromDatetime(NOW - datetime.timedelta(seconds=30))
    if state == "terminating":
        p.metadata.deletion_timestamp.FromDatetime(NOW)
    return p


def next_step(sts: t.StatefulSet, pods: list[t.Pod]) -> ss.Plan:
    policy = ss.Policy.of(sts)
    return ss.plan(ss.members(sts.metadata.name, policy.replicas, pods), policy, NOW)


def names(pods: list[t.Pod]) -> list[str]:
    return [p.metadata.name for p in pods]


# ---------------------------------------------------------------- identity

@pytest.mark.parametrize(("set_name", "pod_name", "ordinal"), [
    ("web", "web-0", 0),
    ("web", "web-12", 12),
    ("my-web", "my-web-3", 3),
    ("web", "web-01", None),     # not canonical: no pod of web's
    ("web", "web-", None),
    ("web", "web-x", None),
    ("web", "web2", None),
    ("web", "webby-1", None),
    ("web", "my-web-1", None),
    ("web", "web--1", None),
    ("web", "web-1-2", None),
])
def test_ordinal_of(set_name: str, pod_name: str, ordinal: int | None) -> None:
    assert ss.ordinal_of(set_name, pod_name) == ordinal


def test_a_new_pod_has_the_identity_of_its_ordinal() -> None:
    sts = stateful_set(claims=("www", "logs"))
    sts.spec.template.spec.volumes.add(name="www", empty_dir=t.EmptyDirVolumeSource())
    sts.spec.template.spec.volumes.add(name="tmp", empty_dir=t.EmptyDirVolumeSource())
    p = ss.new_pod(sts, sts.spec.template, "web-abc", 2)
    assert (p.metadata.name, p.metadata.namespace) == ("web-2", "ns")
    assert (p.spec.hostname, p.spec.subdomain) == ("web-2", "nginx")
    assert dict(p.metadata.labels) == {
        "app": "web", ss.POD_NAME_LABEL: "web-2", ss.POD_INDEX_LABEL: "2",
        ss.REVISION_LABEL: "web-abc"}
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("StatefulSet", "web", "uid-web", True)
    # a claim template's volume replaces the template's volume of that name
    assert [(v.name, v.persistent_volume_claim.claim_name) for v in p.spec.volumes] == [
        ("www", "www-web-2"), ("logs", "logs-web-2"), ("tmp", "")]
    assert p.spec.volumes[2].HasField("empty_dir")
    assert not sts.spec.template.spec.hostname  # the template is left alone


# ---------------------------------------------------------------- revisions

def test_the_revision_is_a_hash_of_what_reaches_the_pods() -> None:
    sts = stateful_set()
    revision = ss.update_revision(sts)
    assert revision.startswith("web-") and len(revision) == len("web-") + 10
    assert ss.update_revision(stateful_set()) == revision
    assert ss.update_revision(stateful_set(image="echo:2")) != revision
    renamed = stateful_set()
    renamed.spec.template.metadata.name = "ignored"   # never reaches a pod
    assert ss.update_revision(renamed) == revision
    scaled = stateful_set(replicas=7, partition=2)
    assert ss.update_revision(scaled) == revision


def test_a_template_is_read_back_from_its_pod() -> None:
    old = stateful_set(image="echo:1")
    new = stateful_set(image="echo:2")
    old_revision = ss.update_revision(old)
    pods = [pod(new, 2), pod(old, 0), pod(old, 1)]
    pods[1].spec.containers[0].image = "echo:patched"   # changed by hand: hash no longer fits
    template = ss.recover_template(new, pods, old_revision)
    assert template == ss.revision_template(old.spec.template)
    assert ss.current_template(new, pods, old_revision) == (template, old_revision)
    assert ss.recover_template(new, pods[:2], old_revision) is None
    assert ss.current_template(new, pods, ss.update_revision(new)) is None


def test_below_the_partition_pods_are_made_at_the_current_revision() -> None:
    sts = stateful_set(image="echo:2", partition=2)
    current = (stateful_set(image="echo:1").spec.template, "web-old")
    assert ss.template_for(sts, 1, current) == current
    assert ss.template_for(sts, 2, current) == (sts.spec.template, ss.update_revision(sts))
    assert ss.template_for(sts, 0, None) == (sts.spec.template, ss.update_revision(sts))
    on_delete = stateful_set(strategy="OnDelete")
    assert ss.template_for(on_delete, 0, current)[1] == ss.update_revision(on_delete)


# ---------------------------------------------------------------- OrderedReady

def test_ordered_ready_creates_one_pod_at_a_time_once_the_one_before_is_ready() -> None:
    sts = stateful_set(replicas=3)
    assert next_step(sts, []).create == [0]
    assert not next_step(sts, [pod(sts, 0, "pending")])
    assert not next_step(sts, [pod(sts, 0, "running")])
    assert next_step(sts, [pod(sts, 0)]).create == [1]
    assert not next_step(sts, [pod(sts, 0), pod(sts, 1, "running")])
    assert next_step(sts, [pod(sts, 0), pod(sts, 1)]).create == [2]
    assert not next_step(sts, [pod(sts, i) for i in range(3)])


def test_ordered_ready_waits_for_min_ready_seconds() -> None:
    sts = stateful_set(replicas=2)
    sts.spec.min_ready_seconds = 60     # the pods have been ready for 30 s
    assert not next_step(sts, [pod(sts, 0)])
    sts.spec.min_ready_seconds = 10
    assert next_step(sts, [pod(sts, 0)]).create == [1]


def test_a_missing_pod_is_made_again_under_its_name_before_anything_above_it() -> None:
    sts = stateful_set(replicas=3)
    assert next_step(sts, [pod(sts, 0), pod(sts, 2)]).create == [1]
    # being deleted: wait until it is gone
    assert not next_step(sts, [pod(sts, 0), pod(sts, 1, "terminating"), pod(sts, 2)])


def test_a_failed_pod_is_deleted_to_be_made_again() -> None:
    sts = stateful_set(replicas=3)
    step = next_step(sts, [pod(sts, 0), pod(sts, 1, "failed"), pod(sts, 2)])
    assert names(step.recreate) == ["web-1"] and not step.create and not step.delete


def test_ordered_scale_down_goes_from_the_highest_ordinal_one_at_a_time() -> None:
    sts = stateful_set(replicas=1)
    pods = [pod(sts, i) for i in range(3)]
    assert names(next_step(sts, pods).delete) == ["web-2"]
    pods[2] = pod(sts, 2, "terminating")
    assert not next_step(sts, pods)                        # until web-2 is gone
    assert names(next_step(sts, pods[:2]).delete) == ["web-1"]
    assert not next_step(sts, pods[:1])


def test_ordered_scale_down_waits_for_the_replicas_to_be_healthy() -> None:
    sts = stateful_set(replicas=1)
    assert not next_step(sts, [pod(sts, 0, "running"), pod(sts, 1)])
    # an unhealthy condemned pod goes all the same, highest first
    assert names(next_step(sts, [pod(sts, 0), pod(sts, 1), pod(sts, 2, "pending")]).delete) \
        == ["web-2"]


# ---------------------------------------------------------------- Parallel

def test_parallel_creates_and_deletes_all_at_once() -> None:
    sts = stateful_set(replicas=3, policy="Parallel")
    assert next_step(sts, []).create == [0, 1, 2]
    assert next_step(sts, [pod(sts, 1, "pending")]).create == [0, 2]
    shrunk = stateful_set(replicas=1, policy="Parallel")
    pods = [pod(shrunk, i) for i in range(4)]
    pods[2] = pod(shrunk, 2, "terminating")
    assert names(next_step(shrunk, pods).delete) == ["web-3", "web-1"]


def test_parallel_recreates_failed_pods_while_making_missing_ones() -> None:
    sts = stateful_set(replicas=3, policy="Parallel")
    step = next_step(sts, [pod(sts, 0, "failed"), pod(sts, 1, "terminating")])
    assert step.create == [2] and names(step.recreate) == ["web-0"]


# ---------------------------------------------------------------- updates

def test_rolling_update_goes_down_from_the_highest_ordinal_one_ready_pod_at_a_time() -> None:
    old, new = stateful_set(image="echo:1"), stateful_set(image="echo:2")
    pods = [pod(old, i) for i in range(3)]
    assert names(next_step(new, pods).delete) == ["web-2"]
    pods[2] = pod(old, 2, "terminating")
    assert not next_step(new, pods)
    assert next_step(new, pods[:2]).create == [2]          # made again, at the new revision
    pods[2] = pod(new, 2, "running")
    assert not next_step(new, pods)                        # until it is Ready
    pods[2] = pod(new, 2)
    assert names(next_step(new, pods).delete) == ["web-1"]
    pods[1] = pod(new, 1)
    assert names(next_step(new, pods).delete) == ["web-0"]
    pods[0] = pod(new, 0)
    assert not next_step(new, pods)


def test_rolling_update_leaves_the_ordinals_below_the_partition() -> None:
    old, new = stateful_set(image="echo:1"), stateful_set(image="echo:2", partition=2)
    pods = [pod(old, i) for i in range(3)]
    assert names(next_step(new, pods).delete) == ["web-2"]
    pods[2] = pod(new, 2)
    assert not next_step(new, pods)
    everything = stateful_set(image="echo:2", partition=0)
    assert names(next_step(everything, pods).delete) == ["web-1"]
    beyond = stateful_set(image="echo:2", partition=5)
    assert not next_step(beyond, [pod(old, i) for i in range(3)])


def test_scaling_comes_before_updating() -> None:
    old, new = stateful_set(image="echo:1"), stateful_set(replicas=2, image="echo:2")
    assert names(next_step(new, [pod(old, i) for i in range(3)]).delete) == ["web-2"]
    grown = stateful_set(replicas=4, image="echo:2")
    assert next_step(grown, [pod(old, i) for i in range(3)]).create == [3]


def test_on_delete_never_deletes_for_an_update() -> None:
    old, new = stateful_set(image="echo:1"), stateful_set(image="echo:2", strategy="OnDelete")
    pods = [pod(old, i) for i in range(3)]
    assert not next_step(new, pods)
    assert next_step(new, pods[:2]).create == [2]


# ---------------------------------------------------------------- status

def test_status_counts_and_revisions() -> None:
    old, new = stateful_set(image="echo:1"), stateful_set(image="echo:2", partition=2)
    old_rev, new_rev = ss.update_revision(old), ss.update_revision(new)
    pods = [pod(old, 0), pod(old, 1, "running"), pod(new, 2), pod(old, 3, "terminating")]
    status = ss.stateful_status(new, pods, old_rev, NOW)
    assert (status.replicas, status.ready_replicas, status.available_replicas,
            status.current_replicas, status.updated_replicas) == (4, 3, 3, 2, 1)
    assert (status.current_revision, status.update_revision) == (old_rev, new_rev)
    assert status.observed_generation == 1
    # every pod at the update revision and ready: the update revision becomes current
    done = ss.stateful_status(new, [pod(new, i) for i in range(3)], old_rev, NOW)
    assert (done.current_revision, done.current_replicas, done.updated_replicas) == \
        (new_rev, 3, 3)
    waiting = ss.stateful_status(new, [pod(new, 0), pod(new, 1, "running")], old_rev, NOW)
    assert waiting.current_revision == old_rev and waiting.current_replicas == 0


# ---------------------------------------------------------------- rollout status

def rolled(replicas: int = 3, ready: int = 3, updated: int = 3, current: int = 3,
           partition: int = 0, same_revision: bool = True, observed: int = 1,
           strategy: str = "RollingUpdate") -> t.StatefulSet:
    sts = stateful_set(replicas=replicas, partition=partition, strategy=strategy)
    sts.status.CopyFrom(t.StatefulSetStatus(
        observed_generation=observed, replicas=replicas, ready_replicas=ready,
        updated_replicas=updated, current_replicas=current, update_revision="web-new",
        current_revision="web-new" if same_revision else "web-old"))
    return sts


def test_statefulset_rollout_status_lines_as_kubectl() -> None:
    assert rollout.status_of(rolled(observed=0)) == (
        "Waiting for statefulset spec update to be observed...", False)
    assert rollout.status_of(rolled(ready=1)) == ("Waiting for 2 pods to be ready...", False)
    assert rollout.status_of(rolled(updated=1, same_revision=False)) == (
        "waiting for statefulset rolling update to complete 1 pods at revision web-new...",
        False)
    assert rollout.status_of(rolled()) == (
        "statefulset rolling update complete 3 pods at revision web-new...", True)
    assert rollout.status_of(rolled(partition=2, updated=0, same_revision=False)) == (
        "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...",
        False)
    assert rollout.status_of(rolled(partition=2, updated=1, same_revision=False)) == (
        "partitioned roll out complete: 1 new pods have been updated...", True)
    with pytest.raises(rollout.NoRolloutStatus, match="only available for RollingUpdate"):
        rollout.status_of(rolled(strategy="OnDelete"))


# ---------------------------------------------------------------- API

def test_defaults() -> None:
    sts = t.StatefulSet(spec=t.StatefulSetSpec(template=stateful_set().spec.template))
    apply_defaults("StatefulSet", sts)
    assert sts.spec.replicas == 1 and sts.spec.revision_history_limit == 10
    assert sts.spec.pod_management_policy == "OrderedReady"
    assert sts.spec.update_strategy.type == "RollingUpdate"
    assert sts.spec.update_strategy.rolling_update.HasField("partition")
    assert sts.spec.update_strategy.rolling_update.partition == 0
    on_delete = t.StatefulSet(spec=t.StatefulSetSpec(
        update_strategy=t.StatefulSetUpdateStrategy(type="OnDelete")))
    apply_defaults("StatefulSet", on_delete)
    assert not on_delete.spec.update_strategy.HasField("rolling_update")


def error_of(obj: object) -> str:
    with pytest.raises(FieldError) as err:
        validate(obj)
    return str(err.value)


def test_a_valid_stateful_set_mounts_its_claims() -> None:
    validate(stateful_set(claims=("www", "logs")))
    validate(pod(stateful_set(), 0))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s: s.spec.ClearField("service_name"), "spec.serviceName: required value"),
    (lambda s: setattr(s.spec, "service_name", "Bad_Name"), "spec.serviceName: invalid value"),
    (lambda s: s.spec.selector.match_labels.update({"app": "db"}),
     "spec.template.metadata.labels: selector does not match template labels"),
    (lambda s: s.spec.volume_claim_templates.add().CopyFrom(s.spec.volume_claim_templates[0]),
     "spec.volumeClaimTemplates[1].metadata.name: duplicate name 'www'"),
    (lambda s: s.spec.volume_claim_templates[0].metadata.ClearField("name"),
     "spec.volumeClaimTemplates[0].metadata.name: required value"),
    (lambda s: s.spec.volume_claim_templates[0].spec.ClearField("access_modes"),
     "spec.volumeClaimTemplates[0].spec.accessModes: at least 1 access mode is required"),
    (lambda s: s.spec.volume_claim_templates[0].spec.access_modes.append("WriteSometimes"),
     "spec.volumeClaimTemplates[0].spec.accessModes[1]: must be one of"),
    (lambda s: s.spec.volume_claim_templates[0].spec.resources.requests.clear(),
     "spec.volumeClaimTemplates[0].spec.resources.requests.storage: required value"),
    (lambda s: s.spec.volume_claim_templates[0].spec.resources.requests.update(
        {"storage": "lots"}),
     "spec.volumeClaimTemplates[0].spec.resources.requests.storage: invalid quantity"),
    (lambda s: s.spec.volume_claim_templates[0].spec.resources.requests.update({"cpu": "1"}),
     "spec.volumeClaimTemplates[0].spec.resources.requests.cpu: must be one of storage"),
    (lambda s: s.spec.template.spec.containers[0].volume_mounts.add(name="db", mount_path="/d"),
     "spec.template.spec.containers[0].volumeMounts[1].name: volume 'db' not found"),
    (lambda s: s.spec.update_strategy.rolling_update.__setattr__("partition", -1),
     "spec.updateStrategy.rollingUpdate.partition: must be greater than or equal to 0"),
    (lambda s: setattr(s.metadata, "name", "w" * 53), "metadata.name: must be no more than 52"),
])
def test_invalid_stateful_sets(edit, expected: str) -> None:
    sts = stateful_set()
    edit(sts)
    assert error_of(sts).startswith(expected)


def test_a_claim_volume_names_its_claim() -> None:
    p = pod(stateful_set(), 0)
    p.spec.volumes[0].persistent_volume_claim.claim_name = ""
    assert error_of(p) == "spec.volumes[0].persistentVolumeClaim.claimName: required value"
    p.spec.volumes[0].empty_dir.SetInParent()
    assert error_of(p) == "spec.volumes[0]: may not specify more than 1 volume type"


def test_only_some_of_a_stateful_sets_spec_may_change() -> None:
    old = stateful_set()
    new = stateful_set(replicas=5, image="echo:2", partition=1)
    new.spec.min_ready_seconds = 3
    new.spec.revision_history_limit = 2
    validate_update(old, new)
    for edit in (lambda s: setattr(s.spec, "service_name", "other"),
                 lambda s: setattr(s.spec, "pod_management_policy", "Parallel"),
                 lambda s: s.spec.volume_claim_templates[0].spec.resources.requests.update(
                     {"storage": "2Gi"})):
        changed = stateful_set()
        edit(changed)
        with pytest.raises(FieldError, match="^spec: updates to statefulset spec for fields "
                                             "other than 'replicas', 'template'"):
            validate_update(old, changed)


# ---------------------------------------------------------------- kubelet

def test_a_claim_is_mounted_from_its_docker_volume() -> None:
    p = pod(stateful_set(claims=("www", "logs")), 1)
    p.spec.volumes[1].persistent_volume_claim.read_only = True
    container = p.spec.containers[0]
    dirs = {"www": claim_volume_name("c1", "ns", "www-web-1"),
            "logs": claim_volume_name("c1", "ns", "logs-web-1")}
    assert dirs["www"] == "minik8s-c1-ns-www-web-1"
    assert mounts_of(container, p, dirs) == ["minik8s-c1-ns-www-web-1:/www:rw",
                                             "minik8s-c1-ns-logs-web-1:/logs:ro"]
    container.volume_mounts[0].sub_path = "html"
    with pytest.raises(ValueError, match="subPath is not supported"):
        mounts_of(container, p, dirs)
