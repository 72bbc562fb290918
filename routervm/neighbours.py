"""Which MAC address sent traffic from a guest IP: the router's view of its IPv4 neighbours.

The metadata and password services identify a guest by the (interface, MAC, IP) triple
(DESIGN.md §5, security.md 19–20).  A TCP connection only tells the IP; the MAC comes from the
kernel's neighbour (ARP) table, which the kernel fills from the very ARP exchange the guest needed
to reach the router.

`ProcArpNeighbours` reads ``/proc/net/arp`` (an in-memory kernel read, no disk I/O) and keeps the
parsed table for ``max_age`` seconds on the injected clock; a lookup that misses re-reads the table
unless the same (interface, address) already missed within ``miss_interval`` seconds, so a new
guest is seen on its first request while one source repeating its requests cannot turn each of
them into a read; and however many sources miss, a miss re-reads at most once per
``reread_floor`` seconds, so a burst from many addresses costs a bounded share of the loop.  Only complete entries (flag ``0x2``,
``ATF_COM``) count.  `StaticNeighbours` is a fixed table for tests and benches.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["ATF_COM", "NeighbourTable", "ProcArpNeighbours", "StaticNeighbours", "parse_proc_arp"]

#: The "complete" flag of an ARP entry (include/uapi/linux/if_arp.h).
ATF_COM = 0x02
_NO_MAC = "00:00:00:00:00:00"

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: An IPv4 address in the form ``str(ipaddress.IPv4Address)`` gives (no leading zeros).
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")

#: (device, IPv4 text) → lower-case MAC
Table = dict[tuple[str, str], str]


class NeighbourTable(Protocol):
    """Answers "which MAC holds ``ip`` on ``interface``?"."""

    def mac_for(self, interface: str, ip: str) -> str | None:
        """The lower-case MAC of the complete neighbour entry, or ``None``.  Never raises for
        malformed input (the values come from guest traffic)."""
        ...


def _canonical_ip(ip: str) -> str | None:
    if _CANONICAL_IPV4.fullmatch(ip) is not None:
        return ip  # what the kernel prints, and what ipaddress would give back
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def parse_proc_arp(text: str) -> Table:
    """Parse the text of ``/proc/net/arp``; incomplete, zero-MAC and malformed lines are skipped.

    Columns: IP address, HW type, Flags, HW address, Mask, Device.
    """
    table: Table = {}
    lines = text.splitlines()
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        ip, _hw_type, flags, mac, _mask, device = fields[:6]
        try:
            if not int(flags, 16) & ATF_COM:
                continue
        except ValueError:
            continue
        mac = mac.lower()
        if mac == _NO_MAC or len(mac) != 17:
            continue
        canonical = _canonical_ip(ip)
        if canonical is None:
            continue
        table[(device, canonical)] = mac
    return table


class StaticNeighbours:
    """A fixed neighbour table: ``{(interface, ip): mac}``."""

    def __init__(self, entries: Mapping[tuple[str, str], str] | None = None) -> None:
        self._table: Table = {}
        for (interface, ip), mac in (entries or {}).items():
            self.set(interface, ip, mac)

    def __repr__(self) -> str:
        return f"<StaticNeighbours entries={len(self._table)}>"

    def set(self, interface: str, ip: str, mac: str) -> None:
        canonical = _canonical_ip(ip)
        if canonical is None:
            raise ValueError(f"{ip!r} is not an IP address")
        self._table[(interface, canonical)] = mac.lower()

    def remove(self, interface: str, ip: str) -> None:
        canonical = _canonical_ip(ip)
        if canonical is not None:
            self._table.pop((interface, canonical), None)

    def mac_for(self, interface: str, ip: str) -> str | None:
        found = self._table.get((interface, ip))
        if found is not None:
            return found
        canonical = _canonical_ip(ip)
        return None if canonical is None else self._table.get((interface, canonical))


MAX_MISSES_REMEMBERED = 4096


class ProcArpNeighbours:
    """The kernel's ARP table from ``/proc/net/arp``, cached on ``clock``.

    A read failure is logged and leaves an empty table
    (every lookup then misses: guests get 404 / ``saved_password``, never another VM's data).
    """

    log = Logger()

    def __init__(
        self,
        path: str = "/proc/net/arp",
        *,
        clock: IReactorTime,
        max_age: float = 1.0,
        miss_interval: float = 0.1,
        reread_floor: float = 0.005,
    ) -> None:
        if max_age <= 0 or miss_interval < 0 or reread_floor < 0:
            raise ValueError("max_age must be positive, miss_interval and reread_floor not negative")
        self.path = path
        self._clock = clock
        self._max_age = max_age
        self._miss_interval = min(miss_interval, max_age)
        self._reread_floor = min(reread_floor, self._miss_interval)
        self._table: Table = {}
        self._read_at: float | None = None
        self._missed: dict[tuple[str, str], float] = {}
        self.reads = 0

    def __repr__(self) -> str:
        return f"<ProcArpNeighbours path={self.path!r} entries={len(self._table)}>"

    def _refresh(self, now: float) -> None:
        self._read_at = now
        self.reads += 1
        try:
            with open(self.path, encoding="ascii", errors="replace") as stream:
                text = stream.read()
        except OSError as error:
            self.log.warn("cannot read {path}: {error}", path=self.path, error=str(error))
            self._table = {}
            return
        self._table = parse_proc_arp(text)

    def mac_for(self, interface: str, ip: str) -> str | None:
        now = self._clock.seconds()
        if self._read_at is None or now - self._read_at >= self._max_age or now < self._read_at:
            self._refresh(now)
        key = (interface, ip)
        found = self._table.get(key)
        if found is not None:
            return found
        canonical = _canonical_ip(ip)
        if canonical is None:
            return None
        key = (interface, canonical)
        found = self._table.get(key)
        if found is not None:
            return found
        last = self._missed.get(key)
        if last is not None and 0 <= now - last < self._miss_interval:
            return None  # this source missed a moment ago: no new read for it
        read_at = self._read_at
        if read_at is not None and read_at != now and 0 <= now - read_at < self._reread_floor:
            return None  # read a moment ago for another source; this one may ask again
        if len(self._missed) >= MAX_MISSES_REMEMBERED:
            self._missed.clear()
        self._missed[key] = now
        if self._read_at != now:  # the table was not read at this very moment already
            self._refresh(now)
            found = self._table.get(key)
        return found
