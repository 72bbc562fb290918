"""Tests for `routervm.dhcp.logic` and `routervm.dhcp.reservations`: the server's answers, byte for
byte, for every client state, plus fuzzing that `handle` never raises."""

from __future__ import annotations

import random
import struct
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from routervm.dhcp import packet as p
from routervm.dhcp.logic import SILENT, DhcpLogic, FastReply, reply_destination
from routervm.dhcp.packet import DhcpPacket, MalformedPacket, MessageType, Option
from routervm.dhcp.reservations import (
    NetworkConfig,
    Reservation,
    ReservationTable,
    format_mac,
    parse_mac,
)

A = IPv4Address
ROUTER = A("10.1.1.1")
MAC = parse_mac("02:00:4c:5e:00:02")
MAC2 = parse_mac("02:00:4c:5e:00:03")
UNKNOWN = parse_mac("02:00:4c:5e:00:99")
IP = A("10.1.1.50")
IP2 = A("10.1.1.51")
ZERO = A("0.0.0.0")
FUZZ = settings(max_examples=300, database=None, deadline=None)

NETWORK = NetworkConfig(
    router_ip=ROUTER,
    subnet=IPv4Network("10.1.1.0/24"),
    gateway=ROUTER,
    domain="cloudnine.internal",
    dns_servers=(A("8.8.8.8"), A("8.8.4.4")),
)

# The options every reply to the default NIC carries, in order, as raw bytes.
DEFAULT_NIC_OPTIONS: list[Option] = [
    (54, b"\x0a\x01\x01\x01"),
    (51, b"\xff\xff\xff\xff"),
    (1, b"\xff\xff\xff\x00"),
    (28, b"\x0a\x01\x01\xff"),
    (3, b"\x0a\x01\x01\x01"),
    (6, b"\x0a\x01\x01\x01\x08\x08\x08\x08\x08\x08\x04\x04"),
    (15, b"cloudnine.internal"),
    (12, b"web1"),
]


def request(
    kind: MessageType | None,
    mac: bytes = MAC,
    ciaddr: IPv4Address = ZERO,
    flags: int = 0,
    giaddr: IPv4Address = ZERO,
    extra: tuple[Option, ...] = (),
) -> DhcpPacket:
    options = ((p.opt_message_type(kind),) if kind is not None else ()) + extra
    return DhcpPacket(
        op=1, xid=0xABCD, chaddr=mac, ciaddr=ciaddr, flags=flags, giaddr=giaddr, options=options
    )


def requested(ip: IPv4Address) -> Option:
    return (p.OPT_REQUESTED_IP, ip.packed)


def server(ip: IPv4Address) -> Option:
    return p.opt_server_id(ip)


class LogicTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.table = ReservationTable(
            [
                Reservation(MAC, IP, "web1", default_nic=True),
                Reservation(MAC2, IP2, "web1-nic2", default_nic=False),
            ]
        )
        self.logic = DhcpLogic(self.table, NETWORK, self.clock)

    def handle(self, pkt: DhcpPacket, logic: DhcpLogic | None = None) -> DhcpPacket | None:
        """Go through the wire both ways, as the daemon would."""
        reply = (logic or self.logic).handle(p.parse(p.serialise(pkt)), ROUTER)
        if reply is not None:
            self.assertEqual(p.parse(p.serialise(reply)), reply)
        return reply

    def assertReply(self, reply: DhcpPacket | None, kind: MessageType, yiaddr: IPv4Address) -> DhcpPacket:
        assert reply is not None
        self.assertEqual(reply.op, p.BOOTREPLY)
        self.assertEqual(reply.xid, 0xABCD)
        self.assertEqual(reply.options[0], (53, bytes([kind])))
        self.assertEqual(reply.yiaddr, yiaddr)
        return reply


