"""Unit tests for DNS over TCP (`routervm.dns.server.DnsStreamProtocol`) on a fake clock and
transport: the idle timeout (RFC 7766 §6.2.3), answers after the client's half-close, forwarded
ones included, pipelining, and malformed messages (issue: one guest denying TCP services)."""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.testing import StringTransport
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from routervm.dns.server import CLOSE_GRACE, IDLE_TIMEOUT
from tests.routervm.test_dns_support import edns_query_bytes, forwarding_server, parse, query_bytes


def framed(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def unframe(stream: bytes) -> list[dns.Message]:
    out = []
    while stream:
        (length,) = struct.unpack("!H", stream[:2])
        out.append(parse(stream[2 : 2 + length]))
        stream = stream[2 + length :]
    return out


class StreamTests(SynchronousTestCase):
    def connect(self, **limits: Any) -> tuple[Any, StringTransport, Any, Any]:
        srv, _, clock, upstreams = forwarding_server(**limits)
        protocol = srv.factory.buildProtocol(IPv4Address("TCP", "10.1.1.50", 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.1.50", 40000))
        protocol.makeConnection(transport)
        return protocol, transport, clock, upstreams

    def test_half_closeable(self) -> None:
        protocol, _, clock, _ = self.connect()
        self.assertTrue(IHalfCloseableProtocol.providedBy(protocol))
        protocol.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_idle_timeout(self) -> None:
        """A connection with no complete query is aborted after the idle timeout; bytes of an
        unfinished query do not restart the timer."""
        protocol, transport, clock, _ = self.connect()
        data = framed(query_bytes("web1"))
        for byte in range(4):
            clock.advance(IDLE_TIMEOUT / 5)
            protocol.dataReceived(data[byte : byte + 1])
        self.assertFalse(transport.disconnecting)
        clock.advance(IDLE_TIMEOUT / 5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_idle_close_aborts_a_client_not_reading(self) -> None:
        """The idle close is graceful; when the connection is still there after the grace (its
        client does not read what is buffered), it is aborted."""
        protocol, transport, clock, _ = self.connect()
        clock.advance(IDLE_TIMEOUT)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        clock.advance(CLOSE_GRACE)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_complete_queries_keep_it_open(self) -> None:
        """Each complete query restarts the idle timer (dig +keepopen)."""
        protocol, transport, clock, _ = self.connect()
        for i in range(5):
            clock.advance(IDLE_TIMEOUT - 1)
            protocol.dataReceived(framed(query_bytes("web1", id=i)))
        self.assertFalse(transport.disconnecting)
        self.assertEqual([m.id for m in unframe(transport.value())], list(range(5)))
        clock.advance(IDLE_TIMEOUT)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)

    def test_half_close_after_local_answers(self) -> None:
        """Queries sent before the client's half-close are all answered (pipelined, EDNS too),
        then the server closes."""
        protocol, transport, clock, _ = self.connect()
        protocol.dataReceived(framed(query_bytes("web1", id=1)) + framed(edns_query_bytes("nosuch.cloud.internal", id=2)))
        protocol.readConnectionLost()
        answers = unframe(transport.value())
        self.assertEqual([(m.id, m.rCode) for m in answers], [(1, dns.OK), (2, dns.ENAME)])
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_half_close_waits_for_forwarded_answers(self) -> None:
        """A forwarded query pending at the half-close is still answered, then the connection
        closes; so is one that times out upstream (SERVFAIL)."""
        protocol, transport, clock, upstreams = self.connect()
        protocol.dataReceived(framed(query_bytes("example.com", id=7)) + framed(query_bytes("web1", id=8)))
        protocol.readConnectionLost()
        self.assertEqual([m.id for m in unframe(transport.value())], [8])
        self.assertFalse(transport.disconnecting)
        [(port, message)] = upstreams.take()
        rr = dns.RRHeader(b"example.com", dns.A, dns.IN, 60, dns.Record_A("192.0.2.80", 60))
        upstreams.answer(port, message, answers=(rr,))
        self.assertEqual([m.id for m in unframe(transport.value())], [8, 7])
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)

        protocol, transport, clock, upstreams = self.connect()
        protocol.dataReceived(framed(query_bytes("silent.example.com", id=9)))
        protocol.readConnectionLost()
        clock.pump([1, 1])
        [m] = unframe(transport.value())
        self.assertEqual((m.id, m.rCode), (9, dns.ESERVER))
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_answers_after_the_connection_is_gone(self) -> None:
        """Forwarded answers (or the SERVFAILs of a forwarder closing at shutdown) that arrive after
        the connection was lost are dropped quietly: a lost TCP transport raises when written to or
        closed, and that must neither log a traceback nor reach the transport."""
        protocol, transport, clock, upstreams = self.connect()
        protocol.dataReceived(framed(query_bytes("example.com", id=7)) + framed(query_bytes("other.example", id=8)))
        sent = transport.value()

        def gone(*args: object) -> None:
            raise AttributeError("fileno")  # as twisted's tcp.Connection after connectionLost

        protocol.connectionLost(None)
        transport.write = transport.loseConnection = transport.unregisterProducer = gone  # type: ignore[method-assign]
        [(port, message), _] = upstreams.take()
        rr = dns.RRHeader(b"example.com", dns.A, dns.IN, 60, dns.Record_A("192.0.2.80", 60))
        upstreams.answer(port, message, answers=(rr,))
        clock.pump([1, 1, 1])
        self.assertEqual(transport.value(), sent)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_backpressure(self) -> None:
        """The protocol produces for its transport: a full write buffer (a client not reading its
        answers) stops the reading of its queries until it drains; a close unregisters it."""
        protocol, transport, _, _ = self.connect()
        self.assertIs(transport.producer, protocol)
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        protocol.readConnectionLost()
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)

    def test_half_close_with_nothing_pending(self) -> None:
        protocol, transport, _, _ = self.connect()
        protocol.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)

    def test_malformed_messages(self) -> None:
        """Malformed and response messages are dropped without an error or a line each; the
        connection still answers."""
        protocol, transport, clock, _ = self.connect()
        response = parse(query_bytes("web1"))
        response.answer = 1
        for _ in range(100):
            protocol.dataReceived(framed(b"") + framed(b"\x00\x01\x02") + framed(response.toStr()))
        protocol.dataReceived(framed(query_bytes("web1", id=3)))
        self.assertEqual([m.id for m in unframe(transport.value())], [3])
        self.assertEqual(protocol.drops.dropped, 300)
        self.assertEqual(self.flushLoggedErrors(), [])
        protocol.connectionLost(None)
