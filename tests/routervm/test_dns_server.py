"""Unit tests for `routervm.dns.server` on a fake clock and transport: client restrictions, table
swaps and robustness against malformed datagrams (security.md 21)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from routervm.dns.server import DROP_LOG_INTERVAL, client_filter
from tests.routervm.test_dns_support import (
    forwarding_server,
    offline_server,
    parse,
    query_bytes,
    table,
    udp_answer,
    vm,
)

VALID = (
    query_bytes("web1.cloud.internal"),
    query_bytes("50.1.1.10.in-addr.arpa", dns.PTR),
    query_bytes("nosuch.cloud.internal"),
    query_bytes("example.com", dns.MX),
    query_bytes("data-server", dns.ALL_RECORDS, rd=False),
)


class ClientFilterTests(SynchronousTestCase):
    def test_cidrs(self) -> None:
        allowed = client_filter(["10.1.1.0/24", "fd00::/64"])
        self.assertTrue(allowed("10.1.1.200"))
        self.assertTrue(allowed("fd00::5"))
        self.assertFalse(allowed("10.1.2.1"))
        self.assertFalse(allowed("not an address"))
        self.assertFalse(client_filter([])("10.1.1.1"))


class ServerTests(SynchronousTestCase):
    def test_outside_client_refused_for_other_names(self) -> None:
        """A client outside the guest networks gets REFUSED for names not ours (nothing is sent
        upstream) but still gets the router's own names."""
        srv, transport, clock = offline_server(upstreams=(("192.0.2.53", 53),), allowed=False)
        [out] = udp_answer(srv, transport, query_bytes("example.com"))
        m = parse(out)
        self.assertEqual((m.rCode, m.auth, m.recAv), (dns.EREFUSED, 0, 1))
        self.assertEqual(clock.getDelayedCalls(), [])
        [out] = udp_answer(srv, transport, query_bytes("nosuch.cloud.internal"))
        self.assertEqual(parse(out).rCode, dns.ENAME)
        [out] = udp_answer(srv, transport, query_bytes("web1"))
        self.assertEqual(parse(out).answers[0].payload.dottedQuad(), "10.1.1.50")

    def test_allowed_client_forwarded(self) -> None:
        """For an allowed client a name not ours goes to the upstream resolver, and its answer
        comes back: not authoritative, RD copied, RA set."""
        srv, transport, clock, upstreams = forwarding_server(allowed=True)
        self.assertEqual(udp_answer(srv, transport, query_bytes("example.com", id=5)), [])
        [(port, sent)] = upstreams.take()
        self.assertEqual(sent.queries, [dns.Query(b"example.com", dns.A)])
        rr = dns.RRHeader(b"example.com", dns.A, dns.IN, 60, dns.Record_A("192.0.2.80", 60), auth=True)
        upstreams.answer(port, sent, answers=(rr,))
        m = parse(transport.pop()[0])
        self.assertEqual((m.id, m.rCode, m.auth, m.recDes, m.recAv), (5, dns.OK, 0, 1, 1))
        self.assertEqual([a.payload.dottedQuad() for a in m.answers], ["192.0.2.80"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_update(self) -> None:
        """`update` swaps the whole table: new names answer, removed ones are NXDOMAIN."""
        srv, transport, _ = offline_server()
        srv.update(table((vm("fresh", ("10.1.1.77", True)),)))
        [out] = udp_answer(srv, transport, query_bytes("fresh.cloud.internal"))
        self.assertEqual(parse(out).answers[0].payload.dottedQuad(), "10.1.1.77")
        [out] = udp_answer(srv, transport, query_bytes("web1.cloud.internal"))
        self.assertEqual(parse(out).rCode, dns.ENAME)
        self.assertEqual(srv.table.lookup("fresh").addresses, ("10.1.1.77",))

    def test_no_questions(self) -> None:
        """A query without questions is REFUSED (twisted.names' `allowQuery`); one with two gets
        FORMERR (twisted.names would answer the first only)."""
        srv, transport, _ = offline_server()
        empty = dns.Message(id=7).toStr()
        two = dns.Message(id=8)
        two.queries = [dns.Query(b"web1"), dns.Query(b"twin")]
        for data, rcode in ((empty, dns.EREFUSED), (two.toStr(), dns.EFORMAT)):
            [out] = udp_answer(srv, transport, data)
            self.assertEqual(parse(out).rCode, rcode)

    def test_drop_log_rate(self) -> None:
        """Malformed datagrams are dropped and logged at most once per interval."""
        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        srv, transport, clock = offline_server()
        for _ in range(100):
            srv.protocol.datagramReceived(b"\x00\x01\x02", ("10.1.1.50", 1))
        clock.advance(DROP_LOG_INTERVAL)
        srv.protocol.datagramReceived(b"\x00", ("10.1.1.50", 1))
        self.assertEqual(transport.written, [])
        self.assertEqual(srv.protocol.drops.dropped, 101)
        self.assertEqual(len([e for e in events if "dropped malformed" in str(e.get("log_format"))]), 2)

    def test_responses_dropped(self) -> None:
        srv, transport, _ = offline_server()
        response = parse(query_bytes("web1"))
        response.answer = 1
        srv.protocol.datagramReceived(response.toStr(), ("10.1.1.50", 1))
        self.assertEqual(transport.written, [])


class FuzzTests(SynchronousTestCase):
    """Nothing a client sends raises out of the datagram protocol, and a valid query is still
    answered afterwards."""

    def assertStillAnswers(self, srv: object, transport: object) -> None:
        [out] = udp_answer(srv, transport, query_bytes("web1.cloud.internal", id=99))  # type: ignore[arg-type]
        self.assertEqual(parse(out).answers[0].payload.dottedQuad(), "10.1.1.50")

    def test_unencodable_name_dropped(self) -> None:
        """A question whose label is over 63 bytes (it parses, but no answer could repeat it) gets
        no answer and logs no error, and the next valid query is answered."""
        long_label = b"\x40" + b"a" * 64 + b"\x00"
        data = struct.pack("!6H", 7, 0x0100, 1, 0, 0, 0) + long_label + struct.pack("!2H", dns.A, dns.IN)
        for upstreams in ((), (("192.0.2.53", 53),)):
            srv, transport, _ = offline_server(upstreams=upstreams, allowed=False)
            self.assertEqual(udp_answer(srv, transport, data), [])
            self.assertEqual(srv.factory.unencodable, 1)
            self.assertStillAnswers(srv, transport)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_every_sub_slice(self) -> None:
        srv, transport, _ = offline_server(upstreams=(("192.0.2.53", 53),), allowed=False)
        for data in VALID:
            for start in range(len(data) + 1):
                for end in range(start, len(data) + 1):
                    srv.protocol.datagramReceived(data[start:end], ("10.1.1.50", 1))
        transport.pop()
        self.assertStillAnswers(srv, transport)

    @settings(max_examples=400, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=600),
            st.tuples(st.sampled_from(VALID), st.integers(0, 80), st.binary(min_size=1, max_size=4)).map(
                lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]) :]
            ),
        )
    )
    def test_random(self, data: bytes) -> None:
        srv, transport, _ = offline_server(upstreams=(("192.0.2.53", 53),), allowed=False)
        srv.protocol.datagramReceived(data, ("10.1.1.50", 1))
        transport.pop()
        self.assertStillAnswers(srv, transport)
