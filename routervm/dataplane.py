"""The router's guest-facing data plane, driven by the state keeper's snapshots (DESIGN.md §4–5).

`DataPlane` subscribes to the `StateKeeper` when it starts.  The first snapshot binds everything
on the network it names; later snapshots update the servers in place (one reference swap each):

* DHCP: one `DhcpServerProtocol` on ``network.interface`` (0.0.0.0:67 tied to the device) in a
  `DhcpService`; `update(reservations, dhcp)` on every snapshot;
* DNS: a `DnsServer` on ``router_ip:53`` (UDP and TCP), authoritative from
  `DnsTable.build(domain, router_ip, records)`, forwarding to ``network.dns_servers`` for clients
  inside the guest CIDR only;
* metadata (port 80) and the password server (port 8080) on every address of the guest interface
  (0.0.0.0 tied to the device, `routervm.device`), so a guest finds them on whichever router
  address it learnt; they identify guests by (interface, neighbour MAC, source IP);
* TCP connections: one `ConnectionLimiter` (when given) counts those of DNS, metadata and the
  password server together, per source address and in all; a connection over a cap is closed
  when accepted (`routervm.limits`);
* public addresses and NAT/firewall: when the snapshot has rules, `AddressApplier.apply` puts the
  public addresses on the public interfaces, then `RuleApplier.apply` loads the rule set; one
  apply at a time, the latest rules winning over any that were waiting.

The DNS listener binds first: when ``router_ip`` is not an address of this host (or the port is
not ours to bind), nothing else is bound and no rule is applied; the error is logged and the next
snapshot tries again.  A change of the interface, the router address or the upstreams rebinds
everything.  No error ever leaves a snapshot callback: the daemon keeps serving what it has.

Ports are bound in `startService` (the state is loaded there), so the daemon runs as root or with
the capability to bind privileged ports (twistd ``--uid/--gid`` would drop it too early).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from routervm.device import listen_tcp_on_device
from routervm.dhcp.server import DhcpServerProtocol, DhcpService, Listen
from routervm.dns.server import DnsServer
from routervm.dns.table import DnsTable
from routervm.limits import ConnectionLimiter, listen_tcp
from routervm.metadata.server import MetadataFactory, MetadataService
from routervm.nat.addresses import AddressApplier
from routervm.nat.apply import RuleApplier
from routervm.nat.rules import RouterRules
from routervm.neighbours import NeighbourTable
from routervm.password.server import PasswordFactory, PasswordService
from routervm.state import Snapshot, StateKeeper

__all__ = ["DataPlane", "Ports"]


#: Listen backlog of the guest TCP listeners: a burst of connections from one guest (which the
#: limiter then closes) must not fill the accept queue, where the kernel drops other guests' SYNs.
BACKLOG = 4096


@dataclass(frozen=True)
class Ports:
    """The data plane's port numbers (tests use 0 for the TCP/UDP ones)."""

    dns: int = 53
    dhcp: int = 67
    metadata: int = 80
    password: int = 8080


#: Receive buffer of the DNS UDP socket: room for a few thousand queries, so that a flood from one
#: guest and a moment without CPU do not make the kernel drop everyone's queries.
DNS_RECEIVE_BUFFER = 4 * 1024 * 1024
#: Bytes of DNS queries read per turn of the event loop (about a hundred queries).
DNS_READ_BATCH = 4096


def _enlarge_receive_buffer(port: IListeningPort) -> None:
    sock = getattr(port, "socket", None)
    if sock is None:
        return
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):  # FORCE: beyond rmem_max, as root
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, DNS_RECEIVE_BUFFER)
            return
        except OSError:
            continue


def _binding(snapshot: Snapshot) -> tuple[str, str, tuple[str, ...]]:
    net = snapshot.network
    return net.interface, net.router_ip, net.dns_servers


def _dns_table(snapshot: Snapshot) -> DnsTable:
    net = snapshot.network
    return DnsTable.build(net.domain or "", net.router_ip, snapshot.records.records())


