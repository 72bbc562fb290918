"""Sans-IO fast path: complete answers for the router's own names, precomputed (DESIGN.md §6).

`compile_table` wraps a `DnsTable`, whose names are held in wire form lower-cased
(`DnsTable.forward`, `DnsTable.reverse`), with the few header variants and negative answers its
responses share; nothing is stored per name beyond the table itself (a router holds it for every
VM as long as it runs).  For a plain query `answer` then costs one ``bytes.lower``, one dict
lookup and a few comparisons and concatenations.  It handles exactly:

* a standard query (QR=0, opcode 0) with QDCOUNT=1, ANCOUNT=NSCOUNT=0 and either no additional
  record or one EDNS OPT record (RFC 6891) of version 0 ending the datagram, with well-formed
  options (which are ignored: no cookies, no ECS);
* class IN, type A, PTR or AAAA, for a name that exists in the table: the records, or NODATA;
* class IN, any type, for a name in the network's domain that does not exist: NXDOMAIN; and for
  an unknown single-label name: NXDOMAIN.

Anything else returns ``None`` and goes to the library path (twisted.names): other types of
known names, names not ours, private reverse names, EDNS versions other than 0, several OPT
records, names with a ``.`` inside a label, malformed input, and an answer too large for the
client's UDP size (the library path truncates).

The response is what `routervm.dns.server`'s library path sends for the same query, byte for byte
(tests cross-check it): ID and RD copied, QR and AA set, RA when the server recurses for someone,
the question echoed exactly as received (so 0x20 case randomisation survives), answer owner names
compressed to a pointer at the question (offset 12), TTL `table.TTL`, PTR targets written in full;
for a name in the domain with no answer, the domain's SOA in the authority section, its names
compressed to the question's own spelling of the domain.  With EDNS: one OPT record in the
additional section, version 0, UDP payload size `EDNS_UDP_SIZE`, DO clear (no DNSSEC here), no
options.
"""

from __future__ import annotations

import struct

from routervm.dns.table import SOA_TIMERS, TTL, DnsTable, encode_name

__all__ = ["EDNS_UDP_SIZE", "LeanTable", "answer", "compile_table", "encode_name", "opt_record"]

_A, _PTR, _AAAA, _SOA, _IN = 1, 12, 28, 6, 1
_QUERY_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_EDNS_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00"  # QDCOUNT 1, AN 0, NS 0, AR high byte 0
_POINTER_TO_QUESTION = b"\xc0\x0c"
_OPT_PREFIX = b"\x00\x00\x29"  # root owner name, type OPT
_ONE_COOKIE = b"\x00\x0c\x00\x0a\x00\x08"  # RDLENGTH 12: one COOKIE option of 8 bytes
#: The UDP payload size this server advertises (RFC 6891 §6.2.5; the 2020 DNS flag day value,
#: dnsmasq's default too).
EDNS_UDP_SIZE = 1232
#: The response size a client without EDNS accepts over UDP (RFC 1035 §4.2.1).
_PLAIN_UDP_SIZE = 512
_NXDOMAIN = 3


def opt_record(extended_rcode: int = 0) -> bytes:
    """Our OPT record: version 0, `EDNS_UDP_SIZE`, DO clear, no options."""
    return _OPT_PREFIX + struct.pack("!HBBHH", EDNS_UDP_SIZE, extended_rcode, 0, 0, 0)


_OPT = opt_record()

#: Header bytes 2-11 of a response, indexed by ``RD + 2 * EDNS``.
Heads = tuple[bytes, bytes, bytes, bytes]
#: (heads, the answer and authority records)
Template = tuple[Heads, bytes]

_TYPE_A, _TYPE_PTR, _TYPE_AAAA, _CLASS_IN = b"\x00\x01", b"\x00\x0c", b"\x00\x1c", b"\x00\x01"
_A_IN = _TYPE_A + _CLASS_IN
#: An A record up to its address, owner compressed to the question.
_A_RR = _POINTER_TO_QUESTION + struct.pack("!HHIH", _A, _IN, TTL, 4)
#: A PTR record up to its target, by the target's length.
_PTR_RRS = tuple(_POINTER_TO_QUESTION + struct.pack("!HHIH", _PTR, _IN, TTL, n) for n in range(256))


