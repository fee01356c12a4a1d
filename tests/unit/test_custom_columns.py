"""`get -o custom-columns=`: parsing kubectl's spec, evaluating its JSON paths, the table."""
from __future__ import annotations

import datetime

import click
import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.cli import printers
from minik8s.cli.printers import CustomColumn, parse_custom_columns, parse_json_path

EVERY = slice(None)


def test_parse_spec() -> None:
    assert parse_custom_columns("custom-columns=NAME:.metadata.name,NODE:.spec.nodeName") == [
        CustomColumn("NAME", ("metadata", "name")),
        CustomColumn("NODE", ("spec", "nodeName")),
    ]
    # the prefix is optional, and so are the leading dot and kubectl's braces
    assert parse_custom_columns("IMAGE:{.spec.containers[0].image},IP:status.podIP") == [
        CustomColumn("IMAGE", ("spec", "containers", 0, "image")),
        CustomColumn("IP", ("status", "podIP")),
    ]


@pytest.mark.parametrize(("expr", "path"), [
    (".metadata.name", ("metadata", "name")),
    ("metadata.name", ("metadata", "name")),
    ("{.metadata.name}", ("metadata", "name")),
    (".spec.containers[0].ports[1].containerPort",
     ("spec", "containers", 0, "ports", 1, "containerPort")),
    (".spec.containers[*].image", ("spec", "containers", EVERY, "image")),
    (".spec.containers[-1].name", ("spec", "containers", -1, "name")),
    (".spec.containers[1:].name", ("spec", "containers", slice(1, None), "name")),
    (".metadata.labels['app.kubernetes.io/name']",
     ("metadata", "labels", "app.kubernetes.io/name")),
    ('.metadata.labels["tier"]', ("metadata", "labels", "tier")),
    (r".metadata.annotations.a\.b/c", ("metadata", "annotations", "a.b/c")),
])
def test_parse_json_path(expr: str, path: tuple) -> None:
    assert parse_json_path(expr) == path


@pytest.mark.parametrize(("spec", "message"), [
    ("custom-columns=", "no custom columns given"),
    ("NAME", "unexpected custom-columns spec: 'NAME', expected <header>:<json-path-expr>"),
    ("NAME:", "expected <header>:<json-path-expr>"),
    (":.metadata.name", "expected <header>:<json-path-expr>"),
    ("NAME:.metadata.name,", "expected <header>:<json-path-expr>"),
    ("X:.spec.containers[0", "unclosed ["),
    ("X:.spec.containers[x]", "invalid subscript [x]"),
    ("X:{}", "empty JSON path"),
])
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_custom_columns(spec)


DATA = {
    "metadata": {"name": "web-1", "labels": {"app": "web", "a.b/c": "x"}},
    "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                            {"name": "b", "image": "busybox"}],
             "hostNetwork": True},
}


@pytest.mark.parametrize(("expr", "cell"), [
    (".metadata.name", "web-1"),
    (".spec.containers[0].image", "nginx"),
    (".spec.containers[1].image", "busybox"),
    (".spec.containers[-1].name", "b"),
    (".spec.containers[*].name", "a,b"),
    (".spec.containers[*].ports[0].containerPort", "80"),
    (".spec.containers[5].image", "<none>"),
    (".spec.nodeName", "<none>"),
    (".metadata.name.first", "<none>"),
    (".spec.hostNetwork", "true"),
    (".metadata.labels['a.b/c']", "x"),
    (".metadata.labels", '{"app":"web","a.b/c":"x"}'),
    (".metadata.labels[*]", "web,x"),
    (".spec.containers[0].ports", '[{"containerPort":80}]'),
])
def test_cells(expr: str, cell: str) -> None:
    assert printers.custom_cell(DATA, parse_json_path(expr)) == cell


def test_table_over_objects() -> None:
    pods = [t.Pod(metadata=t.ObjectMeta(name="a", namespace="ns"),
                  spec=t.PodSpec(node_name="node-1",
                                 containers=[t.Container(name="c", image="nginx:1.25")])),
            t.Pod(metadata=t.ObjectMeta(name="bb", namespace="ns"))]
    table = printers.CustomColumnsTable(parse_custom_columns(
        "NAME:.metadata.name,NODE:.spec.nodeName,IMAGE:.spec.containers[0].image,KIND:.kind"))
    now = datetime.datetime.now(datetime.UTC)
    assert table.lines(pods, now) == [
        "NAME   NODE     IMAGE        KIND",
        "a      node-1   nginx:1.25   Pod",
        "bb     <none>   <none>       Pod",
    ]
    # later rows (a watch) keep the columns and print no header again
    assert table.lines([pods[1]], now) == ["bb     <none>   <none>       Pod"]


def test_output_option() -> None:
    fmt = printers.OutputFormat(("wide", "yaml"))
    assert fmt.convert("wide", None, None) == "wide"
    assert fmt.convert("custom-columns=N:.metadata.name", None, None).startswith("custom-")
    for bad, message in (("xml", "'xml' is not one of 'wide', 'yaml'"),
                         ("custom-columns=N", "expected <header>:<json-path-expr>"),
                         ("jsonpath={.metadata.name}", "jsonpath output is not supported")):
        with pytest.raises(click.BadParameter, match=message):
            fmt.convert(bad, None, None)
