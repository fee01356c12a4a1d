"""The one loader for Kubernetes-style manifests, and the way back to dicts.

`load` turns YAML or JSON text (several documents, or a `kind: List`) into
typed messages. Each document is checked against the message descriptor
before protobuf sees it, so every mistake comes back as a ManifestError naming
the document and the JSON path of the field, in the words kubectl users know:

    deployment/web: spec.template.spec.containers[0].imagePullPolicy: must be one of ...

`to_dict` is the inverse: Kubernetes-style dicts (apiVersion and kind first,
int64 values as numbers, int-or-string values bare) for output.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from minik8s import kinds, validation
from minik8s.validation import FieldError

_INT_OR_STRING = "minik8s.api.v1.IntOrString"
_TIMESTAMP = "google.protobuf.Timestamp"
# String fields that hold quantities: a bare number there (cpu: 2) is accepted.
_QUANTITY_FIELDS = frozenset({
    "minik8s.api.v1.ResourceRequirements.limits",
    "minik8s.api.v1.ResourceRequirements.requests",
    "minik8s.api.v1.NodeStatus.capacity",
    "minik8s.api.v1.NodeStatus.allocatable",
    "minik8s.api.v1.EmptyDirVolumeSource.size_limit",
})
_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_INT64_TYPES = (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64)
_LIST_FIELDS = ("apiVersion", "kind", "metadata", "items")

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader minus YAML 1.1 timestamps: an unquoted date stays a string,
    as it does for kubectl, and reaches Timestamp fields as RFC 3339 text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


class ManifestError(ValueError):
    """A bad manifest: str() is "document: path: message" (empty parts left out)."""

    def __init__(self, document: str, path: str, message: str) -> None:
        super().__init__(": ".join(part for part in (document, path, message) if part))
        self.document = document
        self.path = path
        self.message = message


# ---------------------------------------------------------------- loading

def load(text: str | bytes, *, default_namespace: str | None = None) -> list[Message]:
    """Every object in a YAML/JSON manifest; ManifestError for the first bad one.

    Documents are numbered from 1 as they appear, empty ones included (and
    skipped). `default_namespace` fills metadata.namespace of namespaced
    objects that give none.
    """
    objects: list[Message] = []
    for number, document in _documents(text):
        if document is None:
            continue
        where = f"document {number}"
        if isinstance(document, dict) and document.get("kind") == "List":
            objects.extend(_load_list(document, where, default_namespace))
        else:
            objects.append(_load_object(document, where, default_namespace))
    return objects


def from_dict(data: Any) -> Message:
    """One object from its Kubernetes-style dict, with the same checks as load()."""
    return _load_object(data, "object", None)


def _documents(text: str | bytes) -> Iterator[tuple[int, Any]]:
    number = 1
    try:
        for document in yaml.load_all(text, Loader=_Loader):
            yield number, document
            number += 1
    except (yaml.YAMLError, UnicodeError) as err:
        raise ManifestError(f"document {number}", "", f"not valid YAML: {_yaml_problem(err)}") \
            from None
    except RecursionError:
        raise ManifestError(f"document {number}", "", "not valid YAML: nested too deeply") \
            from None


def _yaml_problem(err: Exception) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        problem = ", ".join(p for p in (err.context, err.problem) if p)
        return f"{problem} (line {err.problem_mark.line + 1}, " \
               f"column {err.problem_mark.column + 1})"
    if isinstance(err, yaml.reader.ReaderError):
        return f"{err.reason} (position {err.position})"
    return " ".join(str(err).split())


def _load_list(document: dict[Any, Any], where: str,
               default_namespace: str | None) -> list[Message]:
    for key in document:
        if key not in _LIST_FIELDS:
            raise ManifestError(where, str(key), f'unknown field "{key}"')
    if document.get("apiVersion") != "v1":
        raise ManifestError(where, "apiVersion", "must be v1")
    items = document.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise ManifestError(where, "items", "must be a list")
    return [_load_object(item, f"{where} item {i}", default_namespace)
            for i, item in enumerate(items, start=1)]


def _load_object(data: Any, where: str, default_namespace: str | None) -> Message:
    if not isinstance(data, dict):
        raise ManifestError(where, "", f"must be an object (a YAML mapping), not "
                                       f"{_type_name(data)}")
    kind = _kind(data, where)
    where = _name(data, kind) or where
    try:
        obj = _build(data, kind)
        if kind.namespaced and default_namespace and not obj.metadata.namespace:
            obj.metadata.namespace = default_namespace
        validation.validate(obj)
    except FieldError as err:
        raise ManifestError(where, err.path, err.message) from None
    except RecursionError:
        raise ManifestError(where, "", "nested too deeply") from None
    return obj


def _kind(data: dict[Any, Any], where: str) -> kinds.Kind:
    name = data.get("kind")
    if name is None:
        raise ManifestError(where, "kind", "required value")
    if not isinstance(name, str):
        raise ManifestError(where, "kind", "must be a string")
    try:
        return kinds.by_name(name)
    except kinds.UnknownKind as err:
        raise ManifestError(where, "", str(err)) from None


def _name(data: dict[Any, Any], kind: kinds.Kind) -> str | None:
    """"deployment/web", if the document has a usable name."""
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{kind.name.lower()}/{name}" if isinstance(name, str) and name else None


def _build(data: dict[Any, Any], kind: kinds.Kind) -> Message:
    if data.get("apiVersion") != kind.api_version:
        raise FieldError("apiVersion", f"must be {kind.api_version}")
    body = _message(data, kind.message.DESCRIPTOR, "")
    try:
        return json_format.ParseDict(body, kind.new())
    except json_format.ParseError as err:  # not expected: _message checked everything
        raise FieldError("", str(err)) from None


_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "a list", bytes: "binary data"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@cache
def _json_fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {field.json_name: field for field in descriptor.fields}


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _message(value: Any, descriptor: Descriptor, path: str) -> dict[str, Any]:
    """The dict for ParseDict, after checking every key and value; null means unset."""
    if not isinstance(value, dict):
        raise FieldError(path, "must be an object")
    fields = _json_fields(descriptor)
    body: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise FieldError(path, f"field name {key!r} must be a string")
        field = fields.get(key)
        if field is None:
            raise FieldError(_join(path, key), f'unknown field "{key}"')
        if item is not None:
            body[key] = _field(item, field, _join(path, key))
    return body


def _field(value: Any, field: FieldDescriptor, path: str) -> Any:
    quantity = field.full_name in _QUANTITY_FIELDS
    if _is_map(field):
        if not isinstance(value, dict):
            raise FieldError(path, "must be an object")
        value_field = field.message_type.fields_by_name["value"]
        for key in value:
            if not isinstance(key, str):
                raise FieldError(path, f"key {key!r} must be a string")
        return {key: _single(item, value_field, _join(path, key), quantity)
                for key, item in value.items()}
    if field.is_repeated:
        if not isinstance(value, list):
            raise FieldError(path, "must be a list")
        return [_single(item, field, f"{path}[{i}]", quantity) for i, item in enumerate(value)]
    return _single(value, field, path, quantity)


def _single(value: Any, field: FieldDescriptor, path: str, quantity: bool) -> Any:
    message = field.message_type
    if message is not None and message.full_name == _INT_OR_STRING:
        return _int_or_string(value, path)
    if message is not None and message.full_name == _TIMESTAMP:
        return _timestamp(value, path)
    if message is not None:
        return _message(value, message, path)
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return _string(value, path, quantity)
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise FieldError(path, "must be a boolean")
        return value
    if field.cpp_type in _INT_RANGES:
        return _integer(value, _INT_RANGES[field.cpp_type], path)
    raise TypeError(f"{field.full_name}: field type {field.type} is not supported")


def _string(value: Any, path: str, quantity: bool) -> str:
    if quantity and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise FieldError(path, "must be a quantity (a string or a number)" if quantity
                         else "must be a string")
    return value


def _integer(value: Any, bounds: tuple[int, int], path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FieldError(path, "must be an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise FieldError(path, f"must be between {bounds[0]} and {bounds[1]}")
    return value


def _int_or_string(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"strVal": value}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"intVal": _integer(value, _INT_RANGES[FieldDescriptor.CPPTYPE_INT32], path)}
    raise FieldError(path, "must be an integer or a string")


def _timestamp(value: Any, path: str) -> str:
    message = "must be an RFC 3339 timestamp, like 2024-01-31T12:00:00Z"
    if not isinstance(value, str):
        raise FieldError(path, message)
    try:
        Timestamp().FromJsonString(value)
    except ValueError:
        raise FieldError(path, message) from None
    return value


# ---------------------------------------------------------------- output

def to_dict(obj: Message) -> dict[str, Any]:
    """The Kubernetes-style dict: apiVersion and kind (from the registry) first,
    then the fields in proto order (metadata, spec, status); empty values left out."""
    kind = kinds.of(obj)
    body = _plain_message(json_format.MessageToDict(obj), obj.DESCRIPTOR)
    body.pop("apiVersion", None)
    body.pop("kind", None)
    return {"apiVersion": kind.api_version, "kind": kind.name, **body}


def _plain_message(body: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    fields = _json_fields(descriptor)
    return {key: _plain(value, fields[key]) for key, value in body.items()}


def _plain(value: Any, field: FieldDescriptor) -> Any:
    """Undo the JSON mapping's quirks: int64 as strings, IntOrString as an object."""
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        return {key: _plain_single(value[key], value_field) for key in sorted(value)}
    if field.is_repeated:
        return [_plain_single(item, field) for item in value]
    return _plain_single(value, field)


def _plain_single(value: Any, field: FieldDescriptor) -> Any:
    message = field.message_type
    if message is None:
        return int(value) if field.cpp_type in _INT64_TYPES else value
    if message.full_name == _INT_OR_STRING:
        return value.get("intVal", value.get("strVal", ""))
    if message.full_name == _TIMESTAMP:
        return value
    return _plain_message(value, message)


def _as_list(objs: Message | Iterable[Message]) -> list[Message]:
    return [objs] if isinstance(objs, Message) else list(objs)


def dump_yaml(objs: Message | Iterable[Message]) -> str:
    """One YAML document per object, separated by "---"."""
    return yaml.dump_all([to_dict(obj) for obj in _as_list(objs)], Dumper=_Dumper,
                         sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_json(objs: Message | Iterable[Message]) -> str:
    """One object as itself; several (any iterable) as a kind: List, as kubectl prints them."""
    if isinstance(objs, Message):
        data = to_dict(objs)
    else:
        data = {"apiVersion": "v1", "kind": "List", "items": [to_dict(o) for o in objs]}
    return json.dumps(data, indent=2) + "\n"
