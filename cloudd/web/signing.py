"""CloudStack request signatures and ``expires`` timestamps (spec §2.2–§2.4).

This module owns the pure computation behind the API-key path: the canonical string a
request is signed over, HMAC-SHA1 signing, signature verification and parsing of the
``expires`` parameter of ``signatureVersion=3``. It does no I/O and looks nothing up; the
caller passes the decoded parameter map and the user's secret key.

The canonical string is the one the Java management server computes (spec §2.2): names
as received, sorted as Java's ``String.compareTo`` sorts them (by UTF-16 code unit, which is
code point order unless a name holds a character beyond U+FFFF), ``signature`` left out,
each value encoded like Java's ``URLEncoder.encode(value, "UTF-8")`` with ``+`` then turned
into ``%20``, joined with ``&`` and the whole string lower-cased.

Tolerant verification is a deliberate choice, documented here. Real clients do not all
build that exact string, and a real CloudStack rejects their requests in the edge cases
where they differ. We accept a signature over any of a handful of variants
(:func:`canonical_variants`) instead:

* ``~``: the server accepts both the Java form (``%7E``) and the raw ``~`` that ``cs``,
  cloudmonkey (``cmk``) and cloudstack-go send, because otherwise those clients fail on
  every value that contains a ``~``.
* ``*`` as ``%2a`` (Go's ``QueryEscape``, used by cloudstack-go; old libcloud).
* ``[`` and ``]`` left raw (newer libcloud).
* names ordered by their lower-cased form (libcloud lower-cases names before sorting).

Every variant is another encoding of the same decoded parameters, and in all of them
each escape or raw character stands for exactly one byte, so any accepted string
decodes back to the same names and lower-cased values. A signature made for one
request therefore still authorises no other request than the Java form would; the cost
is a few more HMAC computations per request.

The scheme itself is case-insensitive in values (the whole string is lower-cased before
signing): a signed ``name=Alice`` also verifies as ``name=alice``. That is CloudStack's
behaviour and every client depends on it; nothing here can change it.
"""

from __future__ import annotations

import base64
import functools
import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Final

__all__ = [
    "canonical_string",
    "canonical_variants",
    "java_urlencode",
    "parse_expires",
    "sign",
    "verify_signature",
]

# Bytes Java's URLEncoder leaves unchanged (in addition to space, which becomes "+").
_JAVA_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-*_")


def _java_table() -> tuple[str, ...]:
    """Return the Java ``URLEncoder`` output for every byte value 0..255."""
    table = []
    for byte in range(256):
        if byte in _JAVA_SAFE:
            table.append(chr(byte))
        elif byte == 0x20:
            table.append("+")
        else:
            table.append(f"%{byte:02X}")
    return tuple(table)


_JAVA_TABLE: Final = _java_table()


def _utf8(value: str) -> bytes:
    """Encode like Java's ``String.getBytes(UTF_8)``: an unpaired surrogate becomes ``?``."""
    return value.encode("utf-8", errors="replace")


def java_urlencode(value: str) -> str:
    """Encode *value* exactly as Java's ``URLEncoder.encode(value, "UTF-8")`` does.

    ``A-Z a-z 0-9 . - * _`` are kept, a space becomes ``+`` and every other UTF-8 byte
    becomes ``%XX`` with upper-case hex digits.
    """
    return "".join(_JAVA_TABLE[byte] for byte in _utf8(value))


def _value_table(*, tilde_raw: bool, star_escaped: bool, brackets_raw: bool) -> tuple[str, ...]:
    """Return a per-byte encoding table for canonical values (space already as ``%20``)."""
    table = list(_JAVA_TABLE)
    table[ord(" ")] = "%20"
    if tilde_raw:
        table[ord("~")] = "~"
    if star_escaped:
        table[ord("*")] = "%2A"
    if brackets_raw:
        table[ord("[")] = "["
        table[ord("]")] = "]"
    return tuple(table)


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-be", errors="surrogatepass")


def _java_order(names: list[str]) -> list[str]:
    """Sort *names* as Java's ``Collections.sort`` does: by UTF-16 code units.

    That is code point order, except that a character beyond U+FFFF (a surrogate pair,
    D800-DFFF) sorts before U+E000-U+FFFF; only then is the slower key needed.
    """
    joined = "".join(names)
    if joined.isascii() or max(joined) <= "\uffff":
        return sorted(names)
    return sorted(names, key=_utf16)


