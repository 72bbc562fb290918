"""Shared fixtures for the `routervm.dns` tests (no tests here)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.names import dns

from routervm.dns.forward import Forwarder
from routervm.dns.server import DnsServer
from routervm.dns.table import DnsTable
from routervm.records import Nic, VmRecord

DOMAIN = "cloud.internal"
ROUTER_IP = "10.1.1.1"
CLIENT = ("10.1.1.50", 40000)


def vm(hostname: str, *nics: tuple[str, bool], uuid: str | None = None) -> VmRecord:
    """A record with NICs given as (ip, default), MACs and interfaces made up."""
    return VmRecord(
        uuid=uuid or f"uuid-{hostname}-{nics[0][0]}",
        instance_name=f"i-{hostname}",
        hostname=hostname,
        nics=tuple(
            Nic(mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", ip=ip, default=d, interface=f"eth{i}")
            for i, (ip, d) in enumerate(nics)
        ),
    )


RECORDS = (
    vm("web1", ("10.1.1.50", True)),
    vm("DB-2", ("10.1.1.60", False), ("10.2.2.60", True)),
    vm("twin", ("10.1.1.70", True)),
    vm("twin", ("10.1.1.71", True)),
    vm("bad.name", ("10.1.1.80", True)),
    vm("v6", ("10.1.1.90", True), ("fd00::90", False)),
)


def table(records: tuple[VmRecord, ...] = RECORDS, domain: str = DOMAIN) -> DnsTable:
    return DnsTable.build(domain, ROUTER_IP, records)


def query_bytes(
    name: str | bytes, qtype: int = dns.A, *, id: int = 0x1234, rd: bool = True, cls: int = dns.IN
) -> bytes:
    m = dns.Message(id=id, recDes=rd)
    m.queries = [dns.Query(name, qtype, cls)]
    return m.toStr()


def edns_query_bytes(
    name: str | bytes,
    qtype: int = dns.A,
    *,
    id: int = 0x1234,
    rd: bool = True,
    size: int = 1232,
    do: bool = False,
    version: int = 0,
    cookie: bool = True,
) -> bytes:
    """A query as dig sends it: one OPT record, by default with a client cookie option."""
    m = dns.Message(id=id, recDes=rd)
    m.queries = [dns.Query(name, qtype)]
    options = [dns._OPTVariableOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")] if cookie else []
    m.additional = [dns._OPTHeader(udpPayloadSize=size, dnssecOK=do, version=version, options=options)]  # type: ignore[list-item]
    return m.toStr()


def parse(data: bytes) -> dns.Message:
    m = dns.Message()
    m.fromStr(data)
    return m


class FakeUDP:
    """Records what a datagram protocol writes."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any = None) -> None:
        self.written.append((data, addr))

    def pop(self) -> list[bytes]:
        out = [d for d, _ in self.written]
        self.written.clear()
        return out


class FakeUpstreamPort:
    """One pooled upstream socket on no network: records what the forwarder sends."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.peer: tuple[str, int] | None = None
        self.sent: list[bytes] = []
        self.stopped = False

    def connect(self, host: str, port: int) -> None:
        self.peer = (host, port)

    def write(self, data: bytes, addr: Any = None) -> None:
        self.sent.append(data)

    def stopListening(self) -> None:  # noqa: N802
        self.stopped = True


class FakeUpstreams:
    """`Forwarder`'s `listen_udp` for tests: the sockets it opens, what went out, and answers in."""

    def __init__(self) -> None:
        self.ports: list[FakeUpstreamPort] = []

    def listen(self, protocol: Any) -> FakeUpstreamPort:
        port = FakeUpstreamPort(protocol)
        protocol.transport = port
        self.ports.append(port)
        return port

    def take(self) -> list[tuple[FakeUpstreamPort, dns.Message]]:
        """Every query sent since the last call, with its socket."""
        out = []
        for port in self.ports:
            out.extend((port, parse(data)) for data in port.sent)
            port.sent.clear()
        return out

    def answer(
        self,
        port: FakeUpstreamPort,
        query: dns.Message,
        *,
        rcode: int = dns.OK,
        answers: tuple[dns.RRHeader, ...] = (),
        authority: tuple[dns.RRHeader, ...] = (),
    ) -> None:
        """`port`'s upstream answers `query`."""
        m = dns.Message(id=query.id, answer=True, recDes=True, recAv=True, rCode=rcode)
        m.queries = query.queries
        m.answers = list(answers)
        m.authority = list(authority)
        port.protocol.datagramReceived(m.toStr(), port.peer)


def forwarding_server(
    dns_table: DnsTable | None = None,
    *,
    upstreams: tuple[tuple[str, int], ...] = (("192.0.2.53", 53),),
    allowed: bool = True,
    **limits: Any,
) -> tuple[DnsServer, FakeUDP, Clock, FakeUpstreams]:
    """A server on a fake clock forwarding to fake upstream sockets (no sockets); `limits` go to
    the `Forwarder`."""
    clock = Clock()
    fake = FakeUpstreams()
    forwarder = Forwarder(upstreams, clock, listen_udp=fake.listen, **limits) if upstreams else None
    srv = DnsServer(dns_table or table(), forwarder=forwarder, is_allowed=lambda host: allowed, reactor=clock)
    transport = FakeUDP()
    srv.protocol.transport = transport
    return srv, transport, clock, fake


def offline_server(
    dns_table: DnsTable | None = None, *, upstreams: tuple[tuple[str, int], ...] = (), allowed: bool = True
) -> tuple[DnsServer, FakeUDP, Clock]:
    """A server on a fake clock with its datagram protocol on a fake transport (no sockets)."""
    srv, transport, clock, _ = forwarding_server(dns_table, upstreams=upstreams, allowed=allowed)
    return srv, transport, clock


def library_answer(srv: DnsServer, transport: FakeUDP, data: bytes) -> bytes:
    """The library path's (twisted.names) response to `data`, bypassing the lean path."""
    srv.factory.messageReceived(parse(data), srv.protocol, CLIENT)
    [out] = transport.pop()
    return out


def udp_answer(srv: DnsServer, transport: FakeUDP, data: bytes) -> list[bytes]:
    """What the server's datagram protocol sends back for `data` (lean path first)."""
    srv.protocol.datagramReceived(data, CLIENT)
    return transport.pop()
