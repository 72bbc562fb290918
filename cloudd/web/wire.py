"""Request parameters and cookies from raw bytes (spec §1.2).

This module owns turning the bytes of a query string, an
``application/x-www-form-urlencoded`` body and a ``Cookie`` header into ``str``
mappings, plus the request-wide checks on the result: duplicate names and ASCII control
characters in values, and the checks made before any decoding (how many parameters, whether
the headers cloudd reads are UTF-8). It is pure; nothing here raises on malformed input except
:class:`DuplicateParameter` and, when asked for strict decoding, :class:`UndecodableParameter`,
which are verdicts on the request, not parsing failures.

Decoding always uses UTF-8 (CloudStack re-decodes the query string as UTF-8 itself);
invalid percent escapes are kept literally; invalid UTF-8 becomes U+FFFD, or with
``strict=True`` (what the API endpoint uses) refuses the request.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = [
    "CONTROL_CHARS",
    "DuplicateParameter",
    "UndecodableParameter",
    "count_pieces",
    "first_control_char_param",
    "first_undecodable_header",
    "merge_params",
    "param_ci",
    "parse_cookies",
    "parse_pairs",
    "wants_json",
]


class DuplicateParameter(ValueError):
    """A parameter name occurred more than once in one request.

    ``name`` is the later occurrence, as received. The message never contains a value,
    since values may be passwords.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"duplicate parameter {name!r}")
        self.name = name


class UndecodableParameter(ValueError):
    """A parameter name or value is not UTF-8 once its percent escapes are decoded.

    ``name`` is the decoded name when only the value is at fault, ``None`` when the name
    itself is. The message never contains a value.
    """

    def __init__(self, name: str | None) -> None:
        super().__init__("parameter name is not UTF-8" if name is None else f"value of {name!r} is not UTF-8")
        self.name = name


def _form_bytes(raw: bytes) -> bytes:
    """The bytes of one form-encoded name or value: ``+`` is a space, then percent escapes."""
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw


def parse_pairs(raw: bytes, *, strict: bool = False) -> list[tuple[str, str]]:
    """Split form-encoded *raw* (a query string or a body) into decoded pairs, in order.

    Pieces are separated by ``&`` and split on their first ``=``; a piece without ``=``
    is a name with an empty value, and empty pieces are skipped. Bytes that are not UTF-8
    become U+FFFD; with *strict* they raise :class:`UndecodableParameter` instead, and
    nothing else raises.
    """
    errors = "strict" if strict else "replace"
    pairs = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name_bytes, _, value_bytes = piece.partition(b"=")
        try:
            name = _form_bytes(name_bytes).decode("utf-8", errors)
        except UnicodeDecodeError:
            raise UndecodableParameter(None) from None
        try:
            value = _form_bytes(value_bytes).decode("utf-8", errors)
        except UnicodeDecodeError:
            raise UndecodableParameter(name) from None
        pairs.append((name, value))
    return pairs


def count_pieces(*raws: bytes) -> int:
    """An upper bound of the parameters in form-encoded *raws*, counted on the bytes alone.

    Each non-empty *raw* has one piece more than it has ``&`` separators; nothing is decoded,
    so a request with too many parameters is refused at the cost of a byte count.
    """
    return sum(raw.count(b"&") + 1 for raw in raws if raw)


_RESPONSE_JSON_RE: Final = re.compile(rb"(?:^|&)response=json(?:&|$)", re.IGNORECASE)


def wants_json(*raws: bytes) -> bool:
    """Whether form-encoded *raws* carry ``response=json``, read without decoding them: the choice
    of envelope for a request refused before its parameters are decoded."""
    return any(_RESPONSE_JSON_RE.search(raw) is not None for raw in raws if raw)


def first_undecodable_header(headers: Iterable[tuple[bytes, Sequence[bytes]]],
                             names: Collection[bytes]) -> str | None:
    """The first header of *headers* named in *names* (lower-case) whose value is not UTF-8.

    *headers* are raw ``(name, values)`` pairs as twisted.web's ``getAllRawHeaders`` gives
    them; the name is returned as received, decoded as Latin-1 (names are ASCII tokens).
    Returns ``None`` when every header read is acceptable.
    """
    for name, values in headers:
        if name.lower() not in names:
            continue
        for value in values:
            if value.isascii():
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return name.decode("latin-1")
    return None


def merge_params(query: list[tuple[str, str]], body: list[tuple[str, str]]) -> dict[str, str]:
    """Merge query-string and body pairs into one mapping that keeps the names' case.

    Raises :class:`DuplicateParameter` when a name occurs twice anywhere, compared
    case-insensitively (``Password`` and ``password`` bind to the same parameter, so an
    exact duplicate is only the simplest case).
    """
    merged: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in [*query, *body]:
        folded = name.lower()
        if folded in seen:
            raise DuplicateParameter(name)
        seen.add(folded)
        merged[name] = value
    return merged


# The characters CloudStack refuses in any parameter value (CR and LF are allowed).
CONTROL_CHARS: Final = frozenset(chr(code) for code in [*range(0, 10), 11, 12, *range(14, 32), 127])

# Finds any of CONTROL_CHARS (at C speed: every request is checked).
_CONTROL_CHAR_RE: Final = re.compile("[" + "".join(re.escape(char) for char in sorted(CONTROL_CHARS)) + "]")

# CloudStack exempts this one parameter from the check (spec §1.2).
_CONTROL_CHAR_EXEMPT: Final = frozenset({"activationrule"})


def first_control_char_param(
    params: Mapping[str, str], *, exempt: Collection[str] = _CONTROL_CHAR_EXEMPT
) -> str | None:
    """Return the first name, in sorted order, whose value contains one of :data:`CONTROL_CHARS`.

    Names in *exempt* (lower-case; compared case-insensitively, like command parameters)
    are not checked. Returns ``None`` when every value is acceptable.
    """
    if _CONTROL_CHAR_RE.search("".join(params.values())) is None:
        return None
    for name in sorted(params):
        if name.lower() in exempt:
            continue
        if not CONTROL_CHARS.isdisjoint(params[name]):
            return name
    return None


def param_ci(params: Mapping[str, str], name: str) -> str | None:
    """The value of a transport parameter (`apiKey`, `signature`, `response`, ...) in any case;
    `name` is given in lower case."""
    if name in params:
        return params[name]
    for key, value in params.items():
        if key.lower() == name:
            return value
    return None


def parse_cookies(header: bytes | None) -> dict[str, str]:
    """Parse a ``Cookie`` header (``name=value; name2=value2``) tolerantly.

    Pieces without ``=`` or with an empty name are ignored, surrounding whitespace and
    double quotes around a value are removed, and the first occurrence of a name wins.
    Bytes are decoded as UTF-8 with replacement. Never raises.
    """
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    text = header.decode("utf-8", errors="replace")
    for piece in text.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies
