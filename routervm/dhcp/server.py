"""The DHCP server's I/O: one UDP protocol per guest interface, and the service that binds them.

`DhcpServerProtocol.datagramReceived` only decodes, asks `DhcpLogic` and writes the reply
(STYLE 5.5 rule 16). Each protocol is bound to 0.0.0.0:67 and, with ``SO_BINDTODEVICE``, to its
own interface, so broadcast requests arrive on the server of the interface they came in on and
limited-broadcast replies leave through that interface. Several interfaces can each have a server:
`DevicePort` sets ``SO_REUSEADDR`` and ``SO_BINDTODEVICE`` before ``bind()``, which is what lets
the kernel accept several 0.0.0.0:67 binds (a plain ``listenUDP`` then a device bind in
``startProtocol`` gets ``EADDRINUSE`` for the second interface).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address

from twisted.application.service import Service
from twisted.internet import udp
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from routervm.dhcp.logic import DhcpLogic, reply_destination
from routervm.dhcp.packet import SERVER_PORT, MalformedPacket, parse, serialise
from routervm.dhcp.reservations import NetworkConfig, ReservationTable

# Linux value; the socket module has it on Linux builds only.
SO_BINDTODEVICE: int = getattr(socket, "SO_BINDTODEVICE", 25)

# At most one "dropped malformed packets" event per this many seconds, per interface.
MALFORMED_LOG_INTERVAL = 10.0


class DevicePort(udp.Port):
    """A UDP port whose socket is tied to one network interface before it binds."""

    def __init__(
        self, port: int, proto: DatagramProtocol, device: str, interface: str = "", reactor: object = None
    ) -> None:
        super().__init__(port, proto, interface=interface, reactor=reactor)
        self.device = device

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted API)
        skt: socket.socket = super().createInternetSocket()
        skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        skt.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.device.encode())
        return skt


def listen_on_device(reactor: IReactorUDP, port: int, proto: DhcpServerProtocol) -> IListeningPort:
    """Bind `proto` to 0.0.0.0:`port` on its interface (see the module docstring)."""
    listening = DevicePort(port, proto, proto.device, interface="0.0.0.0", reactor=reactor)
    listening.startListening()
    return listening


class DhcpServerProtocol(DatagramProtocol):
    """Answers DHCP requests arriving on one guest interface.

    `interface_ip` is this router's own address on the interface (a redundant router's real
    address, as opposed to the VIP in `network.router_ip`)."""

    log = Logger()

    def __init__(
        self,
        device: str,
        table: ReservationTable,
        network: NetworkConfig,
        clock: IReactorTime,
        interface_ip: IPv4Address | None = None,
    ) -> None:
        self.device = device
        self.clock = clock
        self.interface_ip = interface_ip if interface_ip is not None else network.router_ip
        self.logic = DhcpLogic(table, network, clock)
        self.malformed = 0  # total dropped since start
        self._suppressed = 0  # dropped since the last log event
        self._last_malformed_log: float | None = None

    def startProtocol(self) -> None:  # noqa: N802 (Twisted API)
        transport = self.transport
        assert transport is not None
        handle = transport.getHandle()  # type: ignore[attr-defined]
        handle.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.device.encode())
        transport.setBroadcastAllowed(True)
        self.log.info("DHCP server listening on {device}", device=self.device)

    def update(self, table: ReservationTable, network: NetworkConfig) -> None:
        """Serve a new host list and network config from the next datagram on.

        One reference swap, so no request ever sees the new table with the old network. Recorded
        DECLINEs of MACs that are still listed are kept."""
        logic = DhcpLogic(table, network, self.clock)
        logic.declines = {mac: d for mac, d in self.logic.declines.items() if mac in table}
        self.logic = logic

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:  # noqa: N802 (Twisted API)
        try:
            # DISCOVER/REQUEST from known MACs: precomputed bytes, no packet objects.
            fast = self.logic.fast_reply(datagram, self.interface_ip)
        except Exception:
            fast = None  # defensive: the general path below decides (and logs if it fails too)
        if fast is not None:
            if fast:
                data, destination = fast
                self._send(data, destination)
            return
        try:
            request = parse(datagram)
        except MalformedPacket as e:
            self._dropped(addr, str(e))
            return
        try:
            reply = self.logic.handle(request, self.interface_ip)
            if reply is None:
                return
            data = serialise(reply)
            destination = reply_destination(request, reply)
        except Exception:
            # Defensive: logic promises not to raise on parsed input; one bad packet must not end
            # the server either way.
            self.log.failure("DHCP request from {addr} on {device} not handled", addr=addr, device=self.device)
            return
        self._send(data, destination)

    def _send(self, data: bytes, destination: tuple[str, int]) -> None:
        transport = self.transport
        if transport is None:
            return
        try:
            transport.write(data, destination)
        except OSError as e:
            self.log.warn(
                "DHCP reply to {dest} on {device} not sent: {error}",
                dest=destination,
                device=self.device,
                error=str(e),
            )

    def _dropped(self, addr: tuple[str, int], reason: str) -> None:
        self.malformed += 1
        self._suppressed += 1
        now = self.clock.seconds()
        last = self._last_malformed_log
        if last is not None and now - last < MALFORMED_LOG_INTERVAL:
            return
        self.log.info(
            "dropped {count} malformed DHCP packet(s) on {device}; latest from {addr}: {reason}",
            count=self._suppressed,
            device=self.device,
            addr=addr,
            reason=reason,
        )
        self._suppressed = 0
        self._last_malformed_log = now


Listen = Callable[[int, DhcpServerProtocol], IListeningPort]


class DhcpService(Service):
    """Binds one `DhcpServerProtocol` per guest interface on port 67 (privileged, so in
    `privilegedStartService`) and unbinds them on stop.

    `listen(port, proto)` defaults to `listen_on_device` on `reactor`; tests pass a fake."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorUDP,
        servers: Sequence[DhcpServerProtocol],
        port: int = SERVER_PORT,
        listen: Listen | None = None,
    ) -> None:
        self.reactor = reactor
        self.servers = list(servers)
        self.port = port
        self._listen: Listen = listen if listen is not None else self._listen_on_device
        self.ports: list[IListeningPort] = []

    def _listen_on_device(self, port: int, proto: DhcpServerProtocol) -> IListeningPort:
        return listen_on_device(self.reactor, port, proto)

    def server_for(self, device: str) -> DhcpServerProtocol | None:
        for server in self.servers:
            if server.device == device:
                return server
        return None

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted API)
        super().privilegedStartService()
        if self.ports:
            return
        try:
            for server in self.servers:
                self.ports.append(self._listen(self.port, server))
        except BaseException:
            for listening in self.ports:
                listening.stopListening()
            self.ports = []
            raise

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        # Without twistd (tests, `standalone`), privilegedStartService may not have run.
        if not self.ports:
            self.privilegedStartService()
        super().startService()

    def stopService(self) -> Deferred[list[object]]:  # noqa: N802 (Twisted API)
        super().stopService()
        ports, self.ports = self.ports, []
        return gatherResults([maybeDeferred(p.stopListening) for p in ports])
