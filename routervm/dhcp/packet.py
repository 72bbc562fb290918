"""Sans-IO DHCPv4 codec (RFC 2131 message format, RFC 2132 options, RFC 3396 long options,
RFC 3442 classless static routes).

`parse` turns a UDP payload into a `DhcpPacket` and raises only `MalformedPacket`; `serialise`
does the reverse. Options are kept as an ordered tuple of ``(code, value)``; several instances of
one code on the wire are concatenated on parse and split again on serialise (RFC 3396).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
BROADCAST_FLAG = 0x8000
MIN_PACKET_SIZE = 300
SERVER_PORT = 67
CLIENT_PORT = 68
INFINITE_LEASE = 0xFFFFFFFF

# Fixed BOOTP header: op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr sname file
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_HEADER_SIZE = _HEADER.size  # 236
_OPTIONS_START = _HEADER_SIZE + len(MAGIC_COOKIE)  # 240

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN = 15
OPT_MTU = 26
OPT_BROADCAST = 28
OPT_VENDOR_SPECIFIC = 43
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_REQUEST_LIST = 55
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_VENDOR_CLASS = 60
OPT_CLIENT_ID = 61
OPT_CLASSLESS_ROUTES = 121
OPT_MS_CLASSLESS_ROUTES = 249
OPT_END = 255

_UNSPECIFIED = IPv4Address("0.0.0.0")

Option = tuple[int, bytes]
Route = tuple[IPv4Network, IPv4Address]


class MalformedPacket(ValueError):
    """The bytes are not a well-formed DHCP message."""


class MessageType(enum.IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


@dataclass(frozen=True)
class DhcpPacket:
    op: int
    xid: int
    chaddr: bytes
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = _UNSPECIFIED
    yiaddr: IPv4Address = _UNSPECIFIED
    siaddr: IPv4Address = _UNSPECIFIED
    giaddr: IPv4Address = _UNSPECIFIED
    sname: bytes = b""
    file: bytes = b""
    options: tuple[Option, ...] = field(default=())

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("op", self.op, 0xFF),
            ("htype", self.htype, 0xFF),
            ("hlen", self.hlen, 0xFF),
            ("hops", self.hops, 0xFF),
            ("xid", self.xid, 0xFFFFFFFF),
            ("secs", self.secs, 0xFFFF),
            ("flags", self.flags, 0xFFFF),
        ):
            if not 0 <= value <= limit:
                raise ValueError(f"{name} out of range: {value}")
        if not 1 <= self.hlen <= 16 or len(self.chaddr) != self.hlen:
            raise ValueError("chaddr length must equal hlen (1..16)")
        if len(self.sname) > 64 or len(self.file) > 128:
            raise ValueError("sname/file too long")
        for code, raw in self.options:
            if not 0 < code < OPT_END or code == OPT_OVERLOAD:
                raise ValueError(f"option code not allowed in options: {code}")
            if not isinstance(raw, bytes):
                raise ValueError(f"option {code} value must be bytes")

    def option(self, code: int) -> bytes | None:
        for c, value in self.options:
            if c == code:
                return value
        return None

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)


# --- parsing ---------------------------------------------------------------------------------------


def _walk_options(data: bytes, where: str) -> tuple[list[Option], bool]:
    """Return the (code, value) instances in one option area and whether END was seen."""
    result: list[Option] = []
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return result, True
        if i + 1 >= n:
            raise MalformedPacket(f"option {code} in {where} has no length byte")
        length = data[i + 1]
        end = i + 2 + length
        if end > n:
            raise MalformedPacket(f"option {code} in {where} is truncated")
        result.append((code, data[i + 2 : end]))
        i = end
    return result, False


def parse(data: bytes) -> DhcpPacket:
    """Decode one DHCP message. Raises `MalformedPacket` and nothing else."""
    try:
        return _parse(bytes(data))
    except MalformedPacket:
        raise
    except Exception as e:  # defensive: the contract is "only MalformedPacket"
        raise MalformedPacket(f"undecodable packet: {e!r}") from e


def _parse(data: bytes) -> DhcpPacket:
    if len(data) < _OPTIONS_START:
        raise MalformedPacket(f"too short: {len(data)} bytes")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname, file) = (
        _HEADER.unpack_from(data)
    )
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise MalformedPacket(f"bad op {op}")
    if not 1 <= hlen <= 16:
        raise MalformedPacket(f"bad hlen {hlen}")
    if htype == HTYPE_ETHERNET and hlen != 6:
        raise MalformedPacket(f"bad hlen {hlen} for ethernet")
    if data[_HEADER_SIZE:_OPTIONS_START] != MAGIC_COOKIE:
        raise MalformedPacket("bad magic cookie")

    instances, _ = _walk_options(data[_OPTIONS_START:], "options")
    overload = 0
    for code, value in instances:
        if code == OPT_OVERLOAD:
            if len(value) != 1 or value[0] not in (1, 2, 3):
                raise MalformedPacket("bad option overload")
            overload = value[0]
    # RFC 3396: the concatenation order is options, then file, then sname.
    if overload & 1:
        more, _ = _walk_options(file, "file")
        instances.extend(more)
    if overload & 2:
        more, _ = _walk_options(sname, "sname")
        instances.extend(more)

    merged: dict[int, bytes] = {}
    for code, value in instances:
        if code == OPT_OVERLOAD:
            continue
        merged[code] = merged.get(code, b"") + value

    return DhcpPacket(
        op=op,
        htype=htype,
        hlen=hlen,
        hops=hops,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=IPv4Address(ciaddr),
        yiaddr=IPv4Address(yiaddr),
        siaddr=IPv4Address(siaddr),
        giaddr=IPv4Address(giaddr),
        chaddr=chaddr[:hlen],
        sname=b"" if overload & 2 else sname.rstrip(b"\x00"),
        file=b"" if overload & 1 else file.rstrip(b"\x00"),
        options=tuple(merged.items()),
    )


# --- fast reading of requests (the server's hot path) ---------------------------------------------

# The options `scan_request` reports: all that the fast reply path in `logic` reads.
_SCANNED = frozenset(
    (OPT_MESSAGE_TYPE, OPT_REQUESTED_IP, OPT_SERVER_ID, OPT_PARAMETER_REQUEST_LIST, OPT_VENDOR_CLASS)
)
_ETHERNET_REQUEST = bytes((BOOTREQUEST, HTYPE_ETHERNET, 6))


def scan_request(data: bytes) -> dict[int, bytes] | None:
    """The raw values of the options in `_SCANNED` of an Ethernet BOOTREQUEST that `parse` accepts,
    building no objects for the other options and no header fields (read those straight from
    `data`: xid 4:8, flags 10:12, ciaddr 12:16, giaddr 24:28, chaddr 28:34).

    None whenever the answer might differ from `parse`'s or `parse` might reject the packet: not an
    Ethernet BOOTREQUEST, bad cookie, truncated options, option overload (52), or a scanned option
    given more than once (RFC 3396 concatenation). Callers then take the general path."""
    n = len(data)
    if (
        n < _OPTIONS_START
        or data[:3] != _ETHERNET_REQUEST
        or data[_HEADER_SIZE:_OPTIONS_START] != MAGIC_COOKIE
    ):
        return None
    found: dict[int, bytes] = {}
    scanned = _SCANNED
    i = _OPTIONS_START
    while i < n:
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            break
        if i + 1 >= n:
            return None
        end = i + 2 + data[i + 1]
        if end > n:
            return None
        if code in scanned:
            if code in found:
                return None
            found[code] = data[i + 2 : end]
        elif code == OPT_OVERLOAD:
            return None
        i = end
    return found


# --- serialising -----------------------------------------------------------------------------------


def encode_option(code: int, value: bytes) -> bytes:
    """One option, split into 255-byte instances when longer (RFC 3396)."""
    if not value:
        return bytes((code, 0))
    out = bytearray()
    for start in range(0, len(value), 255):
        chunk = value[start : start + 255]
        out += bytes((code, len(chunk))) + chunk
    return bytes(out)


def encode_options(options: Iterable[Option]) -> bytes:
    """The wire form of `options` as `serialise` writes them (no END, no padding)."""
    return b"".join(encode_option(code, value) for code, value in options)


def serialise(packet: DhcpPacket) -> bytes:
    header = _HEADER.pack(
        packet.op,
        packet.htype,
        packet.hlen,
        packet.hops,
        packet.xid,
        packet.secs,
        packet.flags,
        packet.ciaddr.packed,
        packet.yiaddr.packed,
        packet.siaddr.packed,
        packet.giaddr.packed,
        packet.chaddr,
        packet.sname,
        packet.file,
    )
    body = bytearray(header + MAGIC_COOKIE)
    for code, value in packet.options:
        body += encode_option(code, value)
    body.append(OPT_END)
    if len(body) < MIN_PACKET_SIZE:
        body += bytes(MIN_PACKET_SIZE - len(body))
    return bytes(body)


# --- reading common options (never raise: bad values read as absent) -------------------------------


def message_type(packet: DhcpPacket) -> MessageType | None:
    value = packet.option(OPT_MESSAGE_TYPE)
    if value is None or len(value) != 1:
        return None
    try:
        return MessageType(value[0])
    except ValueError:
        return None


def _address_option(packet: DhcpPacket, code: int) -> IPv4Address | None:
    value = packet.option(code)
    if value is None or len(value) != 4:
        return None
    return IPv4Address(value)


def requested_ip(packet: DhcpPacket) -> IPv4Address | None:
    return _address_option(packet, OPT_REQUESTED_IP)


def server_id(packet: DhcpPacket) -> IPv4Address | None:
    return _address_option(packet, OPT_SERVER_ID)


def parameter_request_list(packet: DhcpPacket) -> tuple[int, ...]:
    value = packet.option(OPT_PARAMETER_REQUEST_LIST)
    return tuple(value) if value else ()


def client_id(packet: DhcpPacket) -> bytes | None:
    return packet.option(OPT_CLIENT_ID)


def hostname(packet: DhcpPacket) -> str | None:
    value = packet.option(OPT_HOSTNAME)
    if value is None:
        return None
    return value.rstrip(b"\x00").decode("utf-8", errors="replace")


def vendor_class(packet: DhcpPacket) -> bytes | None:
    return packet.option(OPT_VENDOR_CLASS)


def is_msft_client(packet: DhcpPacket) -> bool:
    value = vendor_class(packet)
    return value is not None and value.startswith(b"MSFT")


# --- encoders --------------------------------------------------------------------------------------


def _addresses(code: int, addresses: Iterable[IPv4Address]) -> Option:
    return code, b"".join(a.packed for a in addresses)


def _u32(code: int, seconds: int) -> Option:
    if not 0 <= seconds <= 0xFFFFFFFF:
        raise ValueError(f"option {code} value out of range: {seconds}")
    return code, struct.pack("!I", seconds)


def _text(code: int, text: str) -> Option:
    raw = text.encode("ascii")
    if not raw:
        raise ValueError(f"option {code} must not be empty")
    return code, raw


def opt_subnet_mask(mask: IPv4Address) -> Option:
    return OPT_SUBNET_MASK, mask.packed


def opt_router(routers: Sequence[IPv4Address]) -> Option:
    """An empty sequence gives the zero-length option dnsmasq sends to non-default NICs."""
    return _addresses(OPT_ROUTER, routers)


def opt_dns(servers: Sequence[IPv4Address]) -> Option:
    return _addresses(OPT_DNS, servers)


def opt_hostname(name: str) -> Option:
    return _text(OPT_HOSTNAME, name)


def opt_domain(domain: str) -> Option:
    return _text(OPT_DOMAIN, domain)


def opt_mtu(mtu: int) -> Option:
    if not 68 <= mtu <= 0xFFFF:
        raise ValueError(f"bad MTU {mtu}")
    return OPT_MTU, struct.pack("!H", mtu)


def opt_broadcast(address: IPv4Address) -> Option:
    return OPT_BROADCAST, address.packed


def opt_lease_time(seconds: int) -> Option:
    return _u32(OPT_LEASE_TIME, seconds)


def opt_renewal_time(seconds: int) -> Option:
    return _u32(OPT_RENEWAL_TIME, seconds)


def opt_rebinding_time(seconds: int) -> Option:
    return _u32(OPT_REBINDING_TIME, seconds)


def opt_server_id(address: IPv4Address) -> Option:
    return OPT_SERVER_ID, address.packed


def opt_message_type(kind: MessageType) -> Option:
    return OPT_MESSAGE_TYPE, bytes((kind,))


def encode_classless_routes(routes: Sequence[Route]) -> bytes:
    """RFC 3442 section 3: width, significant destination octets, router."""
    out = bytearray()
    for network, router in routes:
        width = network.prefixlen
        out.append(width)
        out += network.network_address.packed[: (width + 7) // 8]
        out += router.packed
    return bytes(out)


def decode_classless_routes(value: bytes) -> list[Route]:
    routes: list[Route] = []
    i = 0
    while i < len(value):
        width = value[i]
        if width > 32:
            raise MalformedPacket(f"bad classless route width {width}")
        significant = (width + 7) // 8
        end = i + 1 + significant + 4
        if end > len(value):
            raise MalformedPacket("truncated classless route")
        destination = value[i + 1 : i + 1 + significant] + bytes(4 - significant)
        try:
            network = IPv4Network((destination, width))
        except ValueError as e:
            raise MalformedPacket(f"classless route has host bits set: {e}") from e
        routes.append((network, IPv4Address(value[end - 4 : end])))
        i = end
    return routes


def opt_classless_routes(routes: Sequence[Route]) -> Option:
    return OPT_CLASSLESS_ROUTES, encode_classless_routes(routes)


def opt_ms_classless_routes(routes: Sequence[Route]) -> Option:
    return OPT_MS_CLASSLESS_ROUTES, encode_classless_routes(routes)


# MS-DHCPE 2.2.9 "Release DHCP Lease on Shutdown": vendor sub-option 2, a 4-byte value of 1.
# This is what CloudStack's `dhcp-option=vendor:MSFT,2,1i` makes dnsmasq send.
MS_RELEASE_ON_SHUTDOWN = b"\x02\x04\x00\x00\x00\x01"


def opt_ms_release_on_shutdown() -> Option:
    return OPT_VENDOR_SPECIFIC, MS_RELEASE_ON_SHUTDOWN
