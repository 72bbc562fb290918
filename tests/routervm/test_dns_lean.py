"""Tests for `routervm.dns.lean`, cross-checked byte for byte against the library path
(twisted.names through `RouterDnsFactory`) on the same queries (DESIGN.md §6)."""

from __future__ import annotations

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from routervm.dns.lean import answer, compile_table, encode_name
from tests.routervm.test_dns_support import (
    ROUTER_IP,
    library_answer,
    offline_server,
    parse,
    query_bytes,
    table,
    udp_answer,
)

#: (name as sent, type) the lean path answers.
KNOWN = (
    ("web1.cloud.internal", dns.A),
    ("WeB1.ClOuD.InTeRnAl", dns.A),
    ("web1", dns.A),
    ("twin.cloud.internal", dns.A),
    ("data-server", dns.A),
    ("Data-Server.cloud.internal", dns.A),
    ("50.1.1.10.in-addr.arpa", dns.PTR),
    ("1.1.1.10.In-Addr.Arpa", dns.PTR),
    ("60.2.2.10.in-addr.arpa", dns.PTR),
    ("web1.cloud.internal", dns.AAAA),
    ("web1", dns.PTR),
    ("50.1.1.10.in-addr.arpa", dns.A),
    ("cloud.internal", dns.A),
)

#: Queries the lean path leaves to the library.
OTHERS = (
    ("nosuch.cloud.internal", dns.A),
    ("nosuch", dns.A),
    ("9.9.168.192.in-addr.arpa", dns.PTR),
    ("web1.cloud.internal", dns.MX),
    ("web1.cloud.internal", dns.ALL_RECORDS),
    ("example.com", dns.A),
)


class LeanAnswerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.lean = compile_table(table(), recursion_available=True)

    def test_a(self) -> None:
        """An A query for a known name: ID and RD copied, QR/AA/RA set, question echoed in the
        case it was sent, the address with TTL 0."""
        out = answer(query_bytes("WeB1.cloud.internal", id=0xBEEF), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.id, m.answer, m.auth, m.recDes, m.recAv, m.rCode), (0xBEEF, 1, 1, 1, 1, 0))
        self.assertEqual(m.queries, [dns.Query(b"WeB1.cloud.internal", dns.A)])
        self.assertEqual(
            [(a.name.name, a.ttl, a.payload.dottedQuad()) for a in m.answers],
            [(b"WeB1.cloud.internal", 0, "10.1.1.50")],
        )
        # The owner name is a pointer to the question.
        self.assertIn(b"\xc0\x0c\x00\x01\x00\x01", out)

    def test_ptr_and_data_server(self) -> None:
        out = answer(query_bytes("1.1.1.10.in-addr.arpa", dns.PTR), self.lean)
        assert out is not None
        self.assertEqual(parse(out).answers[0].payload.name.name, b"data-server.cloud.internal")
        out = answer(query_bytes("data-server", rd=False), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.recDes, m.answers[0].payload.dottedQuad()), (0, ROUTER_IP))

    def test_nodata(self) -> None:
        """AAAA for a known name: no answers, no error, authoritative."""
        out = answer(query_bytes("web1", dns.AAAA), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.rCode, m.auth, m.answers), (dns.OK, 1, []))

    def test_declines(self) -> None:
        """Unknown names, other types, other classes, EDNS, responses, other opcodes, several
        questions and short input all return None."""
        for name, qtype in OTHERS:
            self.assertIsNone(answer(query_bytes(name, qtype), self.lean), (name, qtype))
        self.assertIsNone(answer(query_bytes("web1", cls=dns.CH), self.lean))
        good = query_bytes("web1")
        edns = good[:11] + b"\x01" + good[12:] + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"
        response = good[:2] + bytes([good[2] | 0x80]) + good[3:]
        notify = good[:2] + bytes([good[2] | (4 << 3)]) + good[3:]
        two = good[:5] + b"\x02" + good[6:] + good[12:]
        for data in (edns, response, notify, two, good[:-1], good + b"\x00", b"", good[:12]):
            self.assertIsNone(answer(data, self.lean))

    def test_recursion_flag(self) -> None:
        out = answer(query_bytes("web1"), compile_table(table(), recursion_available=False))
        assert out is not None
        self.assertEqual(parse(out).recAv, 0)

    def test_encode_name(self) -> None:
        self.assertEqual(encode_name("a.bc"), b"\x01a\x02bc\x00")
        self.assertEqual(encode_name(""), b"\x00")


class CrossCheckTests(SynchronousTestCase):
    """The lean path and twisted.names give the same bytes for every query the lean path takes."""

    def test_byte_equal(self) -> None:
        for upstreams in ((), (("192.0.2.53", 53),)):
            srv, transport, _ = offline_server(upstreams=upstreams)
            for name, qtype in KNOWN:
                for rd in (False, True):
                    data = query_bytes(name, qtype, id=0x4242, rd=rd)
                    lean_out = answer(data, srv.authority.lean)
                    library_out = library_answer(srv, transport, data)
                    self.assertIsNotNone(lean_out, (name, qtype))
                    self.assertEqual(lean_out, library_out, (name, qtype, rd, upstreams))
                    self.assertEqual(udp_answer(srv, transport, data), [lean_out])

    def test_library_only(self) -> None:
        """What the library answers where the lean path declines: NXDOMAIN (authoritative) for
        unknown names that are ours, NODATA for other types, ANY gives the A record, and names
        not ours are REFUSED when there is no upstream."""
        srv, transport, _ = offline_server()
        expected = {
            ("nosuch.cloud.internal", dns.A): (dns.ENAME, 1, 0),
            ("nosuch", dns.A): (dns.ENAME, 1, 0),
            ("9.9.168.192.in-addr.arpa", dns.PTR): (dns.ENAME, 1, 0),
            ("web1.cloud.internal", dns.MX): (dns.OK, 1, 0),
            ("web1.cloud.internal", dns.ALL_RECORDS): (dns.OK, 1, 1),
            ("example.com", dns.A): (dns.EREFUSED, 0, 0),
        }
        for (name, qtype), (rcode, auth, count) in expected.items():
            [out] = udp_answer(srv, transport, query_bytes(name, qtype))
            m = parse(out)
            self.assertEqual((m.rCode, m.auth, len(m.answers), m.recDes), (rcode, auth, count, 1), name)