class DoraTests(LogicTestCase):
    def test_dora(self) -> None:
        offer = self.assertReply(self.handle(request(MessageType.DISCOVER)), MessageType.OFFER, IP)
        self.assertEqual(list(offer.options[1:]), DEFAULT_NIC_OPTIONS)
        self.assertEqual(offer.chaddr, MAC)
        self.assertEqual(offer.siaddr, ROUTER)
        sid = p.server_id(offer)
        assert sid is not None
        ack = self.assertReply(
            self.handle(request(MessageType.REQUEST, extra=(requested(offer.yiaddr), server(sid)))),
            MessageType.ACK,
            IP,
        )
        self.assertEqual(list(ack.options[1:]), DEFAULT_NIC_OPTIONS)
        raw = p.serialise(ack)
        self.assertEqual(
            raw[240:],
            bytes.fromhex(
                "350105"
                "36040a010101"
                "3304ffffffff"
                "0104ffffff00"
                "1c040a0101ff"
                "03040a010101"
                "060c0a0101010808080808080404"
                "0f12"
            )
            + b"cloudnine.internal"
            + bytes.fromhex("0c04")
            + b"web1"
            + b"\xff",  # 314 bytes in all: no padding needed
        )
        self.assertEqual(len(raw), 314)

    def test_unknown_mac_is_silent(self) -> None:
        for kind in MessageType:
            self.assertIsNone(self.handle(request(kind, mac=UNKNOWN, ciaddr=IP, extra=(requested(IP),))))

    def test_no_message_type_is_silent(self) -> None:
        self.assertIsNone(self.handle(request(None)))

    def test_replies_and_non_ethernet_ignored(self) -> None:
        self.assertIsNone(self.logic.handle(replace(request(MessageType.DISCOVER), op=2), ROUTER))
        self.assertIsNone(self.logic.handle(replace(request(MessageType.DISCOVER), htype=6), ROUTER))

    def test_non_default_nic_gets_empty_router_dns_domain(self) -> None:
        offer = self.assertReply(self.handle(request(MessageType.DISCOVER, mac=MAC2)), MessageType.OFFER, IP2)
        self.assertEqual(
            list(offer.options[1:]),
            [
                (54, b"\x0a\x01\x01\x01"),
                (51, b"\xff\xff\xff\xff"),
                (1, b"\xff\xff\xff\x00"),
                (28, b"\x0a\x01\x01\xff"),
                (3, b""),
                (6, b""),
                (15, b""),
                (12, b"web1-nic2"),
            ],
        )
        self.assertIn(b"\x03\x00\x06\x00\x0f\x00", p.serialise(offer))

    def test_finite_lease_sends_t1_t2(self) -> None:
        logic = DhcpLogic(self.table, replace(NETWORK, lease_seconds=3600), self.clock)
        offer = self.handle(request(MessageType.DISCOVER), logic)
        assert offer is not None
        self.assertEqual(
            offer.options[2:5],
            ((51, b"\x00\x00\x0e\x10"), (58, b"\x00\x00\x07\x08"), (59, b"\x00\x00\x0c\x4e")),
        )

    def test_no_gateway_omits_router(self) -> None:
        for gw in (None, A("0.0.0.0")):
            logic = DhcpLogic(self.table, replace(NETWORK, gateway=gw), self.clock)
            offer = self.handle(request(MessageType.DISCOVER), logic)
            assert offer is not None
            self.assertIsNone(offer.option(3))

    def test_external_dns_only(self) -> None:
        logic = DhcpLogic(self.table, replace(NETWORK, router_dns=False), self.clock)
        offer = self.handle(request(MessageType.DISCOVER), logic)
        assert offer is not None
        self.assertEqual(offer.option(6), b"\x08\x08\x08\x08\x08\x08\x04\x04")

    def test_mtu(self) -> None:
        logic = DhcpLogic(self.table, replace(NETWORK, mtu=1450), self.clock)
        offer = self.handle(request(MessageType.DISCOVER), logic)
        assert offer is not None
        self.assertEqual(offer.option(26), b"\x05\xaa")

    def test_msft_release_on_shutdown(self) -> None:
        msft = (p.OPT_VENDOR_CLASS, b"MSFT 5.0")
        offer = self.handle(request(MessageType.DISCOVER, extra=(msft,)))
        assert offer is not None
        self.assertEqual(offer.options[-1], (43, b"\x02\x04\x00\x00\x00\x01"))
        other = self.handle(request(MessageType.DISCOVER, extra=((p.OPT_VENDOR_CLASS, b"dhcpcd-9"),)))
        assert other is not None
        self.assertIsNone(other.option(43))

    def test_classless_routes(self) -> None:
        meta = (IPv4Network("169.254.169.254/32"), ROUTER)
        logic = DhcpLogic(self.table, replace(NETWORK, classless_routes=(meta,)), self.clock)
        prl = (p.OPT_PARAMETER_REQUEST_LIST, bytes([1, 3, 6, 121, 249]))
        offer = self.handle(request(MessageType.DISCOVER, extra=(prl,)), logic)
        assert offer is not None
        expected = b"\x20\xa9\xfe\xa9\xfe\x0a\x01\x01\x01" + b"\x00\x0a\x01\x01\x01"
        self.assertEqual(offer.option(121), expected)
        self.assertEqual(offer.option(249), expected)
        self.assertEqual(offer.option(3), b"\x0a\x01\x01\x01")
        # Not requested: not sent (RFC 3442 section 4).
        plain = self.handle(request(MessageType.DISCOVER), logic)
        assert plain is not None
        self.assertIsNone(plain.option(121))
        self.assertIsNone(plain.option(249))
        # Non-default NIC: the configured routes, but no default route.
        nic2 = self.handle(request(MessageType.DISCOVER, mac=MAC2, extra=(prl,)), logic)
        assert nic2 is not None
        self.assertEqual(nic2.option(121), b"\x20\xa9\xfe\xa9\xfe\x0a\x01\x01\x01")


