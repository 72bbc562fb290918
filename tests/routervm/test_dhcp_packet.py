"""Byte-fixture, round-trip, scapy cross-check and fuzz tests for `routervm.dhcp.packet`."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from twisted.trial.unittest import SynchronousTestCase

from routervm.dhcp import packet as p
from routervm.dhcp.packet import DhcpPacket, MalformedPacket, MessageType

MAC = bytes.fromhex("02004c5e0002")
FUZZ = settings(max_examples=300, database=None, deadline=None)


def header(op: int = 1, xid: int = 0x3903F326, flags: int = 0x8000, ciaddr: bytes = bytes(4)) -> bytes:
    """A hand-assembled fixed BOOTP header (RFC 2131 figure 1) and the magic cookie."""
    return (
        bytes([op, 1, 6, 0])
        + struct.pack("!IHH", xid, 0, flags)
        + ciaddr
        + bytes(12)  # yiaddr siaddr giaddr
        + MAC
        + bytes(10)
        + bytes(64)  # sname
        + bytes(128)  # file
        + b"\x63\x82\x53\x63"
    )


DISCOVER = (
    header()
    + bytes.fromhex(
        "350101"  # 53 message type DISCOVER
        "3d0701" + "02004c5e0002"  # 61 client id
        "37050103060f79"  # 55 PRL 1 3 6 15 121
        "3c084d53465420352e30"  # 60 "MSFT 5.0"
        "0c0477656231"  # 12 "web1"
        "ff"
    )
)

REQUEST = header() + bytes.fromhex(
    "350103"  # REQUEST
    "32040a010132"  # 50 requested 10.1.1.50
    "36040a010101"  # 54 server id 10.1.1.1
    "370401030f06"
    "ff"
)


def slices(data: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(data)), st.integers(0, len(data))).map(
        lambda ab: data[min(ab) : max(ab)]
    )


class ParseFixtureTests(SynchronousTestCase):
    def test_discover(self) -> None:
        pkt = p.parse(DISCOVER)
        self.assertEqual(pkt.op, p.BOOTREQUEST)
        self.assertEqual((pkt.htype, pkt.hlen, pkt.hops), (1, 6, 0))
        self.assertEqual(pkt.xid, 0x3903F326)
        self.assertTrue(pkt.broadcast)
        self.assertEqual(pkt.chaddr, MAC)
        self.assertEqual(pkt.ciaddr, IPv4Address("0.0.0.0"))
        self.assertEqual(p.message_type(pkt), MessageType.DISCOVER)
        self.assertEqual(p.parameter_request_list(pkt), (1, 3, 6, 15, 121))
        self.assertEqual(p.client_id(pkt), b"\x01" + MAC)
        self.assertEqual(p.hostname(pkt), "web1")
        self.assertTrue(p.is_msft_client(pkt))
        self.assertIsNone(p.server_id(pkt))
        self.assertIsNone(p.requested_ip(pkt))
        self.assertEqual([c for c, _ in pkt.options], [53, 61, 55, 60, 12])

    def test_request(self) -> None:
        pkt = p.parse(REQUEST)
        self.assertEqual(p.message_type(pkt), MessageType.REQUEST)
        self.assertEqual(p.requested_ip(pkt), IPv4Address("10.1.1.50"))
        self.assertEqual(p.server_id(pkt), IPv4Address("10.1.1.1"))
        self.assertFalse(p.is_msft_client(pkt))

    def test_pad_and_missing_end_accepted(self) -> None:
        pkt = p.parse(header() + b"\x00\x00\x35\x01\x01")
        self.assertEqual(pkt.options, ((53, b"\x01"),))

    def test_bytes_after_end_ignored(self) -> None:
        pkt = p.parse(header() + b"\x35\x01\x01\xff\x99\x99")
        self.assertEqual(pkt.options, ((53, b"\x01"),))

    def test_rfc3396_instances_concatenated(self) -> None:
        pkt = p.parse(header() + b"\x0c\x02ab\x35\x01\x01\x0c\x02cd\xff")
        self.assertEqual(pkt.options, ((12, b"abcd"), (53, b"\x01")))

    def test_option_overload_file_and_sname(self) -> None:
        data = bytearray(header() + b"\x34\x01\x03\x0c\x01a\xff")
        data[108:112] = b"\x0c\x01b\xff"  # file
        data[44:48] = b"\x0f\x01c\xff"  # sname
        pkt = p.parse(bytes(data))
        self.assertEqual(pkt.options, ((12, b"ab"), (15, b"c")))
        self.assertEqual((pkt.file, pkt.sname), (b"", b""))

    def test_bad_helpers_read_as_absent(self) -> None:
        pkt = p.parse(header() + b"\x35\x02\x01\x01\x32\x03\x01\x02\x03\x36\x00\xff")
        self.assertIsNone(p.message_type(pkt))
        self.assertIsNone(p.requested_ip(pkt))
        self.assertIsNone(p.server_id(pkt))
        self.assertIsNone(p.message_type(p.parse(header() + b"\x35\x01\x63")))


class MalformedTests(SynchronousTestCase):
    def assertMalformed(self, data: bytes) -> None:
        self.assertRaises(MalformedPacket, p.parse, data)

    def test_short(self) -> None:
        self.assertMalformed(b"")
        self.assertMalformed(DISCOVER[:239])

    def test_bad_magic(self) -> None:
        data = bytearray(DISCOVER)
        data[236] = 0
        self.assertMalformed(bytes(data))

    def test_bad_op(self) -> None:
        self.assertMalformed(b"\x03" + DISCOVER[1:])

    def test_bad_hlen(self) -> None:
        self.assertMalformed(DISCOVER[:2] + b"\x00" + DISCOVER[3:])
        self.assertMalformed(DISCOVER[:2] + b"\x11" + DISCOVER[3:])
        self.assertMalformed(DISCOVER[:2] + b"\x05" + DISCOVER[3:])

    def test_truncated_option(self) -> None:
        self.assertMalformed(header() + b"\x35\x01")
        self.assertMalformed(header() + b"\x35")
        self.assertMalformed(header() + b"\x0c\x05abc")

    def test_bad_overload(self) -> None:
        self.assertMalformed(header() + b"\x34\x01\x04\xff")
        self.assertMalformed(header() + b"\x34\x00\xff")

    def test_truncated_overloaded_file(self) -> None:
        data = bytearray(header() + b"\x34\x01\x01\xff")
        data[108 + 126 : 108 + 128] = b"\x0c\x05"
        self.assertMalformed(bytes(data))

    def test_is_a_value_error(self) -> None:
        self.assertTrue(issubclass(MalformedPacket, ValueError))

    @FUZZ
    @given(slices(DISCOVER))
    def test_discover_slices(self, data: bytes) -> None:
        try:
            p.parse(data)
        except MalformedPacket:
            pass

    @FUZZ
    @given(slices(REQUEST))
    def test_request_slices(self, data: bytes) -> None:
        try:
            p.parse(data)
        except MalformedPacket:
            pass

    def test_every_prefix_and_suffix(self) -> None:
        for data in (DISCOVER, REQUEST):
            for i in range(len(data) + 1):
                for piece in (data[:i], data[i:]):
                    try:
                        p.parse(piece)
                    except MalformedPacket:
                        pass

    @FUZZ
    @given(st.binary(max_size=600))
    def test_random_bytes(self, data: bytes) -> None:
        try:
            p.parse(data)
        except MalformedPacket:
            pass

    @FUZZ
    @given(st.binary(min_size=1, max_size=400))
    def test_random_options_after_valid_header(self, tail: bytes) -> None:
        try:
            pkt = p.parse(header() + tail)
        except MalformedPacket:
            return
        p.serialise(pkt)


class SerialiseTests(SynchronousTestCase):
    def test_fixture_round_trip(self) -> None:
        for data in (DISCOVER, REQUEST):
            out = p.serialise(p.parse(data))
            self.assertEqual(len(out), 300)
            self.assertEqual(out, data + bytes(300 - len(data)))

    def test_padding_and_end(self) -> None:
        pkt = DhcpPacket(op=2, xid=1, chaddr=MAC, options=(p.opt_message_type(MessageType.ACK),))
        out = p.serialise(pkt)
        self.assertEqual(len(out), 300)
        self.assertEqual(out[236:244], b"\x63\x82\x53\x63\x35\x01\x05\xff")
        self.assertEqual(out[244:], bytes(56))

    def test_no_padding_beyond_300(self) -> None:
        pkt = DhcpPacket(op=2, xid=1, chaddr=MAC, options=((12, b"x" * 200),))
        self.assertEqual(len(p.serialise(pkt)), 240 + 202 + 1)

    def test_long_option_split_rfc3396(self) -> None:
        value = bytes(range(256)) + bytes(range(100))
        out = p.serialise(DhcpPacket(op=2, xid=1, chaddr=MAC, options=((121, value),)))
        self.assertEqual(out[240:242], b"\x79\xff")
        self.assertEqual(out[242:497], value[:255])
        self.assertEqual(out[497:499], bytes([121, 101]))
        self.assertEqual(out[499:600], value[255:])
        self.assertEqual(out[600], 255)
        self.assertEqual(p.parse(out).options, ((121, value),))

    def test_empty_option(self) -> None:
        out = p.serialise(DhcpPacket(op=2, xid=1, chaddr=MAC, options=((3, b""),)))
        self.assertEqual(out[240:243], b"\x03\x00\xff")
        self.assertEqual(p.parse(out).options, ((3, b""),))

    def test_invalid_packets_refused(self) -> None:
        self.assertRaises(ValueError, DhcpPacket, op=2, xid=1, chaddr=MAC[:5])
        self.assertRaises(ValueError, DhcpPacket, op=2, xid=1 << 32, chaddr=MAC)
        self.assertRaises(ValueError, DhcpPacket, op=2, xid=1, chaddr=MAC, options=((255, b""),))
        self.assertRaises(ValueError, DhcpPacket, op=2, xid=1, chaddr=MAC, sname=b"x" * 65)

    @settings(max_examples=200, database=None, deadline=None)
    @given(
        st.builds(
            DhcpPacket,
            op=st.sampled_from([1, 2]),
            xid=st.integers(0, 0xFFFFFFFF),
            chaddr=st.binary(min_size=6, max_size=6),
            hops=st.integers(0, 255),
            secs=st.integers(0, 0xFFFF),
            flags=st.integers(0, 0xFFFF),
            ciaddr=st.ip_addresses(v=4),
            yiaddr=st.ip_addresses(v=4),
            siaddr=st.ip_addresses(v=4),
            giaddr=st.ip_addresses(v=4),
            sname=st.binary(max_size=64).map(lambda b: b.rstrip(b"\x00")),
            file=st.binary(max_size=128).map(lambda b: b.rstrip(b"\x00")),
            options=st.dictionaries(
                st.integers(1, 254).filter(lambda c: c != p.OPT_OVERLOAD), st.binary(max_size=600), max_size=8
            ).map(lambda d: tuple(d.items())),
        )
    )
    def test_round_trip(self, pkt: DhcpPacket) -> None:
        self.assertEqual(p.parse(p.serialise(pkt)), pkt)


class EncoderTests(SynchronousTestCase):
    def test_fixed_encoders(self) -> None:
        a = IPv4Address
        self.assertEqual(p.opt_subnet_mask(a("255.255.255.0")), (1, b"\xff\xff\xff\x00"))
        self.assertEqual(p.opt_router([a("10.1.1.1")]), (3, b"\x0a\x01\x01\x01"))
        self.assertEqual(p.opt_dns([a("10.1.1.1"), a("8.8.8.8")]), (6, b"\x0a\x01\x01\x01\x08\x08\x08\x08"))
        self.assertEqual(p.opt_hostname("web1"), (12, b"web1"))
        self.assertEqual(p.opt_domain("cloudnine.internal"), (15, b"cloudnine.internal"))
        self.assertEqual(p.opt_broadcast(a("10.1.1.255")), (28, b"\x0a\x01\x01\xff"))
        self.assertEqual(p.opt_lease_time(p.INFINITE_LEASE), (51, b"\xff\xff\xff\xff"))
        self.assertEqual(p.opt_renewal_time(1800), (58, b"\x00\x00\x07\x08"))
        self.assertEqual(p.opt_rebinding_time(3150), (59, b"\x00\x00\x0c\x4e"))
        self.assertEqual(p.opt_server_id(a("10.1.1.1")), (54, b"\x0a\x01\x01\x01"))
        self.assertEqual(p.opt_message_type(MessageType.NAK), (53, b"\x06"))
        self.assertEqual(p.opt_mtu(1450), (26, b"\x05\xaa"))
        self.assertEqual(p.opt_ms_release_on_shutdown(), (43, b"\x02\x04\x00\x00\x00\x01"))
        self.assertRaises(ValueError, p.opt_hostname, "")
        self.assertRaises(ValueError, p.opt_lease_time, -1)

    def test_classless_routes_rfc3442_examples(self) -> None:
        # RFC 3442 section 3 table, each with router 10.0.0.1.
        gw = IPv4Address("10.0.0.1")
        cases = [
            ("0.0.0.0/0", b"\x00"),
            ("10.0.0.0/8", b"\x08\x0a"),
            ("10.0.0.0/24", b"\x18\x0a\x00\x00"),
            ("10.17.0.0/16", b"\x10\x0a\x11"),
            ("10.27.129.0/24", b"\x18\x0a\x1b\x81"),
            ("10.229.0.128/25", b"\x19\x0a\xe5\x00\x80"),
            ("10.198.122.47/32", b"\x20\x0a\xc6\x7a\x2f"),
        ]
        for net, prefix in cases:
            routes = [(IPv4Network(net), gw)]
            self.assertEqual(p.encode_classless_routes(routes), prefix + gw.packed)
            self.assertEqual(p.decode_classless_routes(prefix + gw.packed), routes)
        both = [(IPv4Network("10.0.0.0/8"), gw), (IPv4Network("0.0.0.0/0"), IPv4Address("10.1.1.1"))]
        self.assertEqual(p.opt_classless_routes(both), (121, b"\x08\x0a\x0a\x00\x00\x01\x00\x0a\x01\x01\x01"))
        self.assertEqual(p.opt_ms_classless_routes(both)[0], 249)

    def test_classless_routes_decode_errors(self) -> None:
        for bad in (b"\x21" + bytes(8), b"\x18\x0a\x00", b"\x19\x0a\x00\x00\x81\x0a\x00\x00\x01"):
            self.assertRaises(MalformedPacket, p.decode_classless_routes, bad)


class ScapyCrossCheckTests(SynchronousTestCase):
    """scapy builds what we parse, and parses what we build."""

    def test_scapy_discover_parses(self) -> None:
        built = bytes(
            BOOTP(op=1, xid=0x1234, chaddr=MAC + bytes(10), flags=0x8000)
            / DHCP(
                options=[
                    ("message-type", "discover"),
                    ("client_id", b"\x01" + MAC),
                    ("param_req_list", [1, 3, 6, 15, 121]),
                    ("vendor_class_id", b"MSFT 5.0"),
                    ("hostname", b"web1"),
                    "end",
                ]
            )
        )
        pkt = p.parse(built)
        self.assertEqual((pkt.xid, pkt.chaddr, pkt.flags), (0x1234, MAC, 0x8000))
        self.assertEqual(p.message_type(pkt), MessageType.DISCOVER)
        self.assertEqual(p.client_id(pkt), b"\x01" + MAC)
        self.assertEqual(p.parameter_request_list(pkt), (1, 3, 6, 15, 121))
        self.assertEqual(p.hostname(pkt), "web1")
        self.assertTrue(p.is_msft_client(pkt))

    def test_scapy_request_parses(self) -> None:
        built = bytes(
            BOOTP(op=1, xid=7, chaddr=MAC + bytes(10), ciaddr="10.1.1.50")
            / DHCP(
                options=[
                    ("message-type", "request"),
                    ("requested_addr", "10.1.1.50"),
                    ("server_id", "10.1.1.1"),
                    "end",
                ]
            )
        )
        pkt = p.parse(built)
        self.assertEqual(pkt.ciaddr, IPv4Address("10.1.1.50"))
        self.assertEqual(p.requested_ip(pkt), IPv4Address("10.1.1.50"))
        self.assertEqual(p.server_id(pkt), IPv4Address("10.1.1.1"))

    def test_scapy_parses_our_ack(self) -> None:
        a = IPv4Address
        routes = [
            (IPv4Network("169.254.169.254/32"), a("10.1.1.1")),
            (IPv4Network("0.0.0.0/0"), a("10.1.1.1")),
        ]
        ours = DhcpPacket(
            op=2,
            xid=0xDEADBEEF,
            chaddr=MAC,
            flags=0x8000,
            yiaddr=a("10.1.1.50"),
            siaddr=a("10.1.1.1"),
            options=(
                p.opt_message_type(MessageType.ACK),
                p.opt_server_id(a("10.1.1.1")),
                p.opt_lease_time(p.INFINITE_LEASE),
                p.opt_renewal_time(1800),
                p.opt_rebinding_time(3150),
                p.opt_subnet_mask(a("255.255.255.0")),
                p.opt_broadcast(a("10.1.1.255")),
                p.opt_router([a("10.1.1.1")]),
                p.opt_dns([a("10.1.1.1"), a("8.8.8.8")]),
                p.opt_domain("cloudnine.internal"),
                p.opt_hostname("web1"),
                p.opt_classless_routes(routes),
                p.opt_ms_release_on_shutdown(),
            ),
        )
        theirs = BOOTP(p.serialise(ours))
        self.assertEqual(theirs.op, 2)
        self.assertEqual(theirs.xid, 0xDEADBEEF)
        self.assertEqual(theirs.yiaddr, "10.1.1.50")
        self.assertEqual(theirs.siaddr, "10.1.1.1")
        self.assertEqual(bytes(theirs.chaddr)[:6], MAC)
        opts = {o[0]: o[1:] for o in theirs[DHCP].options if isinstance(o, tuple)}
        self.assertEqual(opts["message-type"], (5,))
        self.assertEqual(opts["server_id"], ("10.1.1.1",))
        self.assertEqual(opts["lease_time"], (0xFFFFFFFF,))
        self.assertEqual(opts["renewal_time"], (1800,))
        self.assertEqual(opts["rebinding_time"], (3150,))
        self.assertEqual(opts["subnet_mask"], ("255.255.255.0",))
        self.assertEqual(opts["broadcast_address"], ("10.1.1.255",))
        self.assertEqual(opts["router"], ("10.1.1.1",))
        self.assertEqual(opts["name_server"], ("10.1.1.1", "8.8.8.8"))
        self.assertEqual(opts["domain"], (b"cloudnine.internal",))
        self.assertEqual(opts["hostname"], (b"web1",))
        self.assertEqual(
            opts["classless_static_routes"], (["169.254.169.254/32:10.1.1.1", "0.0.0.0/0:10.1.1.1"],)
        )
        self.assertEqual(opts["vendor_specific"], (b"\x02\x04\x00\x00\x00\x01",))
        self.assertIn("end", theirs[DHCP].options)
