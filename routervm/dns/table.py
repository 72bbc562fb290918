"""The router's authoritative DNS data, built from the VM records (router.md §5, checklist 17–18).

What is served, all with class IN and TTL 0 (dnsmasq's default for local data):

* ``<hostname>.<domain>`` and the single label ``<hostname>`` → A, the IPv4 address of the VM's
  default NIC (`VmRecord.default_nic`).  Only the default NIC gets the forward name: it is the NIC
  DHCP hands the name and the gateway to, so the name means the same address on every network.
  Two VMs with one host name both get an A record (as two hosts-file lines would in dnsmasq).
* PTR for *every* IPv4 address of every NIC → ``<hostname>.<domain>`` (``<hostname>`` when the
  network has no domain).
* ``data-server`` and ``data-server.<domain>`` → A, the router's guest address; its PTR →
  ``data-server.<domain>``.  A VM called ``data-server`` does not shadow the router.
* IPv6 NIC addresses are not served (no AAAA, no ``ip6.arpa``); AAAA for a known name is NODATA.
* Host names that are not one valid DNS label (letters, digits, ``-``, ``_``; 1–63 characters) are
  skipped and listed in `DnsTable.skipped`.

Which names are "ours" (answered from here, never forwarded):

* the domain itself and every name below it: unknown ones are NXDOMAIN (``local=/<domain>/``);
* every single-label name: unknown ones are NXDOMAIN (dnsmasq ``domain-needed``);
* the full reverse name (``d.c.b.a.in-addr.arpa``) of any address in a private, loopback or
  link-local range, and of every address served: unknown ones are NXDOMAIN (``bogus-priv``).

Everything else is not ours: the server forwards it (or refuses it to clients outside the guest
networks).  Names compare case-insensitively; a trailing dot is ignored.

Negative answers about names in the network's domain (NXDOMAIN, and NODATA for a name that
exists) carry the domain's SOA in the authority section (RFC 2308 §3): ``<domain> SOA
data-server.<domain> hostmaster.<domain>`` with `SOA_TIMERS`.  Its TTL and its minimum are 0, like
every local answer: a guest must not cache the absence of a VM that is about to be created.  The
SOA's names are written relative to the question's own spelling of the domain, so a response
compresses them to pointers into the question whatever its case (`soa_owner`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from routervm.records import VmRecord

__all__ = [
    "DATA_SERVER", "SOA_TIMERS", "TTL", "DnsTable", "Entry", "decode_name", "encode_name", "reverse_name",
    "soa_owner",
]

#: The name guests use to find the router (cloud-init's CloudStack datasource).
DATA_SERVER = "data-server"
#: TTL of every local answer, in seconds.
TTL = 0
#: The domain's SOA: serial, refresh, retry, expire, minimum (the negative-caching TTL, RFC 2308 §4).
SOA_TIMERS = (1, 3600, 600, 86400, 0)

_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_PRIVATE_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16")
)


@dataclass(frozen=True, slots=True)
class Entry:
    """What the table holds for one name that is ours.  ``exists`` is false for NXDOMAIN;
    an existing name with neither addresses nor pointer answers NODATA to every type."""

    exists: bool
    addresses: tuple[str, ...] = ()
    pointer: str | None = None


_NXDOMAIN = Entry(exists=False)
_NODATA = Entry(exists=True)


def reverse_name(ip: str) -> str:
    """``10.1.1.50`` → ``50.1.1.10.in-addr.arpa``."""
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def soa_owner(name: bytes, domain: str) -> bytes | None:
    """The trailing labels of `name` (as sent, case kept) that spell `domain`, when `name` is the
    domain or below it; else ``None`` (no domain, or the name is outside it)."""
    if not domain:
        return None
    want = domain.count(".") + 1
    labels = name.rstrip(b".").split(b".")
    if len(labels) < want:
        return None
    owner = b".".join(labels[-want:])
    return owner if owner.lower() == domain.encode("ascii") else None


def _normalise_name(name: str) -> str:
    return name.lower().rstrip(".") if name != "." else ""


def _private_reverse(name: str) -> bool:
    if not name.endswith(".in-addr.arpa"):
        return False
    parts = name[: -len(".in-addr.arpa")].split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return False
    try:
        address = ipaddress.IPv4Address(".".join(reversed(parts)))
    except ValueError:
        return False
    return any(address in net for net in _PRIVATE_V4)


class DnsTable:
    """Immutable authoritative data; build with `DnsTable.build`.  Safe to share between threads
    and to swap by reference.

    Names are held once, in DNS wire form, lower case (`encode_name`): the form a query carries
    them in, so the lean path (`routervm.dns.lean`) looks them up as they are and writes PTR
    targets from them, and no per-name answer is stored anywhere.  `forward` maps every forward
    name to its IPv4 addresses, packed and concatenated (4 bytes each; empty for a name that
    exists without addresses, such as the domain); `reverse` maps every reverse name to its PTR
    target, the very object that is that target's key in `forward` when the target is served.
    A host name and its FQDN share one address value.  A router holds this table for every VM as
    long as it runs: three keys, one address value and two dict slots per VM."""

    __slots__ = ("domain", "router_ip", "skipped", "forward", "reverse")

    def __init__(self, domain: str, router_ip: str, forward: dict[bytes, bytes], reverse: dict[bytes, bytes],
                 skipped: tuple[str, ...] = ()) -> None:
        self.domain = domain
        self.router_ip = router_ip
        self.skipped = skipped
        # Plain dicts, typed read-only: the lean path looks up in them for every query.
        self.forward: Mapping[bytes, bytes] = forward
        self.reverse: Mapping[bytes, bytes] = reverse

    @classmethod
    def build(cls, domain: str, router_ip: str, records: Iterable[VmRecord]) -> DnsTable:
        """The table for one router: `domain` is the network domain (may be empty), `router_ip`
        the router's guest IPv4 address.  Raises `ValueError` for a malformed domain or address."""
        domain = _normalise_name(domain)
        if domain and not all(_LABEL_RE.match(label) for label in domain.split(".")):
            raise ValueError(f"domain {domain!r} is not a valid DNS name")
        router_ip = str(ipaddress.IPv4Address(router_ip))
        domain_wire = encode_name(domain) if domain else b""

        # One wire name per host label for its FQDN, shared by its `forward` key and the PTR
        # targets that name it.
        fqdns: dict[str, bytes] = {}

        def fqdn(label: str) -> bytes:
            found = fqdns.get(label)
            if found is None:
                raw = label.encode("ascii")
                found = fqdns[label] = bytes((len(raw),)) + raw + (domain_wire or b"\x00")
            return found

        addresses: dict[str, list[bytes]] = {}
        pointers: dict[bytes, bytes] = {}
        skipped: list[str] = []
        for record in records:
            host = record.hostname.lower()
            if not _LABEL_RE.match(host):
                skipped.append(record.hostname)
                continue
            for nic in record.nics:
                if ":" in nic.ip:  # IPv6 (`Nic.ip` is canonical text)
                    continue
                pointers.setdefault(encode_name(reverse_name(nic.ip)), fqdn(host))
                if nic is record.default_nic and host != DATA_SERVER:
                    packed = socket.inet_aton(nic.ip)
                    found = addresses.setdefault(host, [])
                    if packed not in found:
                        found.append(packed)
        addresses[DATA_SERVER] = [socket.inet_aton(router_ip)]
        pointers[encode_name(reverse_name(router_ip))] = fqdn(DATA_SERVER)

        forward: dict[bytes, bytes] = {}
        for host, ips in addresses.items():
            value = ips[0] if len(ips) == 1 else b"".join(ips)
            if domain:
                raw = host.encode("ascii")
                forward[bytes((len(raw),)) + raw + b"\x00"] = value
            forward[fqdn(host)] = value
        for rname in pointers:
            forward.pop(rname, None)  # a reverse name is only ever a reverse name
        if domain and domain_wire not in pointers:
            forward.setdefault(domain_wire, b"")
        return cls(domain, router_ip, forward, pointers, tuple(skipped))

    def __repr__(self) -> str:
        return f"<DnsTable domain={self.domain!r} names={len(self.forward) + len(self.reverse)}>"

    def names(self) -> Mapping[str, Entry]:
        """Every existing name (lower case, no trailing dot) and its entry, built on each call
        (for inspection and tests; the servers use `lookup`, `forward` and `reverse`)."""
        result = {decode_name(wire): _forward_entry(ips) for wire, ips in self.forward.items()}
        result.update((decode_name(wire), _reverse_entry(target)) for wire, target in self.reverse.items())
        return MappingProxyType(result)

    def lookup(self, name: str) -> Entry | None:
        """The entry for `name`: `None` when the name is not ours (forward it), an entry with
        ``exists=False`` for NXDOMAIN, else the data (possibly empty: NODATA)."""
        key = _normalise_name(name)
        wire = _wire_key(key)
        if wire is not None:
            ips = self.forward.get(wire)
            if ips is not None:
                return _forward_entry(ips)
            target = self.reverse.get(wire)
            if target is not None:
                return _reverse_entry(target)
        if not key:
            return None
        if "." not in key:
            return _NXDOMAIN
        domain = self.domain
        if domain and (key == domain or key.endswith("." + domain)):
            return _NXDOMAIN
        if _private_reverse(key):
            return _NXDOMAIN
        return None


def encode_name(name: str) -> bytes:
    """Wire form of a name (no compression): ``b"\\x04web1\\x05cloud\\x00"``."""
    out = bytearray()
    for label in name.split(".") if name else ():
        raw = label.encode("ascii")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def decode_name(wire: bytes) -> str:
    """The text of a wire name `encode_name` wrote: ``b"\\x04web1\\x00"`` → ``"web1"``."""
    labels = []
    at = 0
    while wire[at]:
        labels.append(wire[at + 1 : at + 1 + wire[at]].decode("ascii"))
        at += 1 + wire[at]
    return ".".join(labels)


def _wire_key(name: str) -> bytes | None:
    """`name` (normalised) in wire form, or None when it cannot be one of the table's names."""
    if not name:
        return None
    try:
        return encode_name(name)
    except (UnicodeEncodeError, ValueError):  # not ASCII, or a label longer than 255
        return None


def _forward_entry(ips: bytes) -> Entry:
    if not ips:
        return _NODATA
    return Entry(exists=True, addresses=tuple(socket.inet_ntoa(ips[i : i + 4]) for i in range(0, len(ips), 4)))


def _reverse_entry(target: bytes) -> Entry:
    return Entry(exists=True, pointer=decode_name(target))
