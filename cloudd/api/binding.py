"""Parameter binding: raw request values to typed values, with CloudStack's error texts.

Pure code: it takes the declared parameters of a command and the decoded request map, and returns
a dict of lower-case names to typed values (absent parameters are absent). Secret values are never
put into an error text.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping
from typing import Any

from cloudd.api.errors import malformed, param_error
from cloudd.api.registry import Command, Param

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# an index of at most ten digits, as Java's Integer.parseInt takes (a longer one cannot be decoded: 430)
MAP_KEY_RE = re.compile(r"^([^\[\]]+)\[(-?\d{1,10})\]\.([^\[\]]+)$")
INT_RANGES = {"short": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# parameters the transport itself consumes; never bound to commands
TRANSPORT = frozenset({"command", "response", "sessionkey", "apikey", "signature", "signatureversion", "expires",
                       "_", "httpmethod"})


def is_uuid(value: str) -> bool:
    """A lower-case canonical UUID, as CloudStack accepts for ids created since 3.0."""
    return bool(UUID_RE.match(value))


def _invalid(cmd: Command, value: str, p: Param) -> Exception:
    shown = "(hidden)" if p.secret else value[:64]
    return param_error(f"Unable to execute API command {cmd.short_name} due to invalid value {shown} "
                       f"for parameter {p.name}")


def _bad_uuid(cmd: Command, value: str, p: Param) -> Exception:
    return param_error(
        f"Unable to execute API command {cmd.short_name} due to invalid value. Invalid parameter {p.name} "
        f"value={value[:64]} due to incorrect long value format, or entity does not exist or due to "
        "incorrect parameter annotation for the field in api cmd class.")


def bad_entity(cmd: Command, value: str, p: Param) -> Exception:
    """An entity parameter naming nothing the caller may see: the same text as a malformed UUID, so it
    does not tell whether the entity exists."""
    return _bad_uuid(cmd, value, p)


def parse_date(value: str, with_time: bool, end_of_day: bool = False) -> float | None:
    """Epoch seconds of `yyyy-MM-dd` (or `yyyy-MM-dd HH:mm:ss` when allowed); a bare end date means
    the last second of that day."""
    if with_time:
        try:
            return float(calendar.timegm(time.strptime(value, "%Y-%m-%d %H:%M:%S")))
        except ValueError:
            pass
    try:
        day = float(calendar.timegm(time.strptime(value, "%Y-%m-%d")))
    except ValueError:
        return None
    return day + 86399 if end_of_day else day


def _scalar(cmd: Command, p: Param, kind: str, value: str) -> Any:
    if kind == "string":
        return value
    if kind == "boolean":
        return value.lower() == "true"
    if kind in INT_RANGES:
        try:
            n = int(value.strip())
        except ValueError:
            raise _invalid(cmd, value, p) from None
        lo, hi = INT_RANGES[kind]
        if not lo <= n <= hi:
            raise _invalid(cmd, value, p)
        return n
    if kind in ("float", "double"):
        try:
            return float(value)
        except ValueError:
            raise _invalid(cmd, value, p) from None
    if kind == "uuid":
        if value == "-1" or UUID_RE.match(value):
            return value
        raise _bad_uuid(cmd, value, p)
    if kind in ("date", "tzdate"):
        parsed = parse_date(value, p.with_time, end_of_day=p.with_time and p.name == "enddate")
        if parsed is None:
            raise param_error(f"Unable to parse date {value[:64]} for command {cmd.short_name}, please pass "
                              "dates in the format mentioned in the api documentation")
        return parsed
    return value


def bind(cmd: Command, raw: Mapping[str, str]) -> dict[str, Any]:
    """Bind `raw` (names as received) to the declared parameters of `cmd`."""
    lowered: dict[str, str] = {}
    maps: dict[str, dict[int, dict[str, str]]] = {}
    for key, value in raw.items():
        if "[" in key or "]" in key:
            m = MAP_KEY_RE.match(key)
            if m is None:
                raise malformed(f"Unable to decode parameter {key[:64]}; if specifying an object array, please use "
                                "parameter[index].field=XXX, e.g. userGroupList[0].group=httpGroup")
            name, index, fld = m.group(1).lower(), int(m.group(2)), m.group(3)
            maps.setdefault(name, {}).setdefault(index, {})[fld] = value
            continue
        lowered[key.lower()] = value

    out: dict[str, Any] = {}
    for p in cmd.params:
        if p.type == "map":
            if p.name in maps:
                for entry in maps[p.name].values():
                    for v in entry.values():
                        if len(v) > p.length:
                            raise param_error(f"Value greater than max allowed length {p.length} for param: "
                                              f"{p.java_field}")
                out[p.name] = {i: maps[p.name][i] for i in sorted(maps[p.name])}
            elif p.required:
                raise param_error(f"Unable to execute API command {cmd.short_name} due to missing parameter "
                                  f"{p.name}")
            continue
        found = lowered.get(p.name)
        if found is None or (found == "" and p.type != "string"):
            if p.required:
                raise param_error(f"Unable to execute API command {cmd.short_name} due to missing parameter "
                                  f"{p.name}")
            continue
        value = found
        if len(value) > p.length:
            raise param_error(f"Value greater than max allowed length {p.length} for param: {p.java_field}")
        if p.type == "list":
            items = [t for t in (s.strip() for s in value.split(",")) if t]
            out[p.name] = [_scalar(cmd, p, p.element, t) for t in items]
        else:
            out[p.name] = _scalar(cmd, p, p.type, value)
    return out
