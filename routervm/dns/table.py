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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from routervm.records import VmRecord

__all__ = ["DATA_SERVER", "SOA_TIMERS", "TTL", "DnsTable", "Entry", "reverse_name", "soa_owner"]

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
    and to swap by reference."""

    __slots__ = ("domain", "router_ip", "skipped", "_entries")

    def __init__(
        self, domain: str, router_ip: str, entries: Mapping[str, Entry], skipped: tuple[str, ...] = ()
    ) -> None:
        self.domain = domain
        self.router_ip = router_ip
        self.skipped = skipped
        self._entries: Mapping[str, Entry] = MappingProxyType(dict(entries))

    @classmethod
    def build(cls, domain: str, router_ip: str, records: Iterable[VmRecord]) -> DnsTable:
        """The table for one router: `domain` is the network domain (may be empty), `router_ip`
        the router's guest IPv4 address.  Raises `ValueError` for a malformed domain or address."""
        domain = _normalise_name(domain)
        if domain and not all(_LABEL_RE.match(label) for label in domain.split(".")):
            raise ValueError(f"domain {domain!r} is not a valid DNS name")
        router_ip = str(ipaddress.IPv4Address(router_ip))

        # One string per name, shared by the table's keys and the PTR targets (a router holds
        # this table for every VM as long as it runs).
        fqdns: dict[str, str] = {}

        def fqdn(label: str) -> str:
            if not domain:
                return label
            found = fqdns.get(label)
            if found is None:
                found = fqdns[label] = f"{label}.{domain}"
            return found

        addresses: dict[str, list[str]] = {}
        pointers: dict[str, str] = {}
        skipped: list[str] = []
        for record in records:
            host = record.hostname.lower()
            if host == record.hostname:
                host = record.hostname  # the record's own string, not a copy
            if not _LABEL_RE.match(host):
                skipped.append(record.hostname)
                continue
            for nic in record.nics:
                if ":" in nic.ip:  # IPv6 (`Nic.ip` is canonical text)
                    continue
                pointers.setdefault(reverse_name(nic.ip), fqdn(host))
                if nic is record.default_nic and host != DATA_SERVER:
                    found = addresses.setdefault(host, [])
                    if nic.ip not in found:
                        found.append(nic.ip)
        addresses[DATA_SERVER] = [router_ip]
        pointers[reverse_name(router_ip)] = fqdn(DATA_SERVER)

        entries: dict[str, Entry] = {}
        for host, ips in addresses.items():
            entry = Entry(exists=True, addresses=tuple(ips))
            entries[host] = entry
            if domain:
                entries[fqdn(host)] = entry
        for rname, target in pointers.items():
            entries[rname] = Entry(exists=True, pointer=target)
        if domain:
            entries.setdefault(domain, _NODATA)
        return cls(domain, router_ip, entries, tuple(skipped))

    def __repr__(self) -> str:
        return f"<DnsTable domain={self.domain!r} names={len(self._entries)}>"

    def names(self) -> Mapping[str, Entry]:
        """Every existing name (lower case, no trailing dot) and its entry."""
        return self._entries

    def lookup(self, name: str) -> Entry | None:
        """The entry for `name`: `None` when the name is not ours (forward it), an entry with
        ``exists=False`` for NXDOMAIN, else the data (possibly empty: NODATA)."""
        key = _normalise_name(name)
        entry = self._entries.get(key)
        if entry is not None:
            return entry
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