class DataPlane(Service):
    log = Logger()

    def __init__(self, keeper: StateKeeper, reactor: Any, *, applier: RuleApplier | None,
                 neighbours: NeighbourTable, ports: Ports = Ports(), dhcp_listen: Listen | None = None,
                 listen_address: str | None = None, addresses: AddressApplier | None = None,
                 limiter: ConnectionLimiter | None = None) -> None:
        """`listen_address` replaces the network's router address for the TCP/UDP listeners (tests
        on loopback); by default they bind ``network.router_ip``."""
        self.keeper = keeper
        self.reactor = reactor
        self.applier = applier
        self.addresses = addresses
        self.neighbours = neighbours
        self.ports = ports
        self._dhcp_listen = dhcp_listen
        self.listen_address = listen_address
        self.limiter = limiter
        self._unsubscribe: Callable[[], None] | None = None
        # What is bound, for which (interface, router_ip, upstreams); None: nothing.
        self.bound: tuple[str, str, tuple[str, ...]] | None = None
        self.listening: list[IListeningPort] = []
        self.dhcp: DhcpService | None = None
        self.dns: DnsServer | None = None
        self.metadata: MetadataService | None = None
        self.password: PasswordService | None = None
        self._latest: Snapshot | None = None
        self._rebinding: Deferred[None] | None = None
        self._rules: RouterRules | None = None
        self._applying: Deferred[None] | None = None

    # -- service

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        if self.limiter is not None:
            self.log.info("guest TCP connections (DNS, metadata, passwords): at most {per_source} per source "
                          "address, {total} in all", per_source=self.limiter.per_source, total=self.limiter.total)
        self._unsubscribe = self.keeper.subscribe(self._on_snapshot)

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._latest = None
        self._rules = None
        waits = [d for d in (self._rebinding, self._applying) if d is not None]

        async def stop() -> None:
            for d in waits:
                await d
            await self._unbind()

        return Deferred.fromCoroutine(stop())

    # -- snapshots

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._latest = snapshot
        if self._rebinding is None and self.bound == _binding(snapshot):
            try:
                self._update(snapshot)
            except Exception:
                self.log.failure("data plane: generation {generation} not served", generation=snapshot.generation)
            self._want_rules(snapshot)
        elif self._rebinding is None:
            rebinding = Deferred.fromCoroutine(self._rebind())
            rebinding.addErrback(lambda f: self.log.failure("data plane: rebinding failed", f))
            if not rebinding.called:  # it finishes at once when nothing was bound before
                self._rebinding = rebinding

    async def _rebind(self) -> None:
        bound_with: Snapshot | None = None
        try:
            while self._latest is not None and self.bound != _binding(self._latest):
                snapshot = self._latest
                await self._unbind()
                try:
                    self._bind(snapshot)
                except Exception as exc:
                    net = snapshot.network
                    self.log.error("data plane: cannot serve {interface} on {router_ip} (generation "
                                   "{generation}): {error}; waiting for the next state",
                                   interface=net.interface, router_ip=net.router_ip,
                                   generation=snapshot.generation, error=str(exc))
                    return
                bound_with = snapshot
                self.log.info("data plane serving {interface} on {router_ip}",
                              interface=snapshot.network.interface, router_ip=snapshot.network.router_ip)
            if self._latest is not None and self.bound is not None:
                if self._latest is not bound_with:  # binding built the servers from this snapshot
                    self._update(self._latest)
                self._want_rules(self._latest)
        finally:
            self._rebinding = None

    def _bind(self, snapshot: Snapshot) -> None:
        net = snapshot.network
        ports: list[IListeningPort] = []
        dhcp: DhcpService | None = None
        address = self.listen_address or net.router_ip
        try:
            dns = DnsServer(_dns_table(snapshot), upstreams=[(s, 53) for s in net.dns_servers],
                            allowed_clients=[net.cidr], reactor=self.reactor)
            # First: it fails when router_ip is not this host's, and then nothing else is bound.
            ports.extend(self._listen_dns(dns, address))
            metadata = MetadataService(snapshot.records, self.neighbours)
            ports.append(self._listen_tcp(self.ports.metadata, MetadataFactory(metadata, net.interface, self.reactor),
                                          net.interface))
            password = PasswordService(snapshot.records, self.neighbours, self.keeper.passwords)
            ports.append(self._listen_tcp(self.ports.password, PasswordFactory(password, net.interface, self.reactor),
                                          net.interface))
            server = DhcpServerProtocol(net.interface, snapshot.reservations, snapshot.dhcp, self.reactor)
            dhcp = DhcpService(self.reactor, [server], port=self.ports.dhcp, listen=self._dhcp_listen)
            dhcp.startService()
        except BaseException:
            for port in ports:
                port.stopListening()
            raise
        self.listening, self.dhcp, self.dns = ports, dhcp, dns
        self.metadata, self.password = metadata, password
        self.bound = _binding(snapshot)

    def _listen_dns(self, dns: DnsServer, address: str) -> list[IListeningPort]:
        """`DnsServer.listen`, with its TCP factory counted by the limiter."""
        if self.limiter is None:
            return list(dns.listen(self.ports.dns, address))
        udp: IListeningPort = self.reactor.listenUDP(self.ports.dns, dns.protocol, interface=address)
        _enlarge_receive_buffer(udp)
        # Read a bounded batch of queries per turn of the event loop (Twisted reads 256 KiB: a
        # backlog of thousands of small queries, after a moment without CPU, in one go).
        udp.maxThroughput = DNS_READ_BATCH  # type: ignore[attr-defined]
        try:
            port = udp.getHost().port if self.ports.dns == 0 else self.ports.dns  # type: ignore[attr-defined]
            tcp = listen_tcp(self.reactor, port, self.limiter.wrap(dns.factory), interface=address,
                             backlog=BACKLOG)
        except BaseException:
            udp.stopListening()
            raise
        return [udp, tcp]

    def _listen_tcp(self, port: int, factory: ServerFactory, interface: str) -> IListeningPort:
        if self.limiter is not None:
            factory = self.limiter.wrap(factory)
        if self.listen_address is not None:
            return listen_tcp(self.reactor, port, factory, interface=self.listen_address, backlog=BACKLOG)
        return listen_tcp_on_device(self.reactor, port, factory, interface, backlog=BACKLOG)

    async def _unbind(self) -> None:
        ports, self.listening = self.listening, []
        dhcp, self.dhcp = self.dhcp, None
        self.bound = None
        self.dns = self.metadata = self.password = None
        waits: list[Deferred[Any]] = [maybeDeferred(p.stopListening) for p in ports]
        if dhcp is not None:
            waits.append(dhcp.stopService())
        if waits:
            await DeferredList(waits, consumeErrors=True)

    def _update(self, snapshot: Snapshot) -> None:
        net = snapshot.network
        if self.dhcp is not None:
            server = self.dhcp.server_for(net.interface)
            if server is not None:
                server.update(snapshot.reservations, snapshot.dhcp)
        if self.dns is not None:
            self.dns.update(_dns_table(snapshot))
        if self.metadata is not None:
            self.metadata.update(snapshot.records)
        if self.password is not None:
            self.password.update(snapshot.records)
            self.password.store = self.keeper.passwords

    # -- rules

    def _want_rules(self, snapshot: Snapshot) -> None:
        if snapshot.rules is None or (self.applier is None and self.addresses is None):
            return
        self._rules = snapshot.rules
        if self._applying is None:
            applying = Deferred.fromCoroutine(self._apply_rules())
            applying.addErrback(lambda f: self.log.failure("data plane: rule loop failed", f))
            if not applying.called:
                self._applying = applying

    async def _apply_rules(self) -> None:
        try:
            while self._rules is not None:
                rules, self._rules = self._rules, None
                if self.addresses is not None:
                    try:
                        await self.addresses.apply(rules)
                    except Exception as exc:
                        self.log.error("data plane: public addresses not set: {error}", error=str(exc))
                if self.applier is not None:
                    try:
                        await self.applier.apply(rules)
                    except Exception as exc:
                        self.log.error("data plane: NAT/firewall rules not applied: {error}", error=str(exc))
        finally:
            self._applying = None

    @property
    def idle(self) -> bool:
        """Nothing is being bound or applied (for tests)."""
        return self._rebinding is None and self._applying is None
