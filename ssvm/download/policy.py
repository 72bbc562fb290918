"""Which IP addresses a download may connect to (pure).

`AddressPolicy.refusal(address)` answers `None` for an address a download may connect to, or the
name of the class that makes it refused: loopback, link-local, multicast, unspecified, broadcast,
reserved (special-purpose and not globally routable) or private (RFC 1918, CGNAT 100.64/10,
unique-local fc00::/7, site-local fec0::/10). IPv6 forms that carry an IPv4 address (IPv4-mapped
::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4 address.

Everything inside an operator-allowed CIDR (`secstorage.allowed.internal.sites`) is allowed,
whatever its class; an IPv4 CIDR also covers the IPv6 forms of its addresses. The tables are
explicit rather than `ipaddress`'s `is_private`/`is_global`, whose meaning changed between
Python releases.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
MULTICAST = "multicast"
UNSPECIFIED = "unspecified"
BROADCAST = "broadcast"
RESERVED = "reserved"
PRIVATE = "private"
INVALID = "not an IP address"


def _table(rows: Sequence[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), name) for cidr, name in rows)


# Checked in order: the first matching row names the class. Anything unlisted is global.
_IPV4 = _table([
    ("255.255.255.255/32", BROADCAST),
    ("0.0.0.0/8", UNSPECIFIED),  # "this network"; 0.0.0.0 connects to the local host
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),  # includes the metadata address 169.254.169.254
    ("224.0.0.0/4", MULTICAST),
    ("10.0.0.0/8", PRIVATE),
    ("172.16.0.0/12", PRIVATE),
    ("192.168.0.0/16", PRIVATE),
    ("100.64.0.0/10", PRIVATE),  # shared address space (carrier-grade NAT)
    ("192.0.0.0/24", RESERVED),  # IETF protocol assignments
    ("192.0.2.0/24", RESERVED),  # documentation
    ("198.51.100.0/24", RESERVED),
    ("203.0.113.0/24", RESERVED),
    ("198.18.0.0/15", RESERVED),  # benchmarking
    ("192.88.99.0/24", RESERVED),  # deprecated 6to4 relay anycast
    ("240.0.0.0/4", RESERVED),
])

_IPV6 = _table([
    ("::/128", UNSPECIFIED),
    ("::1/128", LOOPBACK),
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", PRIVATE),  # site-local (deprecated)
    ("fc00::/7", PRIVATE),  # unique-local
    ("ff00::/8", MULTICAST),
    ("64:ff9b:1::/48", PRIVATE),  # local-use NAT64
    ("100::/64", RESERVED),  # discard-only
    ("2001::/23", RESERVED),  # IETF protocol assignments (Teredo, ORCHID, benchmarking, ...)
    ("2001:db8::/32", RESERVED),  # documentation
    ("3fff::/20", RESERVED),  # documentation
])
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_address(address: str | IPAddress) -> IPAddress | None:
    """The address as an `ipaddress` object (an IPv6 zone suffix dropped), or None if invalid."""
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address
    text = address.split("%", 1)[0] if ":" in address else address
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify(address: IPAddress) -> str | None:
    """The refused class of `address` ignoring any allowed CIDR, or None for a global address."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, name in _IPV4:
            if address in network:
                return name
        return None
    inner = embedded_ipv4(address)
    if inner is not None:
        inner_name = classify(inner)
        return None if inner_name is None else f"{inner_name}, IPv4 in IPv6"
    for network, name in _IPV6:
        if address in network:
            return name
    if address not in _GLOBAL_UNICAST_V6:
        return RESERVED  # IPv4-compatible ::/96, unassigned space outside 2000::/3
    return None


class AddressPolicy:
    """The refusal rule plus the operator's allowed CIDRs."""

    def __init__(self, allowed_cidrs: Sequence[str] = ()) -> None:
        networks: list[IPNetwork] = []
        for cidr in allowed_cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"allowed CIDR {cidr!r} is not a network: {exc}") from None
        self.allowed: tuple[IPNetwork, ...] = tuple(networks)

    def is_allowed_explicitly(self, address: IPAddress) -> bool:
        """Whether `address` (or the IPv4 address it embeds) lies in an allowed CIDR."""
        candidates: list[IPAddress] = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(candidate in network for candidate in candidates for network in self.allowed
                   if candidate.version == network.version)

    def refusal(self, address: str | IPAddress) -> str | None:
        """None when a download may connect to `address`, else the reason it may not."""
        parsed = parse_address(address)
        if parsed is None:
            return INVALID
        if self.is_allowed_explicitly(parsed):
            return None
        return classify(parsed)

    def allows(self, address: str | IPAddress) -> bool:
        return self.refusal(address) is None

    def __repr__(self) -> str:
        return f"AddressPolicy({[str(n) for n in self.allowed]!r})"
