"""Label selectors and field selectors, with Kubernetes syntax and semantics.

Label selectors come either as the string syntax used by clients
("app=web,tier!=db,env in (prod,staging),!canary") or as the LabelSelector
message of workload specs. Field selectors ("spec.nodeName=n1") compare one
scalar field of an object, found by its JSON path.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from minik8s import validation
from minik8s.api.v1 import types_pb2

_KEY = r"(?P<key>[^\s=!(),]+)"
_SET = re.compile(rf"\s*{_KEY}\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*")
_EQUALITY = re.compile(rf"\s*{_KEY}\s*(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),]*)\s*")
_EXISTS = re.compile(rf"\s*(?P<bang>!?)\s*{_KEY}\s*")
_LABEL_SYNTAX = ("expected 'key', '!key', 'key=value', 'key!=value', 'key in (a,b)' "
                 "or 'key notin (a,b)'")
_FIELD = re.compile(r"\s*(?P<path>[A-Za-z0-9_.]+)\s*(?P<op>==|=|!=)(?P<value>.*)")


@dataclass(frozen=True)
class Requirement:
    """One label condition; "a=b" is In (b) and "a!=b" is NotIn (b), as in Kubernetes."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return labels.get(self.key) not in self.values  # NotIn: a missing label matches

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        if len(self.values) == 1:
            return f"{self.key}{'=' if self.operator == 'In' else '!='}{self.values[0]}"
        word = "in" if self.operator == "In" else "notin"
        return f"{self.key} {word} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """From the string syntax; ValueError naming the part that does not parse."""
        if not text.strip():
            return cls()
        parts = _split_top_level(text)
        if any(not part.strip() for part in parts):
            raise ValueError(f"invalid label selector {text!r}: empty requirement")
        return cls(tuple(_parse_requirement(part) for part in parts))

    @classmethod
    def from_proto(cls, selector: types_pb2.LabelSelector) -> LabelSelector:
        requirements = [Requirement(key, "In", (value,))
                        for key, value in sorted(selector.match_labels.items())]
        for expression in selector.match_expressions:
            if expression.operator not in validation.LABEL_SELECTOR_OPERATORS:
                raise ValueError(f"invalid label selector operator {expression.operator!r}: "
                                 f"must be one of "
                                 f"{', '.join(validation.LABEL_SELECTOR_OPERATORS)}")
            requirements.append(Requirement(expression.key, expression.operator,
                                            tuple(expression.values)))
        return cls(tuple(requirements))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_top_level(text: str) -> list[str]:
    """Split on the commas that are not inside "in (...)" value lists."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        if depth not in (0, 1):
            raise ValueError(f"invalid label selector {text!r}: unbalanced parentheses")
    if depth:
        raise ValueError(f"invalid label selector {text!r}: unbalanced parentheses")
    parts.append(text[start:])
    return parts


def _parse_requirement(part: str) -> Requirement:
    if match := _SET.fullmatch(part):
        operator = "In" if match["op"] == "in" else "NotIn"
        values = tuple(v.strip() for v in match["values"].split(","))
    elif match := _EQUALITY.fullmatch(part):
        operator = "NotIn" if match["op"] == "!=" else "In"
        values = (match["value"],)
    elif match := _EXISTS.fullmatch(part):
        operator = "DoesNotExist" if match["bang"] else "Exists"
        values = ()
    else:
        raise ValueError(f"invalid label selector {part.strip()!r}: {_LABEL_SYNTAX}")
    try:
        validation.validate_label_key(match["key"], "key")
        for value in values:
            validation.validate_label_value(value, "value")
    except validation.FieldError as err:
        raise ValueError(f"invalid label selector {part.strip()!r}: {err.message}") from None
    return Requirement(match["key"], operator, values)


# ---------------------------------------------------------------- field selectors

@dataclass(frozen=True)
class FieldRequirement:
    path: str      # JSON path: "spec.nodeName"
    operator: str  # "=" or "!="
    value: str

    def matches(self, obj: Message) -> bool:
        equal = _field_value(obj, self.path) == self.value
        return equal if self.operator == "=" else not equal

    def __str__(self) -> str:
        return f"{self.path}{self.operator}{self.value}"


@dataclass(frozen=True)
class FieldSelector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        if not text.strip():
            return cls()
        return cls(tuple(_parse_field_requirement(part) for part in text.split(",")))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def validate_for(self, message_class: type[Message]) -> None:
        """ValueError if a path is not a scalar field of this kind."""
        for requirement in self.requirements:
            _resolve(message_class.DESCRIPTOR, requirement.path)

    def matches(self, obj: Message) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _parse_field_requirement(part: str) -> FieldRequirement:
    match = _FIELD.fullmatch(part)
    if match is None:
        raise ValueError(f"invalid field selector {part.strip()!r}: expected "
                         "'field=value', 'field==value' or 'field!=value'")
    operator = "!=" if match["op"] == "!=" else "="
    return FieldRequirement(match["path"], operator, match["value"].strip())


@cache
def _json_fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {field.json_name: field for field in descriptor.fields}


def _resolve(descriptor: Descriptor, path: str) -> list[FieldDescriptor]:
    """The fields along a JSON path that ends at a singular scalar field."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in path.split("."):
        field = _json_fields(current).get(part) if current is not None else None
        if field is None or field.is_repeated:
            raise ValueError(f"field selector {path!r} is not supported for {descriptor.name}")
        fields.append(field)
        current = field.message_type
    if current is not None:
        raise ValueError(f"field selector {path!r} is not supported for {descriptor.name}")
    return fields


def _field_value(obj: Message, path: str) -> str:
    """The field as a selector compares it: a string, with booleans as true/false."""
    value: object = obj
    for field in _resolve(obj.DESCRIPTOR, path):
        value = getattr(value, field.name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
