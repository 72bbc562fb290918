"""Tests for `routervm.dns.lean`, cross-checked byte for byte against the library path
(twisted.names through `RouterDnsFactory`) on the same queries (DESIGN.md §6)."""

from __future__ import annotations

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from routervm.dns.lean import EDNS_UDP_SIZE, answer, compile_table, encode_name
from tests.routervm.test_dns_support import (
    ROUTER_IP,
    edns_query_bytes,
    library_answer,
    offline_server,
    parse,
    query_bytes,
    table,
    udp_answer,
    vm,
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

#: (name as sent, type) the lean path answers NXDOMAIN.
MISSING = (
    ("nosuch.cloud.internal", dns.A),
    ("NoSuch.CLOUD.internal", dns.MX),
    ("a.b.nosuch.Cloud.Internal", dns.AAAA),
    ("x.cloud.internal.cloud.internal", dns.PTR),
    ("nosuch.cloud.internal", dns.ALL_RECORDS),
    ("nosuch", dns.A),
    ("NOSUCH", dns.TXT),
)

#: Queries the lean path leaves to the library.
OTHERS = (
    ("9.9.168.192.in-addr.arpa", dns.PTR),
    ("cloud.internal", dns.SOA),
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
        """AAAA for a known name: no answers, no error, authoritative; the domain's SOA in the
        authority section when the name is in the domain (RFC 2308 §2.2)."""
        out = answer(query_bytes("web1", dns.AAAA), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.rCode, m.auth, m.answers, m.authority), (dns.OK, 1, [], []))
        out = answer(query_bytes("WEB1.cloud.internal", dns.AAAA), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.rCode, m.auth, m.answers), (dns.OK, 1, []))
        self.assertEqual([(r.name.name, r.type) for r in m.authority], [(b"cloud.internal", dns.SOA)])

    def test_nxdomain(self) -> None:
        """An unknown name in the domain: NXDOMAIN, authoritative, with the domain's SOA (names
        compressed to the question's spelling of the domain, TTL and minimum 0); an unknown single
        label: NXDOMAIN without SOA."""
        out = answer(query_bytes("nosuch.CLOUD.internal", dns.A, id=77), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.id, m.rCode, m.auth, m.recAv, m.answers), (77, dns.ENAME, 1, 1, []))
        [soa] = m.authority
        self.assertEqual((soa.name.name, soa.type, soa.ttl), (b"CLOUD.internal", dns.SOA, 0))
        self.assertEqual(
            (soa.payload.mname.name, soa.payload.rname.name, soa.payload.minimum),
            (b"data-server.CLOUD.internal", b"hostmaster.CLOUD.internal", 0),
        )
        out = answer(query_bytes("nosuch", dns.A), self.lean)
        assert out is not None
        m = parse(out)
        self.assertEqual((m.rCode, m.auth, m.authority), (dns.ENAME, 1, []))

    def test_edns(self) -> None:
        """A query with an OPT record (dig's, with a cookie; DO set or not) gets one back:
        version 0, our UDP payload size, DO clear, no options."""
        for do in (False, True):
            for name in ("web1.cloud.internal", "nosuch.cloud.internal"):
                out = answer(edns_query_bytes(name, do=do, size=4096), self.lean)
                assert out is not None, (name, do)
                m = dns._EDNSMessage()
                m.fromStr(out)
                self.assertEqual((m.ednsVersion, m.dnssecOK, m.maxSize), (0, False, EDNS_UDP_SIZE))
                self.assertTrue(out.endswith(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"))

    def test_declines(self) -> None:
        """Names not ours, private reverse names, other types of known names, other classes,
        other EDNS versions, two OPT records, malformed options, a dot inside a label, responses,
        other opcodes, several questions and short input all return None."""
        for name, qtype in OTHERS:
            self.assertIsNone(answer(query_bytes(name, qtype), self.lean), (name, qtype))
            self.assertIsNone(answer(edns_query_bytes(name, qtype), self.lean), (name, qtype))
        for name in ("web1", "nosuch.cloud.internal"):
            self.assertIsNone(answer(query_bytes(name, cls=dns.CH), self.lean))
        good = query_bytes("web1")
        opt = b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"
        edns = good[:11] + b"\x01" + good[12:] + opt
        self.assertIsNotNone(answer(edns, self.lean))
        bad_edns = (
            edns_query_bytes("web1", version=1),
            good[:11] + b"\x02" + good[12:] + opt + opt,
            edns + b"\x00",
            edns[:-2] + b"\x00\x03\x00\x0a\x00",  # an option longer than the record
            edns[:-2] + b"\x00\x04\x00\x0a\x00\x01",
            edns[:-11] + b"\x01a" + opt[1:],  # the OPT owner is not the root
        )
        for data in bad_edns:
            self.assertIsNone(answer(data, self.lean), data)
        response = good[:2] + bytes([good[2] | 0x80]) + good[3:]
        notify = good[:2] + bytes([good[2] | (4 << 3)]) + good[3:]
        two = good[:5] + b"\x02" + good[6:] + good[12:]
        dotted = query_bytes("nosuch.cloud.internal")
        dotted = dotted[:12] + b"\x0cnosuch.cloud" + dotted[25:]  # "nosuch.cloud" as one label
        pointer = good[:12] + b"\xc0\x0c" + good[-4:]
        for data in (response, notify, two, good[:-1], good + b"\x00", b"", good[:12], dotted, pointer):
            self.assertIsNone(answer(data, self.lean), data)

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
            for name, qtype in KNOWN + MISSING:
                for rd in (False, True):
                    queries = [query_bytes(name, qtype, id=0x4242, rd=rd)]
                    queries += [
                        edns_query_bytes(name, qtype, id=0x4243, rd=rd, size=size, do=do, cookie=cookie)
                        for size in (0, 512, 1232, 4096)
                        for do in (False, True)
                        for cookie in (False, True)
                    ]
                    for data in queries:
                        lean_out = answer(data, srv.authority.lean)
                        library_out = library_answer(srv, transport, data)
                        self.assertIsNotNone(lean_out, (name, qtype, data))
                        self.assertEqual(lean_out, library_out, (name, qtype, rd, upstreams, data))
                        self.assertEqual(udp_answer(srv, transport, data), [lean_out])

    def test_mutations(self) -> None:
        """Every single-byte change of plain and EDNS queries (known and missing names): whenever
        the lean path still answers, the library path gives the same bytes."""
        srv, transport, _ = offline_server(upstreams=(("192.0.2.53", 53),), allowed=False)
        bases = [
            query_bytes("web1.cloud.internal"),
            edns_query_bytes("Web1.cloud.internal"),
            edns_query_bytes("50.1.1.10.in-addr.arpa", dns.PTR, cookie=False),
            edns_query_bytes("nosuch.cloud.internal", dns.AAAA),
            query_bytes("nosuch"),
        ]
        answered = 0
        for base in bases:
            for at in range(len(base)):
                for value in {0, 1, 0x29, 0x41, 0x80, 0xC0, 0xFF, base[at] ^ 0x20}:
                    data = base[:at] + bytes([value]) + base[at + 1 :]
                    lean_out = answer(data, srv.authority.lean)
                    if lean_out is None:
                        continue
                    answered += 1
                    self.assertEqual(lean_out, library_answer(srv, transport, data), data)
        self.assertGreater(answered, 100)

    def test_no_domain(self) -> None:
        """Without a network domain: no SOA anywhere, the same bytes on both paths."""
        srv, transport, _ = offline_server(table(domain=""))
        for name, qtype in (("web1", dns.A), ("web1", dns.AAAA), ("nosuch", dns.A), ("nosuch", dns.MX)):
            for data in (query_bytes(name, qtype), edns_query_bytes(name, qtype)):
                lean_out = answer(data, srv.authority.lean)
                self.assertIsNotNone(lean_out, name)
                self.assertEqual(lean_out, library_answer(srv, transport, data), name)
                self.assertEqual(parse(lean_out).authority, [])

    def test_edns_errors(self) -> None:
        """The library path: an EDNS version other than 0 gets BADVERS (extended RCODE 1) with an
        OPT of version 0; two OPT records get FORMERR."""
        srv, transport, _ = offline_server()
        [out] = udp_answer(srv, transport, edns_query_bytes("web1", version=1))
        m = dns._EDNSMessage()
        m.fromStr(out)
        self.assertEqual((m.rCode, m.ednsVersion, m.answers), (16, 0, []))
        two = parse(edns_query_bytes("web1"))
        two.additional = two.additional * 2
        [out] = udp_answer(srv, transport, two.toStr())
        self.assertEqual(parse(out).rCode, dns.EFORMAT)

    def test_truncation(self) -> None:
        """An answer too large for the client's UDP size: the lean path declines and the library
        path sends the question alone with TC; with EDNS room the lean path answers in full."""
        many = tuple(vm("big", (f"10.1.2.{i}", True), uuid=f"u{i}") for i in range(1, 61))
        srv, transport, _ = offline_server(table(many))
        plain = query_bytes("big.cloud.internal")
        self.assertIsNone(answer(plain, srv.authority.lean))
        [out] = udp_answer(srv, transport, plain)
        m = parse(out)
        self.assertEqual((m.trunc, m.answers, len(m.queries)), (1, [], 1))
        self.assertLessEqual(len(out), 512)
        for size in (0, 600):
            small = edns_query_bytes("big.cloud.internal", size=size)
            self.assertIsNone(answer(small, srv.authority.lean))
            [out] = udp_answer(srv, transport, small)
            m = dns._EDNSMessage()
            m.fromStr(out)
            self.assertEqual((m.trunc, m.answers, m.ednsVersion), (1, [], 0))
        big = edns_query_bytes("big.cloud.internal", size=1232)
        lean_out = answer(big, srv.authority.lean)
        assert lean_out is not None
        self.assertEqual(len(parse(lean_out).answers), 60)
        self.assertEqual(lean_out, library_answer(srv, transport, big))

    def test_soa_at_the_apex(self) -> None:
        """The library path answers SOA for the domain itself."""
        srv, transport, _ = offline_server()
        [out] = udp_answer(srv, transport, query_bytes("Cloud.Internal", dns.SOA))
        m = parse(out)
        self.assertEqual([(r.name.name, r.type) for r in m.answers], [(b"Cloud.Internal", dns.SOA)])
        self.assertEqual((m.rCode, m.auth, m.authority), (dns.OK, 1, []))

    def test_library_only(self) -> None:
        """What the library answers where the lean path declines: NXDOMAIN (authoritative) for
        unknown names that are ours, NODATA for other types, ANY gives the A record, and names
        not ours are REFUSED when there is no upstream."""
        srv, transport, _ = offline_server()
        expected = {
            ("9.9.168.192.in-addr.arpa", dns.PTR): (dns.ENAME, 1, 0),
            ("web1.cloud.internal", dns.MX): (dns.OK, 1, 0),
            ("web1.cloud.internal", dns.ALL_RECORDS): (dns.OK, 1, 1),
            ("example.com", dns.A): (dns.EREFUSED, 0, 0),
        }
        for (name, qtype), (rcode, auth, count) in expected.items():
            [out] = udp_answer(srv, transport, query_bytes(name, qtype))
            m = parse(out)
            self.assertEqual((m.rCode, m.auth, len(m.answers), m.recDes), (rcode, auth, count, 1), name)
