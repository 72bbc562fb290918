"""Response objects, each declared once: its fields with types and descriptions, and where each
value comes from. The same declaration renders the object and documents it in `listApis`.

    ZONE = ResponseObject("zone",
        Out("id", "the UUID of the zone", source="uuid"),
        Out("name", "the name of the zone"),
        Out("securitygroupsenabled", "...", "boolean", source="security_groups"))
    ZONE.render(zone)  # {"id": ..., "name": ..., "securitygroupsenabled": ...}

A field's value is `source` read from the object (an attribute name, a dotted path, or a callable
of the object), by default the attribute named like the field. Values that are None are left out, as
CloudStack leaves out null fields. `date` fields given epoch seconds are rendered in CloudStack's
date format, `boolean` fields as booleans. `render(obj, **more)` adds or overrides fields computed
by the caller; every key it produces must be declared (`check_declared` is the same check, for
results built by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudd.api.registry import Field, ResponseDoc
from cloudd.util.dates import cs_date

_MISSING = object()


@dataclass(frozen=True)
class Out:
    """One field of a response object."""

    name: str
    description: str = ""
    type: str = "string"
    source: str | Callable[[Any], Any] | None = None
    # the object of each element (type "list"/"set") or of a nested object (type "responseobject")
    children: ResponseObject | None = None

    def value(self, obj: Any) -> Any:
        src = self.source if self.source is not None else self.name
        if callable(src):
            value = src(obj)
        else:
            value = obj
            for part in src.split("."):
                if value is None:
                    break
                value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        return self.shape(value)

    def shape(self, value: Any) -> Any:
        if value is None:
            return None
        if self.type == "date" and isinstance(value, int | float) and not isinstance(value, bool):
            return cs_date(int(value))
        if self.type == "boolean":
            return bool(value)
        if self.children is not None and self.type in ("list", "set"):
            return [dict(v) if isinstance(v, Mapping) else self.children.render(v) for v in value]
        if self.children is not None and self.type == "responseobject" and not isinstance(value, Mapping):
            return self.children.render(value)
        return value


class UndeclaredField(AssertionError):
    """A command rendered a key its response object does not declare."""


class ResponseObject:
    """A response object: its name (`zone`, `host` ...) and its fields, in the order rendered."""

    def __init__(self, name: str, *fields: Out) -> None:
        self.name = name
        self.fields = fields
        self.by_name = {f.name: f for f in fields}
        if len(self.by_name) != len(fields):
            raise ValueError(f"a field of {name} is declared twice")

    def render(self, obj: Any, **more: Any) -> dict[str, Any]:
        """The object's fields as CloudStack renders them (None values left out)."""
        out: dict[str, Any] = {}
        for f in self.fields:
            value = more.pop(f.name) if f.name in more else _MISSING
            value = f.value(obj) if value is _MISSING else f.shape(value)
            if value is not None:
                out[f.name] = value
        if more:
            raise UndeclaredField(f"{self.name} does not declare {sorted(more)}")
        return out

    def doc(self) -> ResponseDoc:
        return ResponseDoc(self.name, tuple(self._field(f) for f in self.fields))

    @staticmethod
    def _field(f: Out) -> Field:
        children = tuple(ResponseObject._field(c) for c in f.children.fields) if f.children is not None else ()
        return Field(f.name, f.description, f.type, children)


def check_declared(doc: ResponseDoc, body: Mapping[str, Any]) -> None:
    """Every key of `body` (one rendered object), nested ones included, is declared in `doc`."""
    _check(doc.object_name, doc.fields, body)


def _check(where: str, fields: tuple[Field, ...], body: Mapping[str, Any]) -> None:
    declared = {f.name: f for f in fields}
    extra = sorted(set(body) - set(declared))
    if extra:
        raise UndeclaredField(f"{where}: undeclared keys {extra}")
    for key, value in body.items():
        f = declared[key]
        if not f.children:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping):
                _check(f"{where}.{key}", f.children, item)
