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

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    _get: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    _shape: Callable[[Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # worked out once: a list answer reads thousands of fields
        object.__setattr__(self, "_get", _getter(self.source if self.source is not None else self.name))
        object.__setattr__(self, "_shape", self._shaper())

    def value(self, obj: Any) -> Any:
        value = self._get(obj)
        return None if value is None else self._shape(value)

    def shape(self, value: Any) -> Any:
        return None if value is None else self._shape(value)

    def _shaper(self) -> Callable[[Any], Any]:
        children = self.children
        if self.type == "date":
            return _date
        if self.type == "boolean":
            return bool
        if children is not None and self.type in ("list", "set"):
            return lambda value: [v if isinstance(v, Mapping) else children.render(v) for v in value]
        if children is not None and self.type == "responseobject":
            return lambda value: value if isinstance(value, Mapping) else children.render(value)
        return _same


def _same(value: Any) -> Any:
    return value


def _date(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return cs_date(int(value))
    return value


def _getter(source: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A function reading `source` (a callable, an attribute or key name, or a dotted path) from an object."""
    if callable(source):
        return source
    parts = source.split(".")

    def step(name: str) -> Callable[[Any], Any]:
        def get(obj: Any) -> Any:
            # dicts by key, everything else (frozen dataclasses) by attribute; an ABC isinstance check
            # here would cost more than the read
            if type(obj) is dict:
                return obj.get(name)
            return getattr(obj, name, None)

        return get

    steps = [step(p) for p in parts]
    if len(steps) == 1:
        return steps[0]

    def path(obj: Any) -> Any:
        for get in steps:
            if obj is None:
                return None
            obj = get(obj)
        return obj

    return path


class Rendered(dict[str, Any]):
    """A response object as rendered: no field is None, at any depth, so the JSON writer need not walk
    it again to leave null fields out."""


# values that need no cleaning: scalars, and objects rendered already
_CLEAN = frozenset({str, int, float, bool, Rendered})


def _clean(value: Any) -> Any:
    """`value` with the None members of its mappings left out, at any depth (None list items stay, as the
    JSON writer keeps them)."""
    if type(value) in _CLEAN:
        return value
    if isinstance(value, Mapping):
        return Rendered({k: _clean(v) for k, v in value.items() if v is not None})
    if isinstance(value, list | tuple):
        return [None if v is None else _clean(v) for v in value]
    return value


def _tuple_reader(attrs: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function reading `attrs` of an object as one tuple (attrgetter answers a bare value for one)."""
    if len(attrs) > 1:
        return operator.attrgetter(*attrs)
    if attrs:
        single = operator.attrgetter(attrs[0])
        return lambda obj: (single(obj),)
    return lambda obj: ()


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
        self._plan = [(f.name, f._get, f._shape) for f in fields]
        # Fields read straight from an attribute and written as they are: per type of object rendered,
        # read all of them at once with one attrgetter (in C) and shape nothing; that is most of a host's
        # or template's fields. Worked out at the first object of each type (`_plan_for`).
        self._plain = {f.name: (f.source if isinstance(f.source, str) else f.name) for f in fields
                       if f._shape is _same and (f.source is None or (isinstance(f.source, str)
                                                                     and "." not in f.source))}
        self._by_type: dict[type, tuple[Callable[[Any], Any], list[tuple[str, int, Any, Any]]]] = {}

    def _plan_for(self, obj: Any) -> tuple[Callable[[Any], Any], list[tuple[str, int, Any, Any]]]:
        """(reader of the type's plain attributes, [(name, index or -1, reader, shaper or None)]); a plain
        field the type has no attribute for is left out (it would always be None)."""
        kind = type(obj)
        plan = self._by_type.get(kind)
        if plan is None:
            present = [name for name, attr in self._plain.items() if hasattr(obj, attr)]
            index = {name: i for i, name in enumerate(present)}
            attrs = [self._plain[name] for name in present]
            getter = _tuple_reader(attrs)
            steps = [(f.name, index.get(f.name, -1), f._get, None if f.name in index else f._shape)
                     for f in self.fields if f.name in index or f.name not in self._plain]
            plan = self._by_type[kind] = (getter, steps)
        return plan

    def render(self, obj: Any, **more: Any) -> dict[str, Any]:
        """The object's fields as CloudStack renders them (None values left out, at any depth)."""
        out = Rendered()
        if more:
            for f in self.fields:
                value = more.pop(f.name) if f.name in more else _MISSING
                value = f.value(obj) if value is _MISSING else f.shape(value)
                if value is not None:
                    out[f.name] = value if type(value) in _CLEAN else _clean(value)
            if more:
                raise UndeclaredField(f"{self.name} does not declare {sorted(more)}")
            return out
        if type(obj) is not dict:
            getter, steps = self._plan_for(obj)
            values = getter(obj)
            for name, i, get, shape in steps:
                if shape is None:
                    value = values[i]
                else:
                    value = get(obj)
                    if value is None:
                        continue
                    value = shape(value)
                if value is not None:
                    out[name] = value if type(value) in _CLEAN else _clean(value)
            return out
        for name, get, shape in self._plan:
            value = get(obj)
            if value is not None:
                value = shape(value)
                if value is not None:
                    out[name] = value if type(value) in _CLEAN else _clean(value)
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