class RequestStateTests(LogicTestCase):
    def test_selecting_other_server_is_silent(self) -> None:
        pkt = request(MessageType.REQUEST, extra=(requested(IP), server(A("10.1.1.2"))))
        self.assertIsNone(self.handle(pkt))

    def test_selecting_wrong_address_naks(self) -> None:
        pkt = request(MessageType.REQUEST, extra=(requested(A("10.1.1.77")), server(ROUTER)))
        nak = self.assertReply(self.handle(pkt), MessageType.NAK, A("0.0.0.0"))
        self.assertEqual(nak.options, ((53, b"\x06"), (54, b"\x0a\x01\x01\x01")))

    def test_init_reboot_ack(self) -> None:
        ack = self.assertReply(
            self.handle(request(MessageType.REQUEST, extra=(requested(IP),))), MessageType.ACK, IP
        )
        self.assertEqual(list(ack.options[1:]), DEFAULT_NIC_OPTIONS)

    def test_init_reboot_wrong_address_naks(self) -> None:
        nak = self.handle(request(MessageType.REQUEST, extra=(requested(A("192.168.0.5")),)))
        self.assertReply(nak, MessageType.NAK, A("0.0.0.0"))

    def test_renewing_ack(self) -> None:
        ack = self.assertReply(self.handle(request(MessageType.REQUEST, ciaddr=IP)), MessageType.ACK, IP)
        self.assertEqual(ack.ciaddr, IP)
        self.assertEqual(list(ack.options[1:]), DEFAULT_NIC_OPTIONS)

    def test_renewing_wrong_address_naks(self) -> None:
        self.assertReply(
            self.handle(request(MessageType.REQUEST, ciaddr=A("10.1.1.99"))), MessageType.NAK, A("0.0.0.0")
        )

    def test_renewal_after_router_restart_acks(self) -> None:
        # A brand-new table and logic, as after a router restart or recreate: no lease history.
        fresh = DhcpLogic(ReservationTable([Reservation(MAC, IP, "web1")]), NETWORK, Clock())
        self.assertReply(self.handle(request(MessageType.REQUEST, ciaddr=IP), fresh), MessageType.ACK, IP)
        self.assertReply(
            self.handle(request(MessageType.REQUEST, extra=(requested(IP),)), fresh), MessageType.ACK, IP
        )

    def test_removed_reservation_is_silent(self) -> None:
        self.table.replace_all([Reservation(MAC2, IP2, None, default_nic=False)])
        self.assertIsNone(self.handle(request(MessageType.REQUEST, ciaddr=IP)))

    def test_request_without_anything_is_silent(self) -> None:
        self.assertIsNone(self.handle(request(MessageType.REQUEST)))

    def test_inform(self) -> None:
        ack = self.assertReply(
            self.handle(request(MessageType.INFORM, ciaddr=IP)), MessageType.ACK, A("0.0.0.0")
        )
        self.assertEqual(ack.ciaddr, IP)
        self.assertIsNone(ack.option(51))
        self.assertIsNone(ack.option(58))
        self.assertEqual([o for o in DEFAULT_NIC_OPTIONS if o[0] != 51], list(ack.options[1:]))

    def test_release_is_silent(self) -> None:
        self.assertIsNone(self.handle(request(MessageType.RELEASE, ciaddr=IP, extra=(server(ROUTER),))))

    def test_decline_is_recorded(self) -> None:
        self.clock.advance(42)
        self.assertIsNone(self.handle(request(MessageType.DECLINE, extra=(requested(IP), server(ROUTER)))))
        self.assertIsNone(
            self.handle(request(MessageType.DECLINE, extra=(requested(IP), server(A("10.9.9.9")))))
        )
        self.assertEqual(list(self.logic.declines), [MAC])
        decline = self.logic.declines[MAC]
        self.assertEqual((decline.mac, decline.ip, decline.at), (MAC, IP, 42.0))
        self.clock.advance(8)
        for _ in range(3):
            self.handle(request(MessageType.DECLINE, extra=(requested(IP),)))
        self.assertEqual(len(self.logic.declines), 1)
        self.assertEqual(self.logic.declines[MAC].at, 50.0)


