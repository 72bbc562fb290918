"""The router's static DHCP host list (dnsmasq's `dhcp-hostsfile`) and per-network settings.

Only MACs in the table get answers (router spec section 4.1, `dhcp-ignore=tag:!known`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from routervm.dhcp.packet import INFINITE_LEASE, Route


def parse_mac(text: str) -> bytes:
    """``"02:00:4c:5e:00:02"`` (or ``-`` separated) → 6 bytes. Raises ValueError."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"bad MAC address {text!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class Reservation:
    """One static host: a MAC (6 bytes), its IPv4 address, a host name and whether the NIC is
    its VM's default.  Immutable and slotted, with the address held packed (`packed`; `ip` builds
    the `IPv4Address` on demand): a router holds one per VM NIC for as long as it runs, and the
    fast path answers straight from it."""

    __slots__ = ("mac", "packed", "hostname", "default_nic")

    mac: bytes
    packed: bytes
    hostname: str | None
    default_nic: bool

    def __init__(self, mac: bytes, ip: IPv4Address | bytes, hostname: str | None = None,
                 default_nic: bool = True) -> None:
        """`ip` is an `IPv4Address` or its 4 packed bytes."""
        if len(mac) != 6:
            raise ValueError("a reservation's MAC must be 6 bytes")
        packed = ip.packed if isinstance(ip, IPv4Address) else ip
        if type(packed) is not bytes or len(packed) != 4:
            raise ValueError("a reservation's address must be an IPv4Address or 4 bytes")
        if hostname is not None and not hostname.isascii():
            raise ValueError("host names must be ASCII")
        setter = object.__setattr__
        setter(self, "mac", mac)
        setter(self, "packed", packed)
        setter(self, "hostname", hostname)
        setter(self, "default_nic", default_nic)

    @property
    def ip(self) -> IPv4Address:
        return IPv4Address(self.packed)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Reservation is immutable: cannot set {name}")

    def _fields(self) -> tuple[bytes, bytes, str | None, bool]:
        return self.mac, self.packed, self.hostname, self.default_nic

    def __eq__(self, other: object) -> bool:
        if type(other) is not Reservation:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"Reservation(mac={self.mac!r}, ip={self.ip!r}, hostname={self.hostname!r}, "
                f"default_nic={self.default_nic!r})")


class ReservationTable:
    """Reservations keyed by MAC in a dict. When a list repeats a MAC, the last entry wins."""

    def __init__(self, reservations: Iterable[Reservation] = ()) -> None:
        self._by_mac: dict[bytes, Reservation] = self._index(reservations)

    @staticmethod
    def _index(reservations: Iterable[Reservation]) -> dict[bytes, Reservation]:
        return {r.mac: r for r in reservations}

    def replace_all(self, reservations: Iterable[Reservation]) -> None:
        """Swap in a new host list in one step."""
        self._by_mac = self._index(reservations)

    def lookup(self, mac: bytes) -> Reservation | None:
        return self._by_mac.get(mac)

    def mapping(self) -> Mapping[bytes, Reservation]:
        """The current MAC → reservation mapping (read only). `replace_all` swaps in a new object,
        so an unchanged identity means an unchanged host list: callers key precomputed data on it."""
        return self._by_mac

    def __len__(self) -> int:
        return len(self._by_mac)

    def __contains__(self, mac: object) -> bool:
        return mac in self._by_mac


@dataclass(frozen=True)
class NetworkConfig:
    """What one guest interface hands out (router spec section 4.2).

    `router_ip` is the server identifier and, when `router_dns` is on, the first DNS server.
    `gateway` None (or 0.0.0.0) omits option 3. `dns_servers` are the zone/external servers that
    follow; with `useextdns=true` set `router_dns=False`. A finite `lease_seconds` also sends
    T1 = 50% and T2 = 87.5%; the default is infinite, as CloudStack does, and sends neither.
    `classless_routes` are extra routes for option 121/249 (the default route is added for the
    default NIC).
    """

    router_ip: IPv4Address
    subnet: IPv4Network
    gateway: IPv4Address | None = None
    domain: str | None = None
    dns_servers: tuple[IPv4Address, ...] = ()
    router_dns: bool = True
    lease_seconds: int = INFINITE_LEASE
    classless_routes: tuple[Route, ...] = ()
    mtu: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.lease_seconds <= INFINITE_LEASE:
            raise ValueError("lease_seconds out of range")
        if self.domain is not None and not self.domain.isascii():
            raise ValueError("the domain must be ASCII")
        if self.mtu is not None and not 68 <= self.mtu <= 0xFFFF:
            raise ValueError("bad MTU")

    @property
    def netmask(self) -> IPv4Address:
        return self.subnet.netmask

    @property
    def broadcast(self) -> IPv4Address:
        return self.subnet.broadcast_address

    def dns_list(self) -> tuple[IPv4Address, ...]:
        servers = ((self.router_ip,) if self.router_dns else ()) + self.dns_servers
        return tuple(dict.fromkeys(servers))