class LeanTable:
    """What `answer` needs for one `DnsTable`; immutable but for a small cache of NODATA answers
    (one per position of the domain in a question).  `domain_wire` is the domain in wire form
    lower-cased (empty when there is no domain); `soa_parts` the SOA record around its three
    pointers to the owner name."""

    __slots__ = ("table", "recursion_available", "forward", "reverse", "domain_wire", "soa_parts", "nx_heads",
                 "one_heads", "_nodata")

    def __init__(self, table: DnsTable, recursion_available: bool):
        self.table = table
        self.recursion_available = recursion_available
        self.forward = table.forward
        self.reverse = table.reverse
        self.domain_wire = encode_name(table.domain) if table.domain else b""
        self.soa_parts = _soa_parts(table.domain) if table.domain else (b"", b"", b"")
        ra = 0x80 if recursion_available else 0
        self.nx_heads = (
            _heads(ra | _NXDOMAIN, 0, 1), _heads(ra | _NXDOMAIN, 0, 0),  # with SOA, without
        )
        self.one_heads = _heads(ra, 1, 0)  # one A or PTR record
        self._nodata: dict[int, Template] = {}

    def __repr__(self) -> str:
        return f"<LeanTable {len(self.forward) + len(self.reverse)} names>"

    def nodata(self, name: bytes) -> Template:
        """The NODATA answer for the known wire name `name` (lower case): the domain's SOA,
        pointing into the question, when the name is in the domain."""
        domain = self.domain_wire
        offset = 0
        if domain and name.endswith(domain) and _label_start(name, len(name) - len(domain)):
            offset = 12 + len(name) - len(domain)
        found = self._nodata.get(offset)
        if found is None:
            ra = 0x80 if self.recursion_available else 0
            found = (_heads(ra, 0, 1), _soa(self, offset)) if offset else (_heads(ra, 0, 0), b"")
            self._nodata[offset] = found
        return found

    def template(self, question: bytes) -> Template | None:
        """The answer to `question` (wire name lower-cased, type, class), or None when it is
        not a known name with type A, PTR or AAAA and class IN.  A match implies the question is
        exactly one well-formed name, type and class."""
        if question[-2:] != _CLASS_IN:
            return None
        qtype = question[-4:-2]
        name = question[:-4]
        if qtype == _TYPE_A:
            ips = self.forward.get(name)
            if ips is None:
                return self.nodata(name) if name in self.reverse else None
            if len(ips) == 4:
                return self.one_heads, _A_RR + ips
            if not ips:
                return self.nodata(name)
            count = len(ips) // 4
            ra = 0x80 if self.recursion_available else 0
            return _heads(ra, count, 0), b"".join(_A_RR + ips[i : i + 4] for i in range(0, len(ips), 4))
        if qtype == _TYPE_PTR:
            target = self.reverse.get(name)
            if target is not None:
                return self.one_heads, _PTR_RRS[len(target)] + target
            return self.nodata(name) if name in self.forward else None
        if qtype == _TYPE_AAAA and (name in self.forward or name in self.reverse):
            return self.nodata(name)
        return None


def _soa_parts(domain: str) -> tuple[bytes, bytes, bytes]:
    """The SOA record as ``owner + parts[0] + owner + parts[1] + owner + parts[2]`` where owner
    is a two-byte pointer to the domain: mname ``data-server.<domain>``, rname
    ``hostmaster.<domain>``."""
    mname, rname = b"\x0bdata-server", b"\x0ahostmaster"
    timers = struct.pack("!5I", *SOA_TIMERS)
    rdlength = len(mname) + 2 + len(rname) + 2 + len(timers)
    return (
        struct.pack("!HHIH", _SOA, _IN, TTL, rdlength) + mname,
        rname,
        timers,
    )


def _soa(table: LeanTable, offset: int) -> bytes:
    pointer = struct.pack("!H", 0xC000 | offset)
    a, b, c = table.soa_parts
    return pointer + a + pointer + b + pointer + c


_shared: dict[bytes | tuple[int, int, int], object] = {}


def _heads(flags2: int, ancount: int, nscount: int) -> Heads:
    """The four header variants (RD 0/1, EDNS no/yes), shared between equal templates."""
    key = (flags2, ancount, nscount)
    found = _shared.get(key)
    if found is None:
        found = tuple(
            bytes((0x84 | rd, flags2)) + struct.pack("!HHHH", 1, ancount, nscount, edns)
            for edns in (0, 1)
            for rd in (0, 1)
        )
        _shared[key] = found
    return found  # type: ignore[return-value]


def compile_table(table: DnsTable, *, recursion_available: bool) -> LeanTable:
    """What `answer` needs for `table`.  `recursion_available` is the RA flag the library path
    sets (true when the server has upstream resolvers)."""
    return LeanTable(table, recursion_available)


