"""Tests for `routervm.dhcp.server`: the UDP protocol on a fake transport (DORA, silence for
unknown MACs, malformed input dropped without raising, atomic updates) and the service's
listen/stop lifecycle with a fake listener. No sockets are bound here."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from routervm.dhcp import packet as p
from routervm.dhcp.packet import DhcpPacket, MessageType
from routervm.dhcp.reservations import NetworkConfig, Reservation, ReservationTable, parse_mac
from routervm.dhcp.server import MALFORMED_LOG_INTERVAL, DhcpServerProtocol, DhcpService

A = IPv4Address
ROUTER = A("10.1.1.1")
MAC = parse_mac("02:00:00:00:00:01")
MAC2 = parse_mac("02:00:00:00:00:02")
UNKNOWN = parse_mac("02:00:00:00:00:99")
IP = A("10.1.1.10")
IP2 = A("10.1.1.11")
CLIENT = ("0.0.0.0", 68)
ZERO = A("0.0.0.0")
FUZZ = settings(max_examples=300, database=None, deadline=None)

NETWORK = NetworkConfig(
    router_ip=ROUTER,
    subnet=IPv4Network("10.1.1.0/24"),
    gateway=ROUTER,
    domain="cloudnine.internal",
    dns_servers=(A("8.8.8.8"),),
)


class FakeDatagramTransport:
    """Records writes; stands in for a UDP port (STYLE 5.10 rule 30)."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.broadcast = False
        self.options: list[tuple[int, int, Any]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def setBroadcastAllowed(self, enabled: bool) -> None:  # noqa: N802
        self.broadcast = enabled

    def getHandle(self) -> FakeDatagramTransport:  # noqa: N802
        return self

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        self.options.append((level, option, value))


def build(kind: MessageType, mac: bytes = MAC, extra: tuple[p.Option, ...] = (), xid: int = 0x1234,
          ciaddr: IPv4Address = ZERO) -> bytes:
    return p.serialise(
        DhcpPacket(op=p.BOOTREQUEST, xid=xid, chaddr=mac, ciaddr=ciaddr,
                   options=(p.opt_message_type(kind), *extra))
    )


DISCOVER = build(MessageType.DISCOVER)
REQUEST = build(MessageType.REQUEST, extra=((p.OPT_REQUESTED_IP, IP.packed), p.opt_server_id(ROUTER)))


class ProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.table = ReservationTable([Reservation(MAC, IP, "vm1")])
        self.proto = DhcpServerProtocol("eth1", self.table, NETWORK, self.clock)
        self.transport = FakeDatagramTransport()
        self.proto.transport = self.transport  # type: ignore[assignment]

    def replies(self) -> list[tuple[DhcpPacket, tuple[str, int]]]:
        out = [(p.parse(data), addr) for data, addr in self.transport.written]
        self.transport.written.clear()
        return out

    def test_start_binds_device_and_allows_broadcast(self) -> None:
        """startProtocol ties the socket to its interface and enables broadcast replies."""
        self.proto.startProtocol()
        self.assertTrue(self.transport.broadcast)
        self.assertIn(b"eth1", [value for _, _, value in self.transport.options])

    def test_dora(self) -> None:
        """DISCOVER gets a broadcast OFFER, REQUEST a broadcast ACK, both for the reserved IP."""
        self.proto.datagramReceived(DISCOVER, CLIENT)
        [(offer, addr)] = self.replies()
        self.assertEqual(addr, ("255.255.255.255", 68))
        self.assertEqual(p.message_type(offer), MessageType.OFFER)
        self.assertEqual((offer.yiaddr, offer.xid, offer.chaddr), (IP, 0x1234, MAC))
        self.assertEqual(p.server_id(offer), ROUTER)
        self.proto.datagramReceived(REQUEST, CLIENT)
        [(ack, addr)] = self.replies()
        self.assertEqual(addr, ("255.255.255.255", 68))
        self.assertEqual(p.message_type(ack), MessageType.ACK)
        self.assertEqual(ack.yiaddr, IP)
        self.assertEqual(p.hostname(ack), "vm1")

    def test_fast_and_general_paths_send_the_same(self) -> None:
        """DISCOVER/REQUEST take `DhcpLogic.fast_reply`; with it disabled (the general path) the
        server writes the very same bytes to the same place. A NAK still goes out."""
        nak = build(MessageType.REQUEST, extra=((p.OPT_REQUESTED_IP, IP2.packed),))
        datagrams = [DISCOVER, REQUEST, build(MessageType.REQUEST, ciaddr=IP), nak]
        for data in datagrams:
            self.proto.datagramReceived(data, CLIENT)
        fast = list(self.transport.written)
        self.transport.written.clear()
        self.assertIsNotNone(self.proto.logic.fast_reply(DISCOVER, ROUTER))
        self.proto.logic.fast_reply = lambda data, ip: None  # type: ignore[method-assign]
        for data in datagrams:
            self.proto.datagramReceived(data, CLIENT)
        self.assertEqual(len(fast), 4)
        self.assertEqual(self.transport.written, fast)
        self.assertEqual(p.message_type(p.parse(fast[3][0])), MessageType.NAK)

    def test_fast_path_failure_falls_back(self) -> None:
        """Should the fast path ever raise, the general path still answers."""

        def broken(data: bytes, ip: IPv4Address) -> None:
            raise RuntimeError("bug")

        self.proto.logic.fast_reply = broken  # type: ignore[assignment,method-assign]
        self.proto.datagramReceived(DISCOVER, CLIENT)
        [(offer, _)] = self.replies()
        self.assertEqual(offer.yiaddr, IP)

    def test_renewal_unicast_to_ciaddr(self) -> None:
        """A RENEWING request (ciaddr set, no 50/54) is ACKed to the client's address."""
        self.proto.datagramReceived(build(MessageType.REQUEST, ciaddr=IP), (str(IP), 68))
        [(ack, addr)] = self.replies()
        self.assertEqual(addr, (str(IP), 68))
        self.assertEqual(p.message_type(ack), MessageType.ACK)

    def test_unknown_mac_silence(self) -> None:
        """A MAC without a reservation gets no answer at all, whatever it sends."""
        for kind in MessageType:
            self.proto.datagramReceived(build(kind, mac=UNKNOWN), CLIENT)
        self.assertEqual(self.transport.written, [])

    def test_malformed_dropped_and_logged_rate_limited(self) -> None:
        """Garbage is dropped with one log event per interval, and the server keeps answering."""
        with capturedLogs() as events:
            for _ in range(50):
                self.proto.datagramReceived(b"\x00" * 10, CLIENT)
            self.clock.advance(MALFORMED_LOG_INTERVAL)
            self.proto.datagramReceived(b"junk", CLIENT)
        drops = [e for e in events if "malformed" in e.get("log_format", "")]
        self.assertEqual([e["count"] for e in drops], [1, 50])
        self.assertTrue(all(e["log_level"] is LogLevel.info for e in drops))
        self.assertEqual(self.proto.malformed, 51)
        self.assertEqual(self.transport.written, [])
        self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertEqual(len(self.replies()), 1)

    def test_every_sub_slice(self) -> None:
        """Every sub-slice of a valid DISCOVER and REQUEST, all of them (about 90,000 datagrams),
        is handled without raising; a valid DISCOVER is answered afterwards (security req 21)."""
        for valid in (DISCOVER, REQUEST):
            for start in range(len(valid) + 1):
                for end in range(start, len(valid) + 1):
                    self.proto.datagramReceived(valid[start:end], CLIENT)
        self.transport.written.clear()
        self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertEqual(len(self.replies()), 1)

    @FUZZ
    @given(st.sampled_from([DISCOVER, REQUEST]), st.data())
    def test_sub_slices_never_raise(self, valid: bytes, data: st.DataObject) -> None:
        """Any sub-slice of a valid DISCOVER or REQUEST is handled without raising, and a valid
        DISCOVER is still answered afterwards (security req 21)."""
        start = data.draw(st.integers(0, len(valid)))
        end = data.draw(st.integers(start, len(valid)))
        self.proto.datagramReceived(valid[start:end], CLIENT)
        self.transport.written.clear()
        self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertEqual(len(self.replies()), 1)

    @FUZZ
    @given(st.binary(max_size=1500))
    def test_random_datagrams_never_raise(self, junk: bytes) -> None:
        """Random datagrams never raise, and the server still answers afterwards."""
        self.proto.datagramReceived(junk, CLIENT)
        self.transport.written.clear()
        self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertEqual(len(self.replies()), 1)

    @FUZZ
    @given(st.integers(0, len(DISCOVER) - 1), st.integers(0, 255))
    def test_byte_flips_never_raise(self, index: int, value: int) -> None:
        """A valid packet with any one byte changed never makes the server raise."""
        mutated = bytearray(REQUEST)
        mutated[index] = value
        self.proto.datagramReceived(bytes(mutated), CLIENT)
        self.transport.written.clear()
        self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertEqual(len(self.replies()), 1)

    def test_update_swaps_table_and_network(self) -> None:
        """After update(), new reservations and network settings apply; removed MACs get silence."""
        network = NetworkConfig(router_ip=ROUTER, subnet=IPv4Network("10.1.1.0/24"), domain="new.internal")
        self.proto.update(ReservationTable([Reservation(MAC2, IP2, "vm2")]), network)
        self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertEqual(self.transport.written, [])
        self.proto.datagramReceived(build(MessageType.DISCOVER, mac=MAC2), CLIENT)
        [(offer, _)] = self.replies()
        self.assertEqual(offer.yiaddr, IP2)
        self.assertEqual(offer.option(p.OPT_DOMAIN), b"new.internal")

    def test_write_error_logged_not_raised(self) -> None:
        """An OSError from sendto (e.g. the interface went down) is logged, not raised."""

        def fail(data: bytes, addr: tuple[str, int]) -> None:
            raise OSError(101, "Network is unreachable")

        self.transport.write = fail  # type: ignore[method-assign]
        with capturedLogs() as events:
            self.proto.datagramReceived(DISCOVER, CLIENT)
        self.assertTrue(any("not sent" in e.get("log_format", "") for e in events))


class FakePort:
    def __init__(self) -> None:
        self.stopped = False

    def stopListening(self) -> Any:  # noqa: N802
        self.stopped = True
        return succeed(None)


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        clock = Clock()
        table = ReservationTable()
        self.servers = [DhcpServerProtocol(dev, table, NETWORK, clock) for dev in ("eth1", "eth2")]
        self.listened: list[tuple[int, DhcpServerProtocol]] = []
        self.ports: list[FakePort] = []

    def listen(self, port: int, proto: DhcpServerProtocol) -> Any:
        self.listened.append((port, proto))
        fake = FakePort()
        self.ports.append(fake)
        return fake

    def test_privileged_start_binds_each_interface_once(self) -> None:
        """Each interface gets one port-67 listener, bound in privilegedStartService."""
        service = DhcpService(Clock(), self.servers, listen=self.listen)  # type: ignore[arg-type]
        service.privilegedStartService()
        service.startService()
        self.assertEqual(self.listened, [(67, self.servers[0]), (67, self.servers[1])])
        self.assertIs(service.server_for("eth2"), self.servers[1])
        self.successResultOf(service.stopService())
        self.assertTrue(all(port.stopped for port in self.ports))
        self.assertFalse(service.running)

    def test_start_without_privileged_start(self) -> None:
        """startService alone (no twistd) still binds."""
        service = DhcpService(Clock(), self.servers, listen=self.listen)  # type: ignore[arg-type]
        service.startService()
        self.assertEqual(len(self.listened), 2)
        self.successResultOf(service.stopService())

    def test_failed_bind_releases_earlier_ports(self) -> None:
        """If the second interface cannot bind, the first is released and the error raised."""
        calls = 0

        def listen(port: int, proto: DhcpServerProtocol) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OSError(98, "Address already in use")
            return self.listen(port, proto)

        service = DhcpService(Clock(), self.servers, listen=listen)  # type: ignore[arg-type]
        self.assertRaises(OSError, service.privilegedStartService)
        self.assertTrue(self.ports[0].stopped)
        self.assertEqual(service.ports, [])
