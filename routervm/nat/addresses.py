"""The router's public addresses on its public interfaces (router.md §6.2).

`AddressApplier.apply(rules)` makes the IPv4 addresses of every public interface named in
``rules.public_addresses`` exactly the ones listed there (``ip/prefix_length``): missing ones are
added (the interface set up first) with ``ip addr add <ip>/<len> brd + dev <interface>``, others are deleted, and a public
interface that drops out of the rules loses the addresses it held.  The rules are authoritative for
public interfaces, as the reference router's ``ips`` databag is; the guest and control interfaces
are never touched (the rule model refuses public addresses on them).

Each address added is announced with a gratuitous ARP (``arping -A -U -c 1 -I <interface> <ip>``)
when ``arping`` is installed, so upstream switches and routers learn the new owner at once; a
missing ``arping`` is logged once and does not fail the apply.

The kernel is read (``ip -j -4 addr show dev <interface>``) before changing anything, so a restart
converges on the same addresses without duplicates.  An apply whose wanted addresses equal the last
successful one costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from twisted.logger import Logger

from routervm.nat.apply import ApplyError, Runner
from routervm.nat.rules import RouterRules

__all__ = ["AddressApplier", "wanted_addresses"]

#: Seconds one `ip` or `arping` run may take.
TOOL_TIMEOUT = 20.0


def wanted_addresses(rules: RouterRules) -> dict[str, frozenset[str]]:
    """``{interface: {"ip/prefix_length", ...}}`` for the public interfaces of `rules`."""
    wanted: dict[str, set[str]] = {}
    for address in rules.public_addresses:
        wanted.setdefault(address.interface, set()).add(address.cidr)
    return {interface: frozenset(cidrs) for interface, cidrs in wanted.items()}


def _held(document: bytes, interface: str) -> set[str]:
    """The global IPv4 addresses in ``ip -j -4 addr show dev <interface>`` output."""
    try:
        links = json.loads(document or b"[]")
    except ValueError:
        raise ApplyError(f"ip addr show {interface}: unreadable output") from None
    held: set[str] = set()
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, Mapping) else []:
            if info.get("family") == "inet" and info.get("scope", "global") == "global":
                held.add(f"{info['local']}/{info['prefixlen']}")
    return held


class AddressApplier:
    log = Logger()

    def __init__(self, runner: Runner, ip: str = "ip", arping: str = "arping") -> None:
        self.runner = runner
        self.ip = ip
        self.arping = arping
        self.applied: dict[str, frozenset[str]] | None = None  # the last wanted set applied
        self._managed: set[str] = set()  # public interfaces this process has set addresses on
        self._arping_missing = False

    async def apply(self, rules: RouterRules) -> None:
        wanted = wanted_addresses(rules)
        if wanted == self.applied:
            return
        self.applied = None
        for interface in sorted(set(wanted) | self._managed):
            await self._converge(interface, wanted.get(interface, frozenset()))
            self._managed.add(interface)
        self._managed = set(wanted)
        self.applied = wanted

    async def _converge(self, interface: str, want: frozenset[str]) -> None:
        held = _held(await self._ip("-j", "-4", "addr", "show", "dev", interface), interface)
        for cidr in sorted(held - want):
            await self._ip("addr", "del", cidr, "dev", interface)
            self.log.info("public address {cidr} removed from {interface}", cidr=cidr, interface=interface)
        missing = sorted(want - held)
        if missing:
            await self._ip("link", "set", "dev", interface, "up")
        for cidr in missing:
            await self._ip("addr", "add", cidr, "brd", "+", "dev", interface)
            self.log.info("public address {cidr} added to {interface}", cidr=cidr, interface=interface)
            await self._announce(interface, cidr.partition("/")[0])

    async def _ip(self, *args: str) -> bytes:
        argv = [self.ip, *args]
        try:
            code, out, err = await self.runner.run(argv, timeout=TOOL_TIMEOUT)
        except Exception as exc:
            raise ApplyError(f"{' '.join(argv)} could not run: {exc}") from None
        if code != 0:
            message = err.decode("utf-8", "replace").strip()[:500]
            raise ApplyError(f"{' '.join(argv)} failed with exit code {code}: {message}")
        return out

    async def _announce(self, interface: str, ip: str) -> None:
        if self._arping_missing:
            return
        argv = [self.arping, "-A", "-U", "-c", "1", "-I", interface, ip]
        try:
            code, _out, err = await self.runner.run(argv, timeout=TOOL_TIMEOUT)
        except FileNotFoundError:
            self._arping_missing = True
            self.log.warn("arping is not installed: new public addresses are not announced")
            return
        except Exception as exc:
            self.log.warn("gratuitous ARP for {ip} on {interface} failed: {error}", ip=ip,
                          interface=interface, error=str(exc))
            return
        if code != 0:
            self.log.warn("gratuitous ARP for {ip} on {interface} failed with exit code {code}: {error}",
                          ip=ip, interface=interface, code=code, error=err.decode("utf-8", "replace").strip()[:200])