class ReplyDestinationTests(LogicTestCase):
    def destination(self, pkt: DhcpPacket) -> tuple[str, int]:
        reply = self.logic.handle(pkt, ROUTER)
        assert reply is not None
        return reply_destination(pkt, reply)

    def test_broadcast_when_no_address(self) -> None:
        self.assertEqual(self.destination(request(MessageType.DISCOVER)), ("255.255.255.255", 68))
        self.assertEqual(
            self.destination(request(MessageType.DISCOVER, flags=0x8000)), ("255.255.255.255", 68)
        )

    def test_unicast_when_renewing(self) -> None:
        self.assertEqual(self.destination(request(MessageType.REQUEST, ciaddr=IP)), ("10.1.1.50", 68))
        self.assertEqual(self.destination(request(MessageType.INFORM, ciaddr=IP)), ("10.1.1.50", 68))

    def test_nak_is_broadcast(self) -> None:
        self.assertEqual(
            self.destination(request(MessageType.REQUEST, ciaddr=A("10.1.1.99"))), ("255.255.255.255", 68)
        )

    def test_relay(self) -> None:
        relayed = request(MessageType.DISCOVER, giaddr=A("10.2.0.1"))
        self.assertEqual(self.destination(relayed), ("10.2.0.1", 67))
        nak = self.logic.handle(
            request(MessageType.REQUEST, ciaddr=A("10.1.1.99"), giaddr=A("10.2.0.1")), ROUTER
        )
        assert nak is not None
        self.assertEqual(nak.giaddr, A("10.2.0.1"))
        self.assertTrue(nak.broadcast)


class ReservationTests(SynchronousTestCase):
    def test_mac_text(self) -> None:
        self.assertEqual(parse_mac("02-00-4C-5E-00-02"), MAC)
        self.assertEqual(format_mac(MAC), "02:00:4c:5e:00:02")
        for bad in ("02:00:4c:5e:00", "zz:00:4c:5e:00:02", "020:0:4c:5e:00:02"):
            self.assertRaises(ValueError, parse_mac, bad)

    def test_validation(self) -> None:
        self.assertRaises(ValueError, Reservation, MAC[:5], IP)
        self.assertRaises(ValueError, Reservation, MAC, IP, "wéb")
        self.assertRaises(ValueError, replace, NETWORK, lease_seconds=0)
        self.assertRaises(ValueError, replace, NETWORK, mtu=10)

    def test_table(self) -> None:
        table = ReservationTable([Reservation(MAC, IP), Reservation(MAC, IP2)])
        self.assertEqual(len(table), 1)
        self.assertIn(MAC, table)
        found = table.lookup(MAC)
        assert found is not None
        self.assertEqual(found.ip, IP2)  # last entry wins
        table.replace_all([Reservation(MAC2, IP)])
        self.assertIsNone(table.lookup(MAC))
        self.assertNotIn(MAC, table)

    def test_ten_thousand_reservations(self) -> None:
        reservations = [
            Reservation((0x0200_0000_0000 + i).to_bytes(6, "big"), A(0x0A00_0000 + i), f"vm{i}")
            for i in range(10_000)
        ]
        table = ReservationTable(reservations)
        self.assertEqual(len(table), 10_000)
        self.assertIsInstance(table._by_mac, dict)
        network = replace(NETWORK, subnet=IPv4Network("10.0.0.0/16"), router_ip=A("10.0.255.254"))
        logic = DhcpLogic(table, network, Clock())
        for i in (0, 4_321, 9_999):
            offer = logic.handle(request(MessageType.DISCOVER, mac=reservations[i].mac), A("10.0.255.254"))
            assert offer is not None
            self.assertEqual(offer.yiaddr, A(0x0A00_0000 + i))
            self.assertEqual(offer.option(12), f"vm{i}".encode())


