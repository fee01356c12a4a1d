import pytest

from minik8s.api.v1 import types_pb2
from minik8s.selectors import FieldSelector, LabelSelector

LABELS = {"app": "web", "tier": "frontend", "env": "prod"}


@pytest.mark.parametrize(("text", "matches"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=api", False),
    ("app!=api", True),
    ("missing!=x", True),
    ("app!=web", False),
    ("env in (prod,staging)", True),
    ("env in (dev, staging)", False),
    ("env notin (dev)", True),
    ("missing notin (dev)", True),
    ("env notin (prod)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=web, env in (prod), !canary", True),
    ("app=web,env=dev", False),
    ("app.kubernetes.io/name", False),
    ("x in (a,,b)", False),
])
def test_label_selector(text, matches):
    assert LabelSelector.parse(text).matches(LABELS) is matches


@pytest.mark.parametrize(("text", "message"), [
    ("app=web,", "invalid label selector 'app=web,': empty requirement"),
    ("env in (prod", "invalid label selector 'env in (prod': unbalanced parentheses"),
    ("a=b c", "invalid label selector 'a=b c': expected 'key', '!key', 'key=value', "
              "'key!=value', 'key in (a,b)' or 'key notin (a,b)'"),
    ("app=web,in(x)", "invalid label selector 'in(x)': expected"),
    ("-bad=x", "invalid label selector '-bad=x': invalid key '-bad': name part must consist"),
    ("app=" + "v" * 64,
     f"invalid label selector 'app={'v' * 64}': must be no more than 63 characters"),
])
def test_label_selector_errors(text, message):
    with pytest.raises(ValueError) as err:
        LabelSelector.parse(text)
    assert str(err.value).startswith(message)


def test_label_selector_str_round_trips():
    text = "app=web,tier!=db,env in (prod,staging),env notin (dev,qa),canary,!legacy"
    selector = LabelSelector.parse(text)
    assert str(selector) == text
    assert LabelSelector.parse(str(selector)) == selector
    assert LabelSelector.parse("").empty


def test_label_selector_from_proto():
    proto = types_pb2.LabelSelector(
        match_labels={"app": "web"},
        match_expressions=[
            types_pb2.LabelSelectorRequirement(key="env", operator="In", values=["prod", "qa"]),
            types_pb2.LabelSelectorRequirement(key="canary", operator="DoesNotExist"),
        ],
    )
    selector = LabelSelector.from_proto(proto)
    assert selector.matches({"app": "web", "env": "qa"})
    assert not selector.matches({"app": "web", "env": "qa", "canary": "1"})
    assert not selector.matches({"app": "web"})
    assert LabelSelector.from_proto(types_pb2.LabelSelector()).matches({})


def test_label_selector_from_proto_rejects_unknown_operator():
    proto = types_pb2.LabelSelector(match_expressions=[
        types_pb2.LabelSelectorRequirement(key="a", operator="Gt", values=["1"])])
    with pytest.raises(ValueError, match="invalid label selector operator 'Gt'"):
        LabelSelector.from_proto(proto)


def _pod(name="web-1", node="n1", phase="Running"):
    pod = types_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.spec.node_name = node
    pod.status.phase = phase
    return pod


def test_field_selector_matches():
    selector = FieldSelector.parse("spec.nodeName=n1,metadata.name!=x")
    assert selector.matches(_pod())
    assert not selector.matches(_pod(node="n2"))
    assert not selector.matches(_pod(name="x"))
    assert FieldSelector.parse("status.phase==Running").matches(_pod())
    assert FieldSelector.parse("spec.nodeName=").matches(_pod(node=""))
    assert FieldSelector.parse("").matches(_pod())
    assert str(selector) == "spec.nodeName=n1,metadata.name!=x"


def test_field_selector_on_other_kinds():
    event = types_pb2.Event()
    event.involved_object.name = "web-1"
    assert FieldSelector.parse("involvedObject.name=web-1").matches(event)
    node = types_pb2.Node()
    assert FieldSelector.parse("spec.unschedulable=false").matches(node)


@pytest.mark.parametrize("path", ["x.y", "spec", "spec.containers", "metadata.labels",
                                  "metadata.creationTimestamp", "spec.node_name"])
def test_field_selector_validate_for(path):
    selector = FieldSelector.parse(f"{path}=v")
    with pytest.raises(ValueError) as err:
        selector.validate_for(types_pb2.Pod)
    assert str(err.value) == f"field selector '{path}' is not supported for Pod"


def test_field_selector_validate_for_kind():
    FieldSelector.parse("spec.nodeName=n1,spec.schedulerName=s").validate_for(types_pb2.Pod)
    with pytest.raises(ValueError, match="'spec.nodeName' is not supported for Event"):
        FieldSelector.parse("spec.nodeName=n1").validate_for(types_pb2.Event)


def test_field_selector_parse_error():
    with pytest.raises(ValueError, match="invalid field selector 'spec.nodeName'"):
        FieldSelector.parse("spec.nodeName")