def _signed_names(params: Mapping[str, str], *, lower_order: bool) -> list[str]:
    """Return the names that are signed, in signing order."""
    names = [name for name in params if name.lower() != "signature"]
    if lower_order:
        # The original name breaks ties so that the order is always deterministic.
        return sorted(names, key=lambda name: (name.lower(), name))
    return _java_order(names)


# Runs of characters that some value table changes; everything else (letters, digits, ``.``,
# ``_``, ``-``) every table keeps as it is, so keys, command names and ids need no work.
_ENCODED_RUN_RE: Final = re.compile(r"[^A-Za-z0-9._\-]+")


def _encode_value(value: str, table: tuple[str, ...]) -> str:
    """Encode one value with a per-byte table."""
    return _ENCODED_RUN_RE.sub(lambda run: "".join([table[byte] for byte in _utf8(run[0])]), value)


def _join(params: Mapping[str, str], names: list[str], table: tuple[str, ...]) -> str:
    """Build one canonical string from names in signing order and a value encoding."""
    return "&".join([name + "=" + _encode_value(params[name], table) for name in names]).lower()


def _canonical(params: Mapping[str, str], *, lower_order: bool, table: tuple[str, ...]) -> str:
    """Build one canonical string with the given name order and value encoding."""
    return _join(params, _signed_names(params, lower_order=lower_order), table)


_JAVA_VALUE_TABLE: Final = _value_table(tilde_raw=False, star_escaped=False, brackets_raw=False)


def canonical_string(params: Mapping[str, str]) -> str:
    """Return the string the Java server signs for *params* (spec §2.2).

    *params* are the decoded request parameters; a ``signature`` parameter (any case) is
    skipped, everything else is included.
    """
    return _canonical(params, lower_order=False, table=_JAVA_VALUE_TABLE)


# (lower-cased name order, ~ raw, * as %2a, [ ] raw), the Java form first. Which client
# produces each combination is noted at the end of the line.
_VARIANTS: Final[tuple[tuple[bool, bool, bool, bool], ...]] = (
    (False, False, False, False),  # Java server, our own sign()
    (False, True, False, False),  # cs, cloudmonkey
    (False, True, True, False),  # cloudstack-go (Go QueryEscape)
    (True, True, False, True),  # libcloud, quote(value, safe="[]*")
    (True, True, True, False),  # old libcloud, urlencode
    (True, False, False, False),  # name order only
    (False, False, True, False),  # * only
    (False, False, False, True),  # [ ] only
)

# Value tables by (~ raw, * as %2a, [ ] raw).
_VALUE_TABLES: Final = {
    (tilde, star, brackets): _value_table(tilde_raw=tilde, star_escaped=star, brackets_raw=brackets)
    for tilde in (False, True)
    for star in (False, True)
    for brackets in (False, True)
}


def canonical_variants(params: Mapping[str, str]) -> list[str]:
    """Return the canonical strings a signature for *params* is accepted over.

    The Java form of :func:`canonical_string` comes first, followed by the tolerant
    variants described in the module docstring, without duplicates, in a fixed order.

    A tolerance that the request does not touch (no ``~`` in any value, say, or names
    that sort the same either way) yields the same string as without it, so such a
    variant is not built twice; the list is the same, only cheaper to make.
    """
    names = [name for name in params if name.lower() != "signature"]
    plain_order = _java_order(names)
    lower_order = sorted(names, key=lambda name: (name.lower(), name))
    text = "".join([params[name] for name in names])
    any_lower, any_tilde, any_star = plain_order != lower_order, "~" in text, "*" in text
    any_brackets = "[" in text or "]" in text
    if not (any_lower or any_tilde or any_star or any_brackets):
        return [_join(params, plain_order, _JAVA_VALUE_TABLE)]
    strings: dict[str, None] = {}
    built: set[tuple[bool, bool, bool, bool]] = set()
    for lower, tilde, star, brackets in _VARIANTS:
        key = (lower and any_lower, tilde and any_tilde, star and any_star, brackets and any_brackets)
        if key in built:
            continue
        built.add(key)
        order = lower_order if key[0] else plain_order
        strings.setdefault(_join(params, order, _VALUE_TABLES[key[1:]]), None)
    return list(strings)


