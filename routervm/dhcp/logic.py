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

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

from twisted.internet.interfaces import IReactorTime

from routervm.dhcp import packet as p
from routervm.dhcp.packet import DhcpPacket, MessageType, Option
from routervm.dhcp.reservations import NetworkConfig, Reservation, ReservationTable

_UNSPECIFIED = IPv4Address("0.0.0.0")
_LIMITED_BROADCAST = "255.255.255.255"


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
        if not inform:
            options.append(p.opt_lease_time(net.lease_seconds))
            if net.lease_seconds != p.INFINITE_LEASE:
                options.append(p.opt_renewal_time(net.lease_seconds // 2))
                options.append(p.opt_rebinding_time(net.lease_seconds * 7 // 8))
        options.append(p.opt_subnet_mask(net.netmask))
        options.append(p.opt_broadcast(net.broadcast))
        gateway = net.gateway if net.gateway != _UNSPECIFIED else None
        if reservation.default_nic:
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
        if reservation.hostname:
            options.append(p.opt_hostname(reservation.hostname))
        if net.mtu is not None:
            options.append(p.opt_mtu(net.mtu))
        options += self._routes(request, reservation, gateway)
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

    def _routes(
        self, request: DhcpPacket, reservation: Reservation, gateway: IPv4Address | None
    ) -> list[Option]:
        """Options 121/249, only when routes are configured and the client asked (RFC 3442
        section 4: servers SHOULD NOT send it unasked). A client using 121 ignores option 3, so
        the default route goes in too."""
        routes = list(self.network.classless_routes)
        if not routes:
            return []
        if reservation.default_nic and gateway is not None:
            default = IPv4Network("0.0.0.0/0")
            if not any(net == default for net, _ in routes):
                routes.append((default, gateway))
        asked = p.parameter_request_list(request)
        result: list[Option] = []
        if p.OPT_CLASSLESS_ROUTES in asked:
            result.append(p.opt_classless_routes(routes))
        if p.OPT_MS_CLASSLESS_ROUTES in asked:
            result.append(p.opt_ms_classless_routes(routes))
        return result


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
