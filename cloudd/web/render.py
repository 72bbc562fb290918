"""CloudStack response envelopes: JSON and XML bodies, content types, dates (spec §3).

This module owns the byte-level form of a response. Handlers build the body as plain
data (``str``, ``int``, ``float``, ``bool``, ``None``, lists and mappings); the functions
here wrap it in the response name and serialise it the way the Java server does. ``None``
stands for a null Java field and is left out, as Gson and the XML serialiser do.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cloudd.api.objects import Rendered

__all__ = [
    "JSON_CONTENT_TYPE",
    "XML_CONTENT_TYPE",
    "format_date",
    "render_json",
    "render_xml",
]

JSON_CONTENT_TYPE: Final = b"application/json; charset=UTF-8"
XML_CONTENT_TYPE: Final = b"text/xml; charset=UTF-8"

XML_PROLOGUE: Final = '<?xml version="1.0" encoding="UTF-8"?>'


# Leaf types, tested by exact type first: a list answer has thousands of fields, and an
# isinstance() against the Mapping ABC for each of them costs more than the JSON encoding.
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _drop_none(value: Any) -> Any:
    """Return *value* with every ``None`` member of a mapping removed, at any depth.

    ``None`` items of a list are kept (Gson writes them as ``null``); only fields vanish.
    """
    if type(value) in _SCALARS or type(value) is Rendered:
        return value
    if isinstance(value, Mapping):
        return {key: item if type(item) in _SCALARS else _drop_none(item)
                for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else _drop_none(item) for item in value]
    return value


_JSON_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def render_json(response_name: str, body: Mapping[str, Any]) -> bytes:
    """Return ``{"<response_name>": body}`` as compact UTF-8 JSON (spec §3.2).

    Non-ASCII and ``<>&='`` are written raw, fields whose value is ``None`` are omitted
    at every depth and empty lists are kept as ``[]``. A non-finite float raises
    :class:`ValueError` rather than producing invalid JSON.
    """
    document = {response_name: _drop_none(body)}
    text = _JSON_ENCODER.encode(document)
    return text.encode("utf-8", errors="replace")


_XML_ESCAPES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})

# An XML element name: a letter or "_", then letters, digits, "_", "." or "-".
_XML_NAME_RE: Final = re.compile(r"[^\W\d][\w.\-]*")


# Characters XML 1.0 cannot carry even escaped (C0 controls other than tab, LF and CR, lone
# surrogates, U+FFFE and U+FFFF). An error text may echo them from a request (a login's domain
# path, a duplicated parameter's name); they become U+FFFD so that the document stays well-formed.
_XML_INVALID_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_escape(text: str) -> str:
    """Escape the five XML special characters of *text*; replace characters XML cannot carry."""
    return _XML_INVALID_RE.sub("\ufffd", text).translate(_XML_ESCAPES)


def _xml_name(name: str) -> str:
    """Return *name* if it is usable as an element name, else raise ValueError."""
    if _XML_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"cannot use {name!r} as an XML element name")
    return name


def _xml_scalar(value: object) -> str:
    """Return the escaped text form of a scalar field value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return _xml_escape(value)
    raise TypeError(f"cannot render a {type(value).__name__} in a response")


def _xml_uuid_list(out: list[str], entries: list[Any] | tuple[Any, ...]) -> None:
    """Write the ``uuidList`` of an error: one ``<uuidList>`` element per entry.

    An entry is a mapping with ``uuid`` and ``uuidProperty`` (``description``, the JSON
    member name, is accepted for the latter), or a bare uuid string.
    """
    for entry in entries:
        if isinstance(entry, Mapping):
            uuid = entry.get("uuid")
            prop = entry.get("uuidProperty", entry.get("description"))
        else:
            uuid, prop = entry, None
        out.append("<uuidList>")
        if uuid is not None:
            out.append(f"<uuid>{_xml_scalar(uuid)}</uuid>")
        if prop is not None:
            out.append(f"<uuidProperty>{_xml_scalar(prop)}</uuidProperty>")
        out.append("</uuidList>")


def _xml_field(out: list[str], name: str, value: Any) -> None:
    """Write field *name* with *value*; lists repeat the element once per item."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        if name == "uuidList":
            _xml_uuid_list(out, value)
        else:
            for item in value:
                _xml_field(out, name, item)
        return
    tag = _xml_name(name)
    if isinstance(value, Mapping):
        out.append(f"<{tag}>")
        for key, item in value.items():
            _xml_field(out, key, item)
        out.append(f"</{tag}>")
    else:
        out.append(f"<{tag}>{_xml_scalar(value)}</{tag}>")


def render_xml(response_name: str, body: Mapping[str, Any], version: str) -> bytes:
    """Return the XML form of a response (spec §3.3), UTF-8 encoded.

    The root element is *response_name* with ``cloud-stack-version="<version>"``; each
    field of *body* is an element, nested mappings are nested elements, a list repeats
    its field's element per item, ``None`` is omitted, booleans are ``true``/``false``.
    A key that is not a valid XML name raises :class:`ValueError`.
    """
    root = _xml_name(response_name)
    out = [XML_PROLOGUE, f'<{root} cloud-stack-version="{_xml_escape(version)}">']
    for key, item in body.items():
        _xml_field(out, key, item)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8", errors="replace")


def format_date(epoch_seconds: float) -> str:
    """Format an instant as CloudStack does: ``yyyy-MM-dd'T'HH:mm:ssZ`` in UTC.

    For example ``2024-05-01T12:00:00+0000``; a fraction of a second is dropped.
    """
    when = datetime.fromtimestamp(math.floor(epoch_seconds), tz=UTC)
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}+0000"
    )
