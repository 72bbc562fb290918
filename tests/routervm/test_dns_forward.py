"""Unit tests for `routervm.dns.forward` through the server, on a fake clock and fake upstream
sockets: a flood of forwarded queries cannot hold more than the bounds (sockets, queries in flight
per client and in all, time, cache), failures answer SERVFAIL at once or within the timeout and log
no traceback, and everything held is released afterwards (issue: forwarding as a resource leak)."""

from __future__ import annotations

from typing import Any

from twisted.logger import globalLogPublisher
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from routervm.dns.forward import SERVFAIL_TTL, SOCKETS_PER_UPSTREAM
from tests.routervm.test_dns_support import forwarding_server, parse, query_bytes

TWO = (("192.0.2.53", 53), ("192.0.2.54", 53))


def a_record(name: bytes, ttl: int = 60) -> dns.RRHeader:
    return dns.RRHeader(name, dns.A, dns.IN, ttl, dns.Record_A("192.0.2.80", ttl))


def soa_record(ttl: int, minimum: int) -> dns.RRHeader:
    return dns.RRHeader(b"example.com", dns.SOA, dns.IN, ttl,
                        dns.Record_SOA(b"ns.example.com", b"root.example.com", 1, 2, 3, 4, minimum, ttl=ttl))


class ForwardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def ask(self, srv: Any, name: str, source: str = "10.1.1.50", qtype: int = dns.A, id: int = 1) -> None:
        srv.protocol.datagramReceived(query_bytes(name, qtype, id=id), (source, 40000))

    def assertReleased(self, srv: Any, clock: Any) -> None:
        """Nothing is held for a query any more: no timers, no pending IDs, no counts."""
        forwarder = srv.forwarder
        self.assertEqual((forwarder.waiting, forwarder.pending_count(), forwarder._by_source), (0, 0, {}))
        for row in forwarder._pool():
            for sock in row:
                self.assertEqual(sock.pending, {})
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_bounded_socket_pool(self) -> None:
        """A thousand different names use the same few sockets per upstream, random IDs, and
        each socket is connected to its upstream."""
        srv, transport, clock, upstreams = forwarding_server(upstreams=TWO, per_source=2000, total=2000)
        for i in range(1000):
            self.ask(srv, f"n{i}.example.com", id=i)
        self.assertEqual(len(upstreams.ports), SOCKETS_PER_UPSTREAM * 2)
        self.assertEqual({p.peer for p in upstreams.ports}, set(TWO))
        sent = upstreams.take()
        self.assertEqual(len(sent), 1000)
        self.assertEqual({p.peer for p, _ in sent}, {TWO[0]})  # the first upstream first
        self.assertGreater(len({m.id for _, m in sent}), 900)
        for port, message in sent:
            upstreams.answer(port, message, answers=(a_record(message.queries[0].name.name),))
        self.assertEqual(len(transport.pop()), 1000)
        self.assertReleased(srv, clock)

    def test_per_source_bound(self) -> None:
        """Beyond `per_source` queries in flight a client gets SERVFAIL at once, nothing is sent,
        and another client is still forwarded."""
        srv, transport, clock, upstreams = forwarding_server(per_source=3, total=100)
        for i in range(10):
            self.ask(srv, f"n{i}.example.com", id=i)
        self.assertEqual(len(upstreams.take()), 3)
        out = [parse(d) for d in transport.pop()]
        self.assertEqual([(m.id, m.rCode) for m in out], [(i, dns.ESERVER) for i in range(3, 10)])
        self.ask(srv, "other.example.com", source="10.1.1.60")
        self.assertEqual(len(upstreams.take()), 1)
        self.assertEqual(srv.forwarder.stats["limited"], 7)
        clock.pump([1, 1])
        self.assertEqual(len(transport.pop()), 4)  # the four in flight time out: SERVFAIL
        self.assertReleased(srv, clock)

    def test_global_bound(self) -> None:
        """Beyond `total` queries in flight from all clients, SERVFAIL at once."""
        srv, transport, clock, upstreams = forwarding_server(per_source=10, total=5)
        for i in range(8):
            self.ask(srv, f"n{i}.example.com", source=f"10.1.1.{i + 10}", id=i)
        self.assertEqual(len(upstreams.take()), 5)
        self.assertEqual([parse(d).id for d in transport.pop()], [5, 6, 7])
        clock.pump([1, 1])
        transport.pop()
        self.assertReleased(srv, clock)

    def test_silent_upstream(self) -> None:
        """A silent upstream: the next one is asked after half the timeout, SERVFAIL after the
        whole (2 s), then SERVFAIL is cached briefly; one log line, no traceback."""
        srv, transport, clock, upstreams = forwarding_server(upstreams=TWO)
        self.ask(srv, "example.com", id=9)
        [(first, _)] = upstreams.take()
        clock.advance(1)
        [(second, _)] = upstreams.take()
        self.assertEqual((first.peer, second.peer), TWO)
        self.assertEqual(transport.pop(), [])
        clock.advance(1)
        [out] = transport.pop()
        self.assertEqual((parse(out).id, parse(out).rCode), (9, dns.ESERVER))
        self.ask(srv, "example.com", id=10)
        self.assertEqual(parse(transport.pop()[0]).rCode, dns.ESERVER)
        self.assertEqual(upstreams.take(), [])
        clock.advance(SERVFAIL_TTL)
        self.ask(srv, "example.com", id=11)
        self.assertEqual(len(upstreams.take()), 1)
        clock.pump([1, 1])
        transport.pop()
        self.assertReleased(srv, clock)
        self.assertEqual(len([e for e in self.events if "upstream failure" in str(e.get("what"))]), 1)

    def test_flood_at_a_silent_upstream(self) -> None:
        """Thousands of random names at a silent upstream: bounded in flight, every query answered
        (SERVFAIL) within the timeout, a bounded number of log lines, and all released."""
        srv, transport, clock, upstreams = forwarding_server()
        answered = 0
        for second in range(5):
            for i in range(1000):
                self.ask(srv, f"r{second}-{i}.example.com", source=f"10.1.1.{i % 2 + 50}", id=i)
                self.assertLessEqual(srv.forwarder.waiting, 128)
            clock.advance(1)
            answered += len(transport.pop())
        clock.pump([1, 1])
        answered += len(transport.pop())
        self.assertEqual(answered, 5000)
        self.assertEqual(len(upstreams.ports), SOCKETS_PER_UPSTREAM)
        self.assertReleased(srv, clock)
        self.assertLessEqual(len(self.events), 10)
        self.assertLessEqual(srv.forwarder.cache_size(), srv.forwarder.cache_entries)

    def test_refused(self) -> None:
        """An upstream that refuses (ICMP port unreachable): the next one is asked at once; when
        all have refused, SERVFAIL at once."""
        srv, transport, clock, upstreams = forwarding_server(upstreams=TWO)
        self.ask(srv, "example.com")
        [(first, _)] = upstreams.take()
        first.protocol.connectionRefused()
        [(second, message)] = upstreams.take()
        self.assertEqual(second.peer, TWO[1])
        self.assertEqual(transport.pop(), [])
        second.protocol.connectionRefused()
        [out] = transport.pop()
        self.assertEqual(parse(out).rCode, dns.ESERVER)
        self.assertReleased(srv, clock)
        self.assertEqual(srv.forwarder.stats["refused"], 2)

    def test_socket_closed_by_an_icmp_error(self) -> None:
        """Twisted's epoll reactor closes a connected UDP port on an ICMP error with nothing to
        read: its questions go to the next upstream (or SERVFAIL at once) and the next query to
        that upstream opens a fresh socket in its place, so the pool keeps its size."""
        srv, transport, clock, upstreams = forwarding_server(upstreams=TWO)
        self.ask(srv, "example.com")
        [(first, _)] = upstreams.take()
        first.protocol.stopProtocol()  # what the port's connectionLost does
        [(second, message)] = upstreams.take()
        self.assertEqual(second.peer, TWO[1])
        upstreams.answer(second, message, answers=(a_record(b"example.com"),))
        self.assertEqual(parse(transport.pop()[0]).rCode, dns.OK)
        self.ask(srv, "other.example.com")
        [(port, message)] = upstreams.take()
        self.assertEqual(port.peer, TWO[0])
        live = [sock.port for row in srv.forwarder._pool() for sock in row]
        self.assertEqual(len(live), SOCKETS_PER_UPSTREAM * 2)
        self.assertNotIn(first, live)
        self.assertEqual(len(upstreams.ports), SOCKETS_PER_UPSTREAM * 2 + 1)
        upstreams.answer(port, message, answers=(a_record(b"other.example.com"),))
        transport.pop()
        self.assertReleased(srv, clock)

        srv, transport, clock, upstreams = forwarding_server()
        self.ask(srv, "example.com")
        [(only, _)] = upstreams.take()
        only.protocol.stopProtocol()
        self.assertEqual(parse(transport.pop()[0]).rCode, dns.ESERVER)
        self.assertReleased(srv, clock)

    def test_sockets_rotate(self) -> None:
        """After `rotate_after` queries a socket is replaced by a fresh one (a new port); the old
        one still takes its pending answers and closes once they are in."""
        srv, transport, clock, upstreams = forwarding_server(sockets_per_upstream=1, rotate_after=3)
        for i in range(7):
            self.ask(srv, f"n{i}.example.com", id=i)
        sent = upstreams.take()
        self.assertEqual([len(p.sent) for p in upstreams.ports], [0, 0, 0])  # taken above
        self.assertEqual([sum(1 for q, _ in sent if q is p) for p in upstreams.ports], [3, 3, 1])
        self.assertEqual([p.stopped for p in upstreams.ports], [False, False, False])
        for port, message in sent:
            upstreams.answer(port, message, answers=(a_record(message.queries[0].name.name),))
        self.assertEqual(len(transport.pop()), 7)
        self.assertEqual([p.stopped for p in upstreams.ports], [True, True, False])
        self.assertReleased(srv, clock)

    def test_negative_cache(self) -> None:
        """NXDOMAIN and NODATA with an SOA are cached for min(SOA TTL, minimum) (RFC 2308 §5);
        without an SOA they are not cached."""
        srv, transport, clock, upstreams = forwarding_server()
        for rcode, name in ((dns.ENAME, "nx.example.com"), (dns.OK, "nodata.example.com")):
            self.ask(srv, name)
            [(port, message)] = upstreams.take()
            upstreams.answer(port, message, rcode=rcode, authority=(soa_record(300, 30),))
            m = parse(transport.pop()[0])
            self.assertEqual((m.rCode, m.auth, [r.type for r in m.authority]), (rcode, 0, [dns.SOA]))
            clock.advance(29)
            self.ask(srv, name)
            self.assertEqual(upstreams.take(), [])
            m = parse(transport.pop()[0])
            self.assertEqual((m.rCode, m.authority[0].ttl), (rcode, 300 - 29))
            clock.advance(1)
            self.ask(srv, name)
            [(port, message)] = upstreams.take()
            upstreams.answer(port, message, rcode=rcode)  # no SOA this time: not cached
            transport.pop()
            self.ask(srv, name)
            [(port, message)] = upstreams.take()
            upstreams.answer(port, message, rcode=rcode)
            transport.pop()
        self.assertReleased(srv, clock)

    def test_positive_cache_counts_down(self) -> None:
        srv, transport, clock, upstreams = forwarding_server()
        self.ask(srv, "example.com")
        [(port, message)] = upstreams.take()
        upstreams.answer(port, message, answers=(a_record(b"example.com", 60),))
        transport.pop()
        clock.advance(45)
        self.ask(srv, "EXAMPLE.com")
        self.assertEqual(upstreams.take(), [])
        self.assertEqual(parse(transport.pop()[0]).answers[0].ttl, 15)
        clock.advance(15)
        self.ask(srv, "example.com")
        self.assertEqual(len(upstreams.take()), 1)
        clock.pump([1, 1])
        transport.pop()
        self.assertReleased(srv, clock)

    def test_truncated_answer_passed_on_not_cached(self) -> None:
        """An upstream's truncated UDP answer reaches the client with TC set and is not cached."""
        srv, transport, clock, upstreams = forwarding_server()
        for _ in range(2):
            self.ask(srv, "big.example.com")
            [(port, message)] = upstreams.take()
            reply = dns.Message(id=message.id, answer=True, trunc=True, recAv=True)
            reply.queries = message.queries
            port.protocol.datagramReceived(reply.toStr(), port.peer)
            m = parse(transport.pop()[0])
            self.assertEqual((m.rCode, m.trunc), (dns.OK, 1))
        self.assertEqual(srv.forwarder.cache_size(), 0)
        self.assertReleased(srv, clock)

    def test_expired_entries_leave_the_cache(self) -> None:
        """Expired cache entries are dropped as new answers are stored (no timer per entry), so a
        flood's SERVFAIL entries do not stay once expired."""
        srv, transport, clock, upstreams = forwarding_server(per_source=1000, total=1000)
        for i in range(200):
            self.ask(srv, f"gone{i}.example.com", id=i)
        clock.pump([1, 1])
        upstreams.take()
        self.assertEqual(srv.forwarder.cache_size(), 200)
        clock.advance(SERVFAIL_TTL)
        for i in range(100):
            self.ask(srv, f"new{i}.example.com", id=i)
        for port, message in upstreams.take():
            upstreams.answer(port, message, answers=(a_record(message.queries[0].name.name),))
        self.assertEqual(srv.forwarder.cache_size(), 100)
        transport.pop()
        self.assertReleased(srv, clock)

    def test_spoofed_and_stray_answers_ignored(self) -> None:
        """An answer with an unknown ID, another question, or garbage is ignored; the real one
        is then used."""
        srv, transport, clock, upstreams = forwarding_server()
        self.ask(srv, "example.com")
        [(port, message)] = upstreams.take()
        wrong_id = parse(message.toStr())
        wrong_id.id ^= 1
        upstreams.answer(port, wrong_id, answers=(a_record(b"example.com"),))
        other = parse(message.toStr())
        other.queries = [dns.Query(b"evil.example.com")]
        upstreams.answer(port, other, answers=(a_record(b"evil.example.com"),))
        port.protocol.datagramReceived(b"\x00", port.peer)
        self.assertEqual(transport.pop(), [])
        upstreams.answer(port, message, answers=(a_record(b"example.com"),))
        self.assertEqual(parse(transport.pop()[0]).answers[0].name.name, b"example.com")
        self.assertReleased(srv, clock)

    def test_equal_questions_share_one_query(self) -> None:
        srv, transport, clock, upstreams = forwarding_server()
        self.ask(srv, "example.com", id=1)
        self.ask(srv, "Example.COM", source="10.1.1.60", id=2)
        [(port, message)] = upstreams.take()
        upstreams.answer(port, message, answers=(a_record(b"example.com"),))
        self.assertEqual(sorted(parse(d).id for d in transport.pop()), [1, 2])
        self.assertReleased(srv, clock)

    def test_stop_closes_the_pool(self) -> None:
        """Stopping the UDP listener answers what is pending (SERVFAIL) and closes the sockets."""
        srv, transport, clock, upstreams = forwarding_server()
        self.ask(srv, "example.com")
        srv.protocol.stopProtocol()
        self.assertEqual(parse(transport.pop()[0]).rCode, dns.ESERVER)
        self.assertTrue(all(p.stopped for p in upstreams.ports))
        self.assertEqual(clock.getDelayedCalls(), [])