def _valid_wire_packets() -> list[bytes]:
    return [
        p.serialise(
            request(MessageType.DISCOVER, extra=((p.OPT_PARAMETER_REQUEST_LIST, bytes([1, 3, 121])),))
        ),
        p.serialise(request(MessageType.REQUEST, extra=(requested(IP), server(ROUTER)))),
    ]


class HandleNeverRaisesTests(LogicTestCase):
    def setUp(self) -> None:
        super().setUp()
        meta = (IPv4Network("169.254.169.254/32"), ROUTER)
        self.logic = DhcpLogic(self.table, replace(NETWORK, classless_routes=(meta,), mtu=1500), self.clock)

    def check(self, data: bytes) -> None:
        fast = self.logic.fast_reply(data, ROUTER)
        try:
            pkt = p.parse(data)
        except MalformedPacket:
            self.assertIsNone(fast)
            return
        if fast is not None:
            self.assertEqual(fast, general_reply(self.logic, data, ROUTER))
        reply = self.logic.handle(pkt, ROUTER)
        if reply is not None:
            reply_destination(pkt, reply)
            p.serialise(reply)
        # Still answering valid requests afterwards (security requirement 21).
        offer = self.logic.handle(request(MessageType.DISCOVER), ROUTER)
        assert offer is not None
        self.assertEqual(offer.yiaddr, IP)

    @FUZZ
    @given(st.sampled_from(_valid_wire_packets()), st.integers(0, 320), st.integers(0, 320))
    def test_slices(self, data: bytes, a: int, b: int) -> None:
        self.check(data[min(a, b) : max(a, b)])

    @FUZZ
    @given(
        st.sampled_from(_valid_wire_packets()),
        st.lists(st.tuples(st.integers(0, 299), st.integers(0, 255)), max_size=8),
    )
    def test_byte_mutations(self, data: bytes, edits: list[tuple[int, int]]) -> None:
        mutable = bytearray(data)
        for index, value in edits:
            mutable[index] = value
        self.check(bytes(mutable))

    @FUZZ
    @given(
        st.sampled_from([MAC, MAC2, UNKNOWN]),
        st.ip_addresses(v=4),
        st.integers(0, 0xFFFF),
        st.lists(
            st.tuples(st.integers(1, 254).filter(lambda c: c != p.OPT_OVERLOAD), st.binary(max_size=12))
        ),
    )
    def test_arbitrary_options(
        self, mac: bytes, ciaddr: IPv4Address, flags: int, options: list[tuple[int, bytes]]
    ) -> None:
        pkt = DhcpPacket(
            op=1, xid=1, chaddr=mac, ciaddr=ciaddr, flags=flags, options=tuple(dict(options).items())
        )
        self.check(p.serialise(pkt))

    @FUZZ
    @given(st.binary(max_size=600))
    def test_random_bytes(self, data: bytes) -> None:
        self.check(data)


def general_reply(logic: DhcpLogic, data: bytes, interface_ip: IPv4Address) -> FastReply | tuple[()] | str:
    """What parse, handle, serialise and reply_destination make of `data`, in `fast_reply`'s terms
    ("malformed" when parse rejects it)."""
    try:
        pkt = p.parse(data)
    except MalformedPacket:
        return "malformed"
    reply = logic.handle(pkt, interface_ip)
    if reply is None:
        return SILENT
    return p.serialise(reply), reply_destination(pkt, reply)


