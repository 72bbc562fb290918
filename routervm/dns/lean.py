"""Sans-IO fast path: complete answers for known names, precomputed (DESIGN.md §6).

`compile_table` turns a `DnsTable` into a dict from the query's bytes after the flags (the four
counts, then the question: name in wire form lower-cased, type, class) to a response template;
`answer` then costs one ``bytes.lower``, one dict lookup, one bit test and one concatenation.  It handles exactly:

* a standard query (QR=0, opcode 0) with QDCOUNT=1 and ANCOUNT=NSCOUNT=ARCOUNT=0 (so no EDNS:
  the library path does not speak EDNS either and answers those),
* class IN, type A, PTR or AAAA, for a name that exists in the table: the records, or NODATA.

Anything else returns ``None`` and goes to the library path (twisted.names): NXDOMAIN, names not
ours, other types, EDNS, malformed input.

The response is what `routervm.dns.server`'s library path sends for the same query, byte for byte
(tests cross-check it): ID and RD copied, QR and AA set, RA when the server recurses for someone,
RCODE 0, the question echoed exactly as received (so 0x20 case randomisation survives), answer
owner names compressed to a pointer at the question (offset 12), TTL `table.TTL`, PTR targets
written in full.  No authority or additional records.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping
from types import MappingProxyType

from routervm.dns.table import TTL, DnsTable, Entry

__all__ = ["LeanTable", "answer", "compile_table", "encode_name"]

_A, _PTR, _AAAA, _IN = 1, 12, 28, 1
_QUERY_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_POINTER_TO_QUESTION = b"\xc0\x0c"

#: counts + question (lower-cased name) → (header bytes 2–11 for RD=0, for RD=1, answer records)
Template = tuple[bytes, bytes, bytes]


class LeanTable:
    """The compiled templates of one `DnsTable`; immutable."""

    __slots__ = ("table", "recursion_available", "templates")

    def __init__(self, table: DnsTable, recursion_available: bool, templates: Mapping[bytes, Template]):
        self.table = table
        self.recursion_available = recursion_available
        self.templates = templates

    def __repr__(self) -> str:
        return f"<LeanTable {len(self.templates)} questions>"


def encode_name(name: str) -> bytes:
    """Wire form of a name (no compression): ``b"\\x04web1\\x05cloud\\x00"``."""
    out = bytearray()
    for label in name.split(".") if name else ():
        raw = label.encode("ascii")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def _records(entry: Entry, qtype: int) -> list[bytes]:
    ttl = struct.pack("!I", TTL)
    if qtype == _A:
        return [
            _POINTER_TO_QUESTION
            + struct.pack("!HH", _A, _IN)
            + ttl
            + b"\x00\x04"
            + ipaddress.IPv4Address(ip).packed
            for ip in entry.addresses
        ]
    if qtype == _PTR and entry.pointer is not None:
        target = encode_name(entry.pointer)
        return [
            _POINTER_TO_QUESTION
            + struct.pack("!HH", _PTR, _IN)
            + ttl
            + struct.pack("!H", len(target))
            + target
        ]
    return []


def compile_table(table: DnsTable, *, recursion_available: bool) -> LeanTable:
    """Precompute every answer `answer` can give for `table`.  `recursion_available` is the RA
    flag the library path sets (true when the server has upstream resolvers)."""
    ra = 0x80 if recursion_available else 0
    templates: dict[bytes, Template] = {}
    for name, entry in table.names().items():
        qname = encode_name(name)
        for qtype in (_A, _PTR, _AAAA):
            rrs = _records(entry, qtype)
            counts = struct.pack("!HHHH", 1, len(rrs), 0, 0)
            head0 = bytes((0x84, ra)) + counts
            head1 = bytes((0x85, ra)) + counts
            templates[_QUERY_COUNTS + qname + struct.pack("!HH", qtype, _IN)] = (head0, head1, b"".join(rrs))
    return LeanTable(table, recursion_available, MappingProxyType(templates))


def answer(query: bytes, table: LeanTable) -> bytes | None:
    """The complete response to `query`, or ``None`` when the lean path does not handle it.
    Never raises for any input bytes."""
    # The key is everything after the flags, lower-cased: the four counts (so a match implies
    # QDCOUNT=1 and no other records) and the question section.  Count bytes and label lengths
    # are below "A" where they can match, so lowering never changes the structure; type, class
    # or count bytes that look like capitals become 0x61-0x7A and can no longer match a template.
    found = table.templates.get(query[4:].lower())
    # QR=0 and opcode 0 (bits 7-3 of byte 2); a match implies at least 17 bytes.
    if found is None or query[2] & 0xF8:
        return None
    return query[:2] + found[query[2] & 1] + query[12:] + found[2]