def answer(query: bytes, table: LeanTable) -> bytes | None:
    """The complete response to `query`, or ``None`` when the lean path does not handle it.
    Never raises for any input bytes."""
    # The four counts are compared as sent (QDCOUNT=1, no other records) and the question is
    # looked up lower-cased (`LeanTable.template`: a match means one well-formed known name, its
    # type and class).  Label lengths are below "A", so lowering never changes the structure;
    # type or class bytes that look like capitals become 0x61-0x7A and can no longer match.
    if query[4:12] == _QUERY_COUNTS:
        # The commonest question first, inline: one address for a known name.
        if query[-4:] == _A_IN:
            ips = table.forward.get(query[12:-4].lower())
            if ips is not None and len(ips) == 4 and not query[2] & 0xF8:
                # At most 2 + 10 + 259 + 16 bytes: always within 512.
                return query[:2] + table.one_heads[query[2] & 1] + query[12:] + _A_RR + ips
        found = table.template(query[12:].lower())
        if found is None:
            return _answer_other(query, table)
        # QR=0 and opcode 0 (bits 7-3 of byte 2); a match implies at least 17 bytes.
        if query[2] & 0xF8:
            return None
        out = query[:2] + found[0][query[2] & 1] + query[12:] + found[1]
        return out if len(out) <= _PLAIN_UDP_SIZE else None
    if query[11:12] == b"\x01" and query[4:11] == _EDNS_COUNTS:
        # The OPT records dig (one client cookie, RFC 7873) and most stubs (no option) send:
        # when the bytes before such a record are a whole known question, that is the parse.
        tail = query[-23:]
        if tail[9:15] == _ONE_COOKIE and tail[:3] == _OPT_PREFIX:
            question = query[12:-23]
        else:
            tail = query[-11:]
            question = query[12:-11] if tail[:3] == _OPT_PREFIX and tail[9:] == b"\x00\x00" else b""
        found = None
        if question[-4:] == _A_IN:
            ips = table.forward.get(question[:-4].lower())
            if ips is not None and len(ips) == 4:
                if not tail[6] and not query[2] & 0xF8:
                    # At most 2 + 10 + 259 + 16 + 11 bytes: within any size.
                    return query[:2] + table.one_heads[2 | query[2] & 1] + question + _A_RR + ips + _OPT
            else:
                found = table.template(question.lower())
        elif question:
            found = table.template(question.lower())
        if found is not None and not tail[6] and not query[2] & 0xF8:
            out = query[:2] + found[0][2 | query[2] & 1] + question + found[1] + _OPT
            if len(out) <= _PLAIN_UDP_SIZE or len(out) <= min(tail[3] << 8 | tail[4], EDNS_UDP_SIZE):
                return out
    return _answer_other(query, table)


def _answer_other(query: bytes, table: LeanTable) -> bytes | None:
    """EDNS queries for known names, and NXDOMAIN; `None` for anything else."""
    size = len(query)
    if size < 17 or query[2] & 0xF8 or query[4:10] != b"\x00\x01\x00\x00\x00\x00" or query[10]:
        return None
    # The question name: plain labels only (no compression pointer, no reserved label type).
    end = 12
    labels = 0
    while True:
        length = query[end]
        if length == 0:
            break
        if length > 63:
            return None
        labels += 1
        end += length + 1
        if end >= size:
            return None
    qend = end + 5  # after the root label, type and class
    if qend > size or end - 12 > 254:
        return None
    additional = query[11]
    if additional == 0:
        if qend != size:
            return None
        limit = _PLAIN_UDP_SIZE
        opt = b""
    elif additional == 1:
        # One OPT record ending the datagram: owner root, version 0, options well formed.
        if query[qend : qend + 3] != _OPT_PREFIX or size < qend + 11 or query[qend + 6]:
            return None
        rdlength = query[qend + 9] << 8 | query[qend + 10]
        if qend + 11 + rdlength != size:
            return None
        at = qend + 11
        while at < size:
            if at + 4 > size:
                return None
            at += 4 + (query[at + 2] << 8 | query[at + 3])
        if at != size:
            return None
        limit = min(max(query[qend + 3] << 8 | query[qend + 4], _PLAIN_UDP_SIZE), EDNS_UDP_SIZE)
        opt = _OPT
    else:
        return None
    rd = query[2] & 1
    question = query[12:qend]
    lowered = question.lower()
    found = table.template(lowered)
    if found is not None:
        out = query[:2] + found[0][rd + 2 * additional] + question + found[1] + opt
        return out if len(out) <= limit else None
    # Not a known (name, type): NXDOMAIN when the name is ours and does not exist.
    if question[-2:] != b"\x00\x01" or labels == 0 or b"." in question:
        return None
    name = lowered[:-4]
    qtype = question[-4:-2]
    if qtype not in (_TYPE_A, _TYPE_PTR, _TYPE_AAAA) and (name in table.forward or name in table.reverse):
        return None  # the name exists: the library answers its other types
    domain = table.domain_wire
    if domain and name.endswith(domain) and _label_start(question, len(name) - len(domain)):
        heads = table.nx_heads[0]
        authority = _soa(table, 12 + len(name) - len(domain))
    elif labels == 1:
        heads = table.nx_heads[1]
        authority = b""
    else:
        return None
    out = query[:2] + heads[rd + 2 * additional] + question + authority + opt
    return out if len(out) <= limit else None


def _label_start(question: bytes, offset: int) -> bool:
    """Whether a label of the wire name at the start of `question` starts at `offset`."""
    at = 0
    while at < offset:
        at += question[at] + 1
    return at == offset
