"""DHCP server decisions for static reservations (RFC 2131 section 4.3), with no I/O.

`DhcpLogic.handle` maps a parsed request to a reply or to None (stay silent). It never raises on
anything `packet.parse` accepts. Server state is only the reservation table and the network
config, so a freshly constructed instance (a restarted router) ACKs renewals of existing leases.

REQUEST states (RFC 2131 section 4.3.2), told apart by the request's fields:

| state               | option 54  | option 50 | ciaddr | reply                                        |
|---------------------|------------|-----------|--------|----------------------------------------------|
| SELECTING           | ours       | set       | 0      | ACK if 50 = reserved IP, else NAK            |
| SELECTING           | another's  | any       | any    | silent (the client chose another server)     |
| INIT-REBOOT         | absent     | set       | 0      | ACK if 50 = reserved IP, else NAK            |
| RENEWING/REBINDING  | absent     | absent    | set    | ACK if ciaddr = reserved IP, else NAK        |
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

from twisted.internet.interfaces import IReactorTime

from routervm.dhcp import packet as p
from routervm.dhcp.packet import DhcpPacket, MessageType, Option, Route
from routervm.dhcp.reservations import NetworkConfig, Reservation, ReservationTable

_UNSPECIFIED = IPv4Address("0.0.0.0")
_LIMITED_BROADCAST = "255.255.255.255"
_DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")

# Reply to send and where to send it; `SILENT` means "valid request, no reply".
FastReply = tuple[bytes, tuple[str, int]]
SILENT: tuple[()] = ()

# Fixed pieces of a reply on the fast path (see `_FastTable`).
_ZERO4 = bytes(4)
_REPLY_START = bytes((p.BOOTREPLY, p.HTYPE_ETHERNET, 6, 0))  # op htype hlen hops
_SECS = bytes(2)
_CHADDR_PAD_TO_OPTIONS = bytes(16 - 6 + 64 + 128) + p.MAGIC_COOKIE  # chaddr padding, sname, file
_OFFER = p.encode_option(*p.opt_message_type(MessageType.OFFER))
_ACK = p.encode_option(*p.opt_message_type(MessageType.ACK))
_MSFT = p.encode_option(*p.opt_ms_release_on_shutdown())
_END = bytes((p.OPT_END,))
_DISCOVER_VALUE = bytes((MessageType.DISCOVER,))
_REQUEST_VALUE = bytes((MessageType.REQUEST,))
_inet_ntoa = socket.inet_ntoa


@dataclass(frozen=True)
class Decline:
    mac: bytes
    ip: IPv4Address | None
    at: float


class DhcpLogic:
    def __init__(self, table: ReservationTable, network: NetworkConfig, clock: IReactorTime) -> None:
        self.table = table
        self.network = network
        self.clock = clock
        # The latest DECLINE per MAC: bounded by the table, however often a guest sends them.
        self.declines: dict[bytes, Decline] = {}
        self._fast: _FastTable | None = None
        self._interface: tuple[IPv4Address, bytes] | None = None
        try:
            self._fast = _FastTable(self, table.mapping())
        except ValueError:
            pass  # a config the general path cannot encode either: it logs per request

    def fast_reply(self, data: bytes, interface_ip: IPv4Address) -> FastReply | tuple[()] | None:
        """The hot path: DISCOVER → OFFER and REQUEST → ACK straight from the datagram, byte for
        byte what `parse`, `handle`, `serialise` and `reply_destination` give.

        Returns the reply and its destination, `SILENT` (a request `parse` accepts and `handle`
        answers with None), or None: not handled here (odd packets, NAKs, INFORM, DECLINE, ...),
        use the general path."""
        options = p.scan_request(data)
        if options is None:
            return None
        fast = self._fast
        mapping = self.table.mapping()
        if fast is None or fast.source is not mapping:
            try:
                fast = self._fast = _FastTable(self, mapping)
            except ValueError:
                return None
        chaddr = data[28:34]
        reservation = mapping.get(chaddr)
        if reservation is None:
            return SILENT
        yiaddr = reservation.packed
        ciaddr = data[12:16]
        kind = options.get(p.OPT_MESSAGE_TYPE)
        if kind == _DISCOVER_VALUE:
            kind_option = _OFFER
            reply_ciaddr = _ZERO4
        elif kind == _REQUEST_VALUE:
            sid = options.get(p.OPT_SERVER_ID)
            wanted = options.get(p.OPT_REQUESTED_IP)
            if wanted is not None and len(wanted) != 4:
                wanted = None
            if sid is not None and len(sid) == 4:  # SELECTING
                if sid != fast.router_id and sid != self._interface_id(interface_ip):
                    return SILENT
                if wanted is None:
                    wanted = ciaddr
            elif wanted is None:  # RENEWING / REBINDING
                if ciaddr == _ZERO4:
                    return SILENT
                wanted = ciaddr
            if wanted != yiaddr:
                return None  # NAK: the general path
            kind_option = _ACK
            reply_ciaddr = ciaddr
        else:
            return None
        route121 = route249 = msft = b""
        default_nic = reservation.default_nic
        routes = fast.routes[default_nic]
        asked = options.get(p.OPT_PARAMETER_REQUEST_LIST)
        if asked and routes:
            if p.OPT_CLASSLESS_ROUTES in asked:
                route121 = routes[0]
            if p.OPT_MS_CLASSLESS_ROUTES in asked:
                route249 = routes[1]
        vendor = options.get(p.OPT_VENDOR_CLASS)
        if vendor is not None and vendor.startswith(b"MSFT"):
            msft = _MSFT
        reply = b"".join(
            (
                _REPLY_START,
                data[4:8],  # xid
                _SECS,
                data[10:12],  # flags
                reply_ciaddr,
                yiaddr,
                fast.router_id,  # siaddr
                data[24:28],  # giaddr
                chaddr,
                _CHADDR_PAD_TO_OPTIONS,
                kind_option,
                fast.prefix[default_nic],
                _hostname_option(reservation.hostname),
                fast.suffix,
                route121,
                route249,
                msft,
                _END,
            )
        )
        if len(reply) < p.MIN_PACKET_SIZE:
            reply += bytes(p.MIN_PACKET_SIZE - len(reply))
        giaddr = data[24:28]
        if giaddr != _ZERO4:
            return reply, (_inet_ntoa(giaddr), p.SERVER_PORT)
        if ciaddr != _ZERO4:
            return reply, (_inet_ntoa(ciaddr), p.CLIENT_PORT)
        return reply, (_LIMITED_BROADCAST, p.CLIENT_PORT)

    def _interface_id(self, interface_ip: IPv4Address) -> bytes:
        cached = self._interface
        if cached is None or cached[0] is not interface_ip:
            cached = self._interface = (interface_ip, interface_ip.packed)
        return cached[1]

    def handle(self, request: DhcpPacket, interface_ip: IPv4Address) -> DhcpPacket | None:
        """The reply to send for `request`, which arrived on `interface_ip`, or None.

        Replies carry `network.router_ip` as the server identifier; a REQUEST or DECLINE naming
        either that or `interface_ip` (a redundant router's own address) counts as ours."""
        if request.op != p.BOOTREQUEST or request.htype != p.HTYPE_ETHERNET or request.hlen != 6:
            return None
        reservation = self.table.lookup(request.chaddr)
        if reservation is None:
            return None
        kind = p.message_type(request)
        ours = {self.network.router_ip, interface_ip}
        if kind is MessageType.DISCOVER:
            return self._reply(request, reservation, MessageType.OFFER)
        if kind is MessageType.REQUEST:
            return self._request(request, reservation, ours)
        if kind is MessageType.INFORM:
            return self._reply(request, reservation, MessageType.ACK, inform=True)
        if kind is MessageType.DECLINE:
            sid = p.server_id(request)
            if sid is None or sid in ours:
                self.declines[request.chaddr] = Decline(
                    request.chaddr, p.requested_ip(request), self.clock.seconds()
                )
            return None
        # RELEASE: reservations are static, nothing to free. Anything else is not for a server.
        return None

    def _request(
        self, request: DhcpPacket, reservation: Reservation, ours: set[IPv4Address]
    ) -> DhcpPacket | None:
        sid = p.server_id(request)
        wanted = p.requested_ip(request)
        if sid is not None:  # SELECTING
            if sid not in ours:
                return None
            if wanted is None:
                wanted = request.ciaddr
        elif wanted is None:  # RENEWING / REBINDING
            if request.ciaddr == _UNSPECIFIED:
                return None
            wanted = request.ciaddr
        # else INIT-REBOOT: `wanted` is option 50.
        if wanted != reservation.ip:
            return self._nak(request)
        return self._reply(request, reservation, MessageType.ACK)

    def _header(self, request: DhcpPacket) -> DhcpPacket:
        return DhcpPacket(
            op=p.BOOTREPLY,
            htype=request.htype,
            hlen=request.hlen,
            xid=request.xid,
            flags=request.flags,
            giaddr=request.giaddr,
            chaddr=request.chaddr,
        )

    def _nak(self, request: DhcpPacket) -> DhcpPacket:
        options = (p.opt_message_type(MessageType.NAK), p.opt_server_id(self.network.router_ip))
        header = self._header(request)
        if request.giaddr != _UNSPECIFIED:  # RFC 2131 section 4.3.2: the relay must broadcast it
            header = replace(header, flags=request.flags | p.BROADCAST_FLAG)
        return replace(header, options=options)

    def _reply(
        self, request: DhcpPacket, reservation: Reservation, kind: MessageType, inform: bool = False
    ) -> DhcpPacket:
        net = self.network
        options: list[Option] = [p.opt_message_type(kind), p.opt_server_id(net.router_ip)]
        options += self.static_options(reservation, inform)
        options += self._routes(request, reservation)
        if p.is_msft_client(request):
            options.append(p.opt_ms_release_on_shutdown())
        header = self._header(request)
        if kind is MessageType.ACK and request.ciaddr != _UNSPECIFIED:
            header = replace(header, ciaddr=request.ciaddr)
        return replace(
            header,
            yiaddr=_UNSPECIFIED if inform else reservation.ip,
            siaddr=net.router_ip,
            options=tuple(options),
        )

    def _gateway(self) -> IPv4Address | None:
        gateway = self.network.gateway
        return gateway if gateway != _UNSPECIFIED else None

    def static_options(self, reservation: Reservation, inform: bool) -> list[Option]:
        """A reply's options between the server identifier and the classless routes: the ones that
        depend only on the reservation and the network, not on the request."""
        options = self._nic_options(reservation.default_nic, inform)
        if reservation.hostname:
            options.append(p.opt_hostname(reservation.hostname))
        return options + self._tail_options()

    def _nic_options(self, default_nic: bool, inform: bool) -> list[Option]:
        """`static_options` up to the host name."""
        net = self.network
        options: list[Option] = []
        if not inform:
            options.append(p.opt_lease_time(net.lease_seconds))
            if net.lease_seconds != p.INFINITE_LEASE:
                options.append(p.opt_renewal_time(net.lease_seconds // 2))
                options.append(p.opt_rebinding_time(net.lease_seconds * 7 // 8))
        options.append(p.opt_subnet_mask(net.netmask))
        options.append(p.opt_broadcast(net.broadcast))
        gateway = self._gateway()
        if default_nic:
            if gateway is not None:
                options.append(p.opt_router([gateway]))
            dns = net.dns_list()
            if dns:
                options.append(p.opt_dns(dns))
            if net.domain:
                options.append(p.opt_domain(net.domain))
        else:
            # dnsmasq's `<tag>,3` / `<tag>,6` / `<tag>,15`: empty options, so only the default NIC
            # gets a default route, DNS servers and a domain (router spec section 4.2).
            options += [(p.OPT_ROUTER, b""), (p.OPT_DNS, b""), (p.OPT_DOMAIN, b"")]
        return options

    def _tail_options(self) -> list[Option]:
        """`static_options` after the host name."""
        mtu = self.network.mtu
        return [p.opt_mtu(mtu)] if mtu is not None else []

    def route_list(self, default_nic: bool) -> list[Route]:
        """The routes for options 121/249 (empty: send neither). A client using 121 ignores
        option 3, so the default NIC gets the default route too."""
        routes = list(self.network.classless_routes)
        if not routes:
            return []
        gateway = self._gateway()
        if default_nic and gateway is not None:
            if not any(net == _DEFAULT_ROUTE for net, _ in routes):
                routes.append((_DEFAULT_ROUTE, gateway))
        return routes

    def _routes(self, request: DhcpPacket, reservation: Reservation) -> list[Option]:
        """Options 121/249, only when routes are configured and the client asked (RFC 3442
        section 4: servers SHOULD NOT send it unasked)."""
        routes = self.route_list(reservation.default_nic)
        if not routes:
            return []
        asked = p.parameter_request_list(request)
        result: list[Option] = []
        if p.OPT_CLASSLESS_ROUTES in asked:
            result.append(p.opt_classless_routes(routes))
        if p.OPT_MS_CLASSLESS_ROUTES in asked:
            result.append(p.opt_ms_classless_routes(routes))
        return result


def _hostname_option(hostname: str | None) -> bytes:
    """Option 12 as `static_options` encodes it (nothing without a host name)."""
    if not hostname:
        return b""
    if len(hostname) < 256:
        return bytes((p.OPT_HOSTNAME, len(hostname))) + hostname.encode("ascii")
    return p.encode_option(*p.opt_hostname(hostname))


class _FastTable:
    """What `DhcpLogic.fast_reply` needs beyond the reservations themselves, precomputed for one
    host list (`source`) and network: the encoded OFFER/ACK options from the server identifier up
    to the classless routes (identical for both; only option 53 differs) in three parts: the
    options before the host name (`prefix`, by kind of NIC), the host name option (built from the
    reservation's host name), and `suffix` (common to all); plus the encoded 121/249 options per
    kind of NIC (`routes`, None when no routes are configured).  Nothing is held per MAC: the
    reply comes from the `Reservation` a router holds for every VM anyway."""

    __slots__ = ("source", "router_id", "routes", "prefix", "suffix")

    def __init__(self, logic: DhcpLogic, source: Mapping[bytes, Reservation]) -> None:
        self.source = source
        net = logic.network
        self.router_id = net.router_ip.packed
        routes: dict[bool, tuple[bytes, bytes] | None] = {}
        for default_nic in (True, False):
            route_list = logic.route_list(default_nic)
            routes[default_nic] = (
                (
                    p.encode_option(*p.opt_classless_routes(route_list)),
                    p.encode_option(*p.opt_ms_classless_routes(route_list)),
                )
                if route_list
                else None
            )
        self.routes = routes
        server_id = p.encode_option(*p.opt_server_id(net.router_ip))
        # `static_options` as bytes: a per-NIC-kind prefix, the host name, a common suffix.
        self.prefix = {
            default_nic: server_id + p.encode_options(logic._nic_options(default_nic, inform=False))
            for default_nic in (True, False)
        }
        self.suffix = p.encode_options(logic._tail_options())


def reply_destination(request: DhcpPacket, reply: DhcpPacket) -> tuple[str, int]:
    """Where to send `reply` (RFC 2131 section 4.1): to a relay's server port; to ciaddr when the
    client already has an address (RENEWING, INFORM; the broadcast flag only matters when ciaddr is
    0); NAKs and everything else to the limited broadcast address, since
    unicasting to an unconfigured client needs ARP injection this I/O-free code does not do."""
    if request.giaddr != _UNSPECIFIED:
        return str(request.giaddr), p.SERVER_PORT
    if p.message_type(reply) is not MessageType.NAK and request.ciaddr != _UNSPECIFIED:
        return str(request.ciaddr), p.CLIENT_PORT
    return _LIMITED_BROADCAST, p.CLIENT_PORT