def _hmac_sha1_b64(secret: str, message: str) -> bytes:
    """Return base64(HMAC-SHA1(secret, message)) as ASCII bytes.

    Values are percent-encoded, but names are signed as received, so the message may hold any
    character (a non-ASCII parameter name): it is hashed as UTF-8, as Java's getBytes would."""
    return base64.b64encode(hmac.digest(_utf8(secret), _utf8(message), "sha1"))


def sign(params: Mapping[str, str], secret: str) -> str:
    """Return the signature a CloudStack server expects for *params* and *secret*."""
    return _hmac_sha1_b64(secret, canonical_string(params)).decode("ascii")


def verify_signature(params: Mapping[str, str], secret: str, signature: str) -> bool:
    """Tell whether *signature* signs *params* with *secret* in any accepted variant.

    A signature whose ``+`` arrived as a space (a raw ``+`` in a query string) is also
    accepted. Every candidate is compared with :func:`hmac.compare_digest`, and all of them
    are compared, whether or not an earlier one matched.
    """
    received = [_utf8(signature)]
    if " " in signature:
        received.append(_utf8(signature.replace(" ", "+")))
    matched = False
    for variant in canonical_variants(params):
        expected = _hmac_sha1_b64(secret, variant)
        for candidate in received:
            matched |= hmac.compare_digest(expected, candidate)
    return matched


# date "T" time [fraction] zone, where zone is Z, an offset, or the legacy "Z" + offset.
_EXPIRES_RE: Final = re.compile(
    r"""
    (?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})
    [Tt]
    (?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})
    (?:\.(?P<fraction>[0-9]{1,9}))?
    (?:
        (?P<zulu>[Zz])
        (?:(?P<legacy_sign>[+-])(?P<legacy_hours>[0-9]{2}):?(?P<legacy_minutes>[0-9]{2}))?
      |
        (?P<sign>[+-])(?P<hours>[0-9]{2})(?::?(?P<minutes>[0-9]{2}))?
    )
    """,
    re.VERBOSE | re.ASCII,
)


# The longest value _EXPIRES_RE can match: "2024-05-01T12:00:00.123456789Z+00:00".
_EXPIRES_MAX_LENGTH: Final = 36


def parse_expires(value: str) -> float | None:
    """Return the instant of an ``expires`` value as UTC epoch seconds, or ``None``.

    Accepted (spec §2.4): ISO-8601 date and time with a time zone of ``Z``, ``±HH:MM``,
    ``±HHMM`` or ``±HH``, an optional fraction of up to nine digits, and the legacy
    ``yyyy-MM-dd'T'HH:mm:ss'Z'Z`` form (e.g. ``2024-05-01T12:00:00Z+0000``, where the
    offset after the literal ``Z`` is the one that counts). Anything else, including a
    time without a zone, gives ``None``.
    """
    if len(value) > _EXPIRES_MAX_LENGTH:
        return None
    return _parse_expires(value)


# Pure, so the answers for recent values are kept: clients send the same ``expires`` on every
# request they make within a second, and a signed URL may be used many times until it expires.
@functools.lru_cache(maxsize=1024)
def _parse_expires(value: str) -> float | None:
    match = _EXPIRES_RE.fullmatch(value)
    if match is None:
        return None
    if match["legacy_sign"] is not None:
        sign_text, hours, minutes = match["legacy_sign"], match["legacy_hours"], match["legacy_minutes"]
    elif match["sign"] is not None:
        sign_text, hours, minutes = match["sign"], match["hours"], match["minutes"] or "00"
    else:
        sign_text, hours, minutes = "+", "00", "00"
    if int(minutes) > 59:
        return None
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if sign_text == "-":
        offset = -offset
    try:
        when = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=timezone(offset),
        )
        seconds = when.timestamp()
    except (ValueError, OverflowError):
        return None
    fraction = match["fraction"]
    if fraction is not None:
        seconds += int(fraction) / 10 ** len(fraction)
    return seconds
