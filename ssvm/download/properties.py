"""`template.properties`: the Java Properties text, the template's keys and the loader-validity rule (pure).

`render` writes what `java.util.Properties.store(OutputStream, comments)` writes: a `#comment`
line, a `#<Date.toString()>` line, then `key=value` lines with `\\`, `=`, `:`, `#`, `!`, tab, CR,
LF and form feed escaped, a leading space in a value escaped, and everything outside printable
ASCII as `\\uXXXX` (UTF-16 code units). `parse` reads the format back (comments, continuation
lines, `=`/`:`/white-space separators, escapes). `template_properties` builds the key set of
spec §10 and `problems` applies its loader-validity rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

FILE_NAME = "template.properties"
# Format -> file extension, which is also the properties key prefix (spec §9; raw is "img").
EXTENSIONS = {"qcow2": "qcow2", "raw": "img", "vhd": "vhd", "ova": "ova", "iso": "iso"}
# Every extension a loader accepts as a format entry (ours plus other CloudStack writers').
KNOWN_EXTENSIONS = ("qcow2", "img", "raw", "vhd", "vhdx", "ova", "iso", "tar", "vmdk")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f",
            "=": "\\=", ":": "\\:", "#": "\\#", "!": "\\!"}
_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _escape(text: str, *, is_key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char == " " and (is_key or index == 0):
            out.append("\\ ")
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            data = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(data[i:i + 2], 'big'):04X}" for i in range(0, len(data), 2))
    return "".join(out)


def java_date(moment: datetime) -> str:
    """`java.util.Date.toString()` of `moment`, in UTC: `Sat Nov 22 01:35:00 UTC 2025`."""
    moment = moment.astimezone(UTC)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[moment.weekday()]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[moment.month - 1]
    return f"{day} {month} {moment:%d %H:%M:%S} UTC {moment.year}"


def render(values: Mapping[str, str], moment: datetime, comment: str = "") -> str:
    lines = [f"#{comment}", f"#{java_date(moment)}"]
    lines.extend(f"{_escape(key, is_key=True)}={_escape(value, is_key=False)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _logical_lines(text: str) -> list[str]:
    result: list[str] = []
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if pending is None and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        continued = trailing % 2 == 1
        if continued:
            line = line[:-1]
        pending = line if pending is None else pending + line
        if not continued:
            result.append(pending)
            pending = None
    if pending is not None:
        result.append(pending)
    return result


def _unescape(text: str) -> str:
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 == len(text):
            out.append(char)
            index += 1
            continue
        nxt = text[index + 1]
        if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[index + 2:index + 6]):
            out.append(chr(int(text[index + 2:index + 6], 16)))
            index += 6
            continue
        out.append(_UNESCAPES.get(nxt, nxt))
        index += 2
    # Join UTF-16 surrogate pairs written as two \\u escapes.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in _logical_lines(text):
        index = 0
        while index < len(line):
            char = line[index]
            if char == "\\":
                index += 2
                continue
            if char in "=: \t\f":
                break
            index += 1
        key = line[:index]
        rest = line[index:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        values[_unescape(key)] = _unescape(rest)
    return values


def template_properties(*, file_name: str, format: str, physical_size: int, virtual_size: int,
                        template_id: int, unique_name: str, description: str, hvm: bool) -> dict[str, str]:
    """The keys of spec §10 for one downloaded file, in the order CloudStack's tools write them."""
    ext = EXTENSIONS[format]
    return {
        "filename": file_name,
        "description": description,
        "hvm": "true" if hvm else "false",
        "size": str(physical_size),
        "id": str(template_id),
        "public": "true",
        "uniquename": unique_name,
        ext: "true",
        f"{ext}.filename": file_name,
        f"{ext}.size": str(physical_size),
        f"{ext}.virtualsize": str(virtual_size),
        "virtualsize": str(virtual_size),
    }


def _positive(values: Mapping[str, str], key: str) -> bool:
    try:
        return int(values[key]) > 0
    except (KeyError, ValueError):
        return False


def format_entries(values: Mapping[str, str]) -> list[str]:
    """The extensions with both `<ext>=true` and `<ext>.filename`."""
    return [ext for ext in KNOWN_EXTENSIONS
            if values.get(ext, "").strip().lower() == "true" and values.get(f"{ext}.filename")]


def problems(values: Mapping[str, str]) -> list[str]:
    """Why a loader would reject these properties (spec §10); empty when they are valid."""
    found = []
    if not values.get("uniquename"):
        found.append("uniquename is missing")
    if not _positive(values, "virtualsize"):
        found.append("virtualsize is missing or not positive")
    entries = format_entries(values)
    if not entries:
        found.append("no <ext>=true / <ext>.filename pair")
    for key in ["size"] + [f"{ext}.{field}" for ext in entries for field in ("size", "virtualsize")]:
        if key in values and not _positive(values, key):
            found.append(f"{key} is not positive")
    for ext in entries:
        name = values[f"{ext}.filename"]
        if "/" in name or name in (".", "..") or name.startswith("."):
            found.append(f"{ext}.filename is not a plain file name")
    return found