class FastPathEquivalenceTests(SynchronousTestCase):
    """`DhcpLogic.fast_reply` gives byte for byte what the general path gives, whenever it answers,
    over randomised networks, reservations and requests; and it does answer ordinary DORA traffic."""

    def random_network(self, rng: random.Random) -> NetworkConfig:
        routes: list[tuple[IPv4Network, IPv4Address]] = []
        if rng.random() < 0.6:
            routes.append((IPv4Network("169.254.169.254/32"), ROUTER))
            for _ in range(rng.randrange(4)):
                width = rng.randrange(0, 33)
                net = IPv4Network((rng.getrandbits(32), width), strict=False)
                routes.append((net, A(rng.getrandbits(32))))
            if rng.random() < 0.3:
                many = [(IPv4Network((0x0A000000 + (i << 8), 24)), ROUTER) for i in range(40)]
                routes += many  # over 255 bytes: split into several instances (RFC 3396)
        return NetworkConfig(
            router_ip=ROUTER,
            subnet=IPv4Network(rng.choice(["10.1.1.0/24", "10.1.0.0/16", "10.1.1.0/28"])),
            gateway=rng.choice([ROUTER, None, ZERO, A("10.1.1.254")]),
            domain=rng.choice([None, "", "cloudnine.internal", "x" * 300]),
            dns_servers=tuple(rng.sample([A("8.8.8.8"), A("8.8.4.4"), ROUTER], rng.randrange(4))),
            router_dns=rng.random() < 0.7,
            lease_seconds=rng.choice([p.INFINITE_LEASE, 3600, 86400, 1]),
            classless_routes=tuple(routes),
            mtu=rng.choice([None, 1500, 9000]),
        )

    def random_reservations(self, rng: random.Random) -> list[Reservation]:
        return [
            Reservation(
                bytes((2, 0, 0, 0, 0, i)),
                A(0x0A010100 + 10 + i),
                rng.choice([None, "", f"vm{i}", "h" * 200]),
                default_nic=rng.random() < 0.6,
            )
            for i in range(rng.randrange(1, 8))
        ]

    def random_request(
        self, rng: random.Random, reservations: list[Reservation], iface: IPv4Address
    ) -> tuple[bytes, bool]:
        """A request as bytes, and whether it was made odd (overload, option 53 twice, ...)."""
        reservation = rng.choice(reservations)
        mac = reservation.mac if rng.random() < 0.9 else UNKNOWN
        right = reservation.ip
        wrong = A("10.1.1.222")
        kind = rng.choice(
            [MessageType.DISCOVER] * 4
            + [MessageType.REQUEST] * 6
            + [MessageType.INFORM, MessageType.DECLINE, MessageType.RELEASE, MessageType.OFFER]
        )
        options: list[Option] = []
        ciaddr = ZERO
        if kind is MessageType.REQUEST:
            state = rng.choice(["selecting", "init-reboot", "renewing", "odd"])
            if state == "selecting":
                options += [
                    requested(rng.choice([right, right, wrong])),
                    server(rng.choice([ROUTER, iface, A("10.9.9.9")])),
                ]
            elif state == "init-reboot":
                options.append(requested(rng.choice([right, right, wrong])))
            elif state == "renewing":
                ciaddr = rng.choice([right, right, wrong])
            else:
                options += rng.choice(
                    [[], [(p.OPT_SERVER_ID, b"\x0a\x01")], [(p.OPT_REQUESTED_IP, b"\x0a")], [server(ROUTER)]]
                )
                ciaddr = rng.choice([ZERO, right, wrong])
        elif rng.random() < 0.2:
            ciaddr = rng.choice([right, wrong])
        prl = [1, 3, 6, 12, 15, 26, 28, 51, 58, 59]
        for code in (p.OPT_CLASSLESS_ROUTES, p.OPT_MS_CLASSLESS_ROUTES):
            if rng.random() < 0.5:
                prl.append(code)
        rng.shuffle(prl)
        if rng.random() < 0.9:
            options.append((p.OPT_PARAMETER_REQUEST_LIST, bytes(prl)))
        vendor = rng.choice([None, b"MSFT 5.0", b"MSFT", b"dhcpcd-9.4.1", b"MSF", b""])
        if vendor is not None:
            options.append((p.OPT_VENDOR_CLASS, vendor))
        if rng.random() < 0.5:
            options.append((p.OPT_CLIENT_ID, b"\x01" + mac))
        if rng.random() < 0.3:
            options.append(p.opt_hostname("guest"))
        rng.shuffle(options)
        options.insert(rng.randrange(len(options) + 1), p.opt_message_type(kind))
        pkt = DhcpPacket(
            op=p.BOOTREQUEST,
            xid=rng.getrandbits(32),
            chaddr=mac,
            secs=rng.choice([0, 5]),
            hops=rng.choice([0, 0, 1]),
            flags=rng.choice([0, p.BROADCAST_FLAG, p.BROADCAST_FLAG | 1]),
            ciaddr=ciaddr,
            giaddr=rng.choice([ZERO, ZERO, A("192.168.7.1")]),
            sname=rng.choice([b"", b"server"]),
            options=tuple(options),
        )
        data = bytearray(p.serialise(pkt))
        if rng.random() < 0.2:
            data[28 + 6 : 28 + 16] = rng.randbytes(10)  # junk after chaddr: replies must not echo it
        tweak = rng.random()
        if tweak < 0.05:  # an option area without END, and pads in front
            end = data.index(p.OPT_END, 240)
            data = data[:240] + b"\x00\x00" + data[240:end]
        elif tweak < 0.1:  # option 53 twice (concatenated on parse: no message type)
            data = data[:240] + bytes((53, 1, kind)) + data[240:]
        elif tweak < 0.13:  # option overload, the file field holding the PRL
            data[108:236] = bytes((55, 2, 121, 249, 255)) + bytes(123)
            data = data[:240] + bytes((52, 1, 1)) + data[240:]
        elif tweak < 0.16:  # truncated
            data = data[: rng.randrange(230, len(data))]
        return bytes(data), 0.05 <= tweak < 0.16

    def test_randomised_equivalence(self) -> None:
        rng = random.Random(20261122)
        answered = fallback = 0
        for _ in range(150):
            network = self.random_network(rng)
            reservations = self.random_reservations(rng)
            logic = DhcpLogic(ReservationTable(reservations), network, Clock())
            iface = rng.choice([ROUTER, A("10.1.1.2")])
            for _ in range(60):
                data, odd = self.random_request(rng, reservations, iface)
                fast = logic.fast_reply(data, iface)
                general = general_reply(logic, data, iface)
                if fast is None:
                    fallback += 1
                    # Only NAKs, other message types and odd packets take the general path.
                    if isinstance(general, tuple) and general and not odd:
                        reply_kind = p.message_type(p.parse(general[0]))
                        request_kind = p.message_type(p.parse(data))
                        self.assertTrue(
                            reply_kind is MessageType.NAK
                            or request_kind not in (MessageType.DISCOVER, MessageType.REQUEST)
                        )
                    continue
                answered += 1
                self.assertEqual(fast, general, data.hex())
        self.assertGreater(answered, 4000)
        self.assertGreater(fallback, 1000)

    def test_common_dora_takes_the_fast_path(self) -> None:
        table = ReservationTable(
            [Reservation(MAC, IP, "web1"), Reservation(MAC2, IP2, None, default_nic=False)]
        )
        logic = DhcpLogic(table, NETWORK, Clock())
        prl = (p.OPT_PARAMETER_REQUEST_LIST, bytes([1, 3, 6, 121]))
        for mac, ip in ((MAC, IP), (MAC2, IP2)):
            for pkt in (
                request(MessageType.DISCOVER, mac=mac, extra=(prl,)),
                request(MessageType.REQUEST, mac=mac, extra=(requested(ip), server(ROUTER), prl)),
                request(MessageType.REQUEST, mac=mac, extra=(requested(ip),)),
                request(MessageType.REQUEST, mac=mac, ciaddr=ip),
                request(MessageType.REQUEST, mac=mac, ciaddr=ip, giaddr=A("192.168.7.1")),
            ):
                data = p.serialise(pkt)
                fast = logic.fast_reply(data, ROUTER)
                self.assertIsNotNone(fast)
                self.assertEqual(fast, general_reply(logic, data, ROUTER))
        silent = p.serialise(request(MessageType.DISCOVER, mac=UNKNOWN))
        self.assertEqual(logic.fast_reply(silent, ROUTER), SILENT)
        nak = p.serialise(request(MessageType.REQUEST, extra=(requested(IP2),)))
        self.assertIsNone(logic.fast_reply(nak, ROUTER))

    def test_fast_path_follows_table_replacement(self) -> None:
        table = ReservationTable([Reservation(MAC, IP, "web1")])
        logic = DhcpLogic(table, NETWORK, Clock())
        discover = p.serialise(request(MessageType.DISCOVER))
        before = logic.fast_reply(discover, ROUTER)
        assert before
        self.assertEqual(struct.unpack_from("!4s", before[0], 16)[0], IP.packed)
        table.replace_all([Reservation(MAC, IP2, "web2")])
        after = logic.fast_reply(discover, ROUTER)
        assert after
        self.assertEqual(after[0][16:20], IP2.packed)
        self.assertEqual(after, general_reply(logic, discover, ROUTER))
        table.replace_all([])
        self.assertEqual(logic.fast_reply(discover, ROUTER), SILENT)
