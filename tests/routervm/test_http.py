"""Tests for `routervm.http` beyond the metadata and password suites: the fast head path agrees
with the general parser, the cached answer heads, `HTTPOptions.handler_headers`, and the direct
socket writes (a client that stops reading stops being read from, and gets every answer in order
once it reads again).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from routervm import http
from routervm.http import HTTPOptions, LeanHTTPFactory, LeanHTTPProtocol, Reply

NOW = 1_700_000_000.0
DATE = b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
#: Never matches: every head then takes the general parser.
NO_FAST_PATH = re.compile(rb"(?!)(.)(.)(.)(.)")


Seen = tuple[str, str, dict[str, list[str]]]


class Recorder:
    """Answers 200 with the path as body; remembers what it was asked."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def respond(
        self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
    ) -> Reply:
        self.seen.append((method, path, headers))
        return (200, ((b"Content-Type", b"text/plain"),), path.encode("ascii"))


def connect(factory: LeanHTTPFactory, peer: str = "10.1.1.50") -> tuple[LeanHTTPProtocol, StringTransport]:
    address = IPv4Address("TCP", peer, 40000)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(hostAddress=IPv4Address("TCP", "10.1.1.1", 80), peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def make(options: HTTPOptions | None = None) -> tuple[Recorder, LeanHTTPFactory, Clock]:
    clock = Clock()
    clock.advance(NOW)
    recorder = Recorder()
    return recorder, LeanHTTPFactory(recorder, clock, options), clock


# Pieces of request heads: the usual shapes and the irregular ones the general parser handles.
REQUEST_LINES = st.sampled_from(
    [
        b"GET /latest/meta-data/ HTTP/1.1",
        b"GET /a?b=c HTTP/1.0",
        b"HEAD /latest/user-data HTTP/1.1",
        b"POST / HTTP/1.1",
        b"GET http://10.1.1.1/latest/meta-data/vm-id HTTP/1.1",
        b"GET / HTTP/2.0",
        b"GET / HTTP/1.10",
        b"GET  / HTTP/1.1",
        b"GET /\xff HTTP/1.1",
        b"GET * HTTP/1.1",
        b"G(T / HTTP/1.1",
        b"GET /",
    ]
)
FIELDS = st.sampled_from(
    [
        b"Host: 10.1.1.1",
        b"Host:10.1.1.1:80",
        b"host: \t10.1.1.1 \t",
        b"HOST: other",
        b"Host:",
        b"User-Agent: curl/8.0",
        b"Accept: */*",
        b"DomU_Request: send_my_password",
        b"Connection: close",
        b"Connection: Keep-Alive",
        b"connection: x, CLOSE ",
        b"Content-Length: 0",
        b"Content-Length: 5",
        b"Content-Length: 0, 0",
        b"Content-Length: 1, 2",
        b"Content-Length: -1",
        b"Transfer-Encoding: chunked",
        b"X-Empty:",
        b"X-Colon: a:b:c",
        b"X-Nul: a\x00b",
        b"X-CR: a\rb",
        b"X-High: \xe9t\xe9",
        b" folded",
        b"Bad Name: x",
        b"Space : x",
        b"nocolon",
        b":novalue",
    ]
)
LINE_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r\r\n"])


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    out = draw(st.sampled_from([b"", b"\r\n"])) + draw(REQUEST_LINES) + draw(LINE_ENDS)
    for field in draw(st.lists(FIELDS, max_size=6)):
        out += field + draw(LINE_ENDS)
    return out + draw(LINE_ENDS)


class FastPathTests(SynchronousTestCase):
    def run_heads(self, data: bytes, fast: bool) -> tuple[bytes, bool, list[Seen]]:
        """(bytes sent, closed, requests handled) for ``data`` on a fresh connection."""
        saved = http._PLAIN_HEAD
        if not fast:
            http._PLAIN_HEAD = NO_FAST_PATH
        try:
            recorder, factory, _ = make()
            protocol, transport = connect(factory)
            protocol.dataReceived(data)
            return transport.value(), bool(transport.disconnecting), recorder.seen
        finally:
            http._PLAIN_HEAD = saved

    @settings(max_examples=400, deadline=None)
    @given(st.lists(heads(), min_size=1, max_size=3))
    def test_same_as_general_parser(self, requests: list[bytes]) -> None:
        """Whatever the heads, pipelined, the fast path answers exactly as the general parser:
        same bytes, same connection state, same requests handed to the handler."""
        data = b"".join(requests)
        self.assertEqual(self.run_heads(data, fast=True), self.run_heads(data, fast=False))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(heads(), min_size=1, max_size=3), st.lists(st.integers(1, 40), max_size=30))
    def test_pieces_same_as_whole(self, requests: list[bytes], cuts: list[int]) -> None:
        """Heads arriving in pieces (each piece searched only where the buffer grew) are answered
        exactly as when they arrive whole."""
        data = b"".join(requests)
        recorder, factory, _ = make()
        protocol, transport = connect(factory)
        rest = data
        for size in cuts:
            protocol.dataReceived(rest[:size])
            rest = rest[size:]
        if rest:
            protocol.dataReceived(rest)
        self.assertEqual((transport.value(), bool(transport.disconnecting), recorder.seen),
                         self.run_heads(data, fast=True))

    def test_head_in_pieces_searched_once(self) -> None:
        """A long head sent a byte at a time: the fast expression is tried once, and each search
        for the end of head starts where the last one stopped."""
        tried: list[int] = []
        plain = http._PLAIN_HEAD

        class Counting:
            def match(self, buffer: bytes, pos: int, endpos: int) -> object:
                tried.append(len(buffer))
                return plain.match(buffer, pos, endpos)

        http._PLAIN_HEAD = Counting()  # type: ignore[assignment]
        try:
            recorder, factory, _ = make()
            protocol, transport = connect(factory)
            head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * 6000 + b"\r\n\r\n"
            for i in range(len(head) - 1):
                protocol.dataReceived(head[i : i + 1])
                self.assertEqual(protocol._scanned, i + 1)
            protocol.dataReceived(head[-1:])
        finally:
            http._PLAIN_HEAD = plain
        self.assertEqual([seen[1] for seen in recorder.seen], ["/"])
        self.assertEqual(tried, [1])
        self.assertEqual(protocol._scanned, 0)

    def test_usual_head_takes_fast_path(self) -> None:
        """The heads curl, wget, cloud-init and wrk send match the fast expression."""
        for head in (
            b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 10.1.1.1\r\nUser-Agent: curl/8.0\r\n"
            b"Accept: */*\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost: 10.1.1.1\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ):
            self.assertIsNotNone(http._PLAIN_HEAD.fullmatch(head), head)
        for head in (b"GET / HTTP/1.1\nHost: x\n\n", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"):
            self.assertIsNone(http._PLAIN_HEAD.fullmatch(head), head)


class HandlerHeadersTests(SynchronousTestCase):
    def test_only_wanted_fields(self) -> None:
        """With ``handler_headers`` the handler gets those fields only (names matched without
        regard to case); the framing fields are still checked."""
        recorder, factory, _ = make(HTTPOptions(handler_headers=frozenset({"DomU_Request"})))
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\ndomu_request: a\r\nX-A: 1\r\n\r\n")
        self.assertEqual(recorder.seen, [("GET", "/", {"domu_request": ["a"]})])
        self.assertFalse(transport.disconnecting)

    def test_no_fields_framing_still_checked(self) -> None:
        recorder, factory, _ = make(HTTPOptions(handler_headers=frozenset()))
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n")
        self.assertEqual(recorder.seen, [("GET", "/a", {})])
        for head, status in (
            (b"GET /a HTTP/1.1\r\nX-A: 1\r\n\r\n", b"400"),
            (b"GET /a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", b"400"),
            (b"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", b"413"),
        ):
            protocol, transport = connect(factory)
            protocol.dataReceived(head)
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 " + status), head)
            self.assertTrue(transport.disconnecting)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertIn(b"\r\nConnection: close\r\n", transport.value())
        self.assertTrue(transport.disconnecting)


class AnswerHeadTests(SynchronousTestCase):
    def test_list_headers(self) -> None:
        """Headers given as a list (not hashable, so not cached) frame the same answer."""

        class ListHandler:
            def respond(
                self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
            ) -> Reply:
                return (200, [(b"Content-Type", b"text/plain")], b"body")

        clock = Clock()
        clock.advance(NOW)
        for _ in range(2):
            protocol, transport = connect(LeanHTTPFactory(ListHandler(), clock))
            protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            self.assertEqual(
                transport.value(),
                b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody",
            )

    def test_cached_head_follows_date(self) -> None:
        """The same answer a second later carries the new date; HEAD gets the same head."""
        _, factory, clock = make()
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        first = transport.value()
        self.assertIn(DATE, first)
        transport.clear()
        clock.advance(1)
        protocol.dataReceived(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(transport.value(), first.replace(b":20 GMT", b":21 GMT"))
        transport.clear()
        protocol.dataReceived(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(transport.value(), first.replace(b":20 GMT", b":21 GMT")[:-2])

    def test_many_lengths(self) -> None:
        """More distinct answers than the cache holds are all framed right."""
        _, factory, _ = make()
        protocol, transport = connect(factory)
        paths = ["/" + "a" * n for n in range(http._MAX_HEADS + 20)]
        for path in paths * 2:
            protocol.dataReceived(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        data = transport.value()
        for path in paths * 2:
            expected = b"Content-Length: %d\r\n\r\n%s" % (len(path), path.encode())
            index = data.index(expected)
            data = data[index + len(expected) :]
        self.assertEqual(data, b"")


class DirectWriteTests(TestCase):
    """A real TCP listener on 127.0.0.1: answers go straight to the socket."""

    BODY = bytes(range(256)) * 4096  # 1 MiB
    COUNT = 24

    def setUp(self) -> None:
        self.calls = 0
        self.protocols: list[LeanHTTPProtocol] = []
        test = self

        class Big:
            def respond(
                self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
            ) -> Reply:
                test.calls += 1
                return (200, (), path.encode("ascii") + test.BODY)

        factory = LeanHTTPFactory(Big(), reactor)
        build = factory.buildProtocol

        def remember(addr: object) -> LeanHTTPProtocol:
            protocol = build(addr)
            self.protocols.append(protocol)
            return protocol

        factory.buildProtocol = remember  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def wait_for(self, condition: object, what: str) -> None:
        for _ in range(500):
            if callable(condition) and condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out waiting for {what}")

    def test_client_not_reading(self) -> Deferred[None]:
        """A client that sends many requests and reads nothing: the server stops answering and
        reading once the kernel holds what it can; when the client reads, every answer arrives
        whole and in order and the connection closes after the last."""
        return Deferred.fromCoroutine(self._client_not_reading())

    async def _client_not_reading(self) -> None:
        received: list[bytes] = []
        closed: Deferred[None] = Deferred()
        count = self.COUNT

        class Client(Protocol):
            def connectionMade(self) -> None:
                self.transport.pauseProducing()  # type: ignore[union-attr]
                requests = [f"GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(count - 1)]
                requests.append(f"GET /{count - 1} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
                self.transport.write(b"".join(requests))  # type: ignore[union-attr]

            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: object = None) -> None:
                closed.callback(None)

        port: int = self.port.getHost().port  # type: ignore[attr-defined]
        client = await ClientCreator(reactor, Client).connectTCP("127.0.0.1", port)
        await self.wait_for(
            lambda: self.calls and self.protocols[0].transport not in reactor.getReaders(),
            "the server to stop reading",
        )
        server = self.protocols[0]
        answered = self.calls
        self.assertLess(answered, count)
        await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.calls, answered)  # nothing more answered while the client waits
        self.assertNotIn(server.transport, reactor.getReaders())  # and nothing more read
        client.transport.resumeProducing()
        await closed
        data = b"".join(received)
        for i in range(count):
            body = f"/{i}".encode() + self.BODY
            head, _, rest = data.partition(b"\r\n\r\n")
            self.assertIn(b"Content-Length: %d" % len(body), head)
            self.assertEqual(rest[: len(body)], body)
            data = rest[len(body) :]
        self.assertEqual(data, b"")
        self.assertEqual(self.calls, count)


class HalfCloseTransport(StringTransport):
    """A StringTransport that, like TCP, can shut its write side down."""

    write_closed = False

    def loseWriteConnection(self) -> None:  # noqa: N802 (Twisted API)
        self.write_closed = True


def connect_tcp(factory: LeanHTTPFactory, peer: str = "10.1.1.50") -> tuple[LeanHTTPProtocol, HalfCloseTransport]:
    address = IPv4Address("TCP", peer, 40000)
    protocol = factory.buildProtocol(address)
    transport = HalfCloseTransport(hostAddress=IPv4Address("TCP", "10.1.1.1", 80), peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


class HeadDeadlineTests(SynchronousTestCase):
    """A request head must be whole head_timeout seconds after it began, however its bytes
    trickle in; the idle timeout alone rules between requests."""

    def test_slow_head_aborted(self) -> None:
        """One byte every 3 s keeps the idle timer happy but not the head deadline (10 s from
        the connection's start); the abort is logged once as bad input."""
        _, factory, clock = make()
        protocol, transport = connect(factory)
        with capturedLogs() as events:
            for byte in b"GET ":
                self.assertFalse(transport.disconnecting)
                protocol.dataReceived(bytes([byte]))
                clock.advance(3)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(factory.bad_input.total, 1)
        self.assertIn("request head not whole within 10s", [e.get("reason") for e in events])
        protocol.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_silent_connection_aborted(self) -> None:
        """A connection that sends nothing gets head_timeout, not idle_timeout."""
        _, factory, clock = make()
        protocol, transport = connect(factory)
        clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_keep_alive_idle_then_later_head(self) -> None:
        """Between requests only the idle timeout applies; a later head has its own deadline
        from its first byte."""
        recorder, factory, clock = make()
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        clock.advance(50)  # idle, well past head_timeout
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"GET /2 HTTP/1.1\r\n")
        clock.advance(9)
        protocol.dataReceived(b"Host: h\r\n")
        clock.advance(0.5)
        protocol.dataReceived(b"\r\n")  # whole at 9.5 s: answered
        self.assertEqual([seen[1] for seen in recorder.seen], ["/1", "/2"])
        clock.advance(30)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"GET /3 HTTP/1.1\r\nHo")  # begun at 80 s after /2...
        clock.advance(10)
        self.assertTrue(transport.disconnecting)  # ...and not whole 10 s later
        self.assertEqual(len(recorder.seen), 2)

    def test_pipelined_partial_head(self) -> None:
        """A whole request followed by part of the next: the deadline of that part runs from its
        arrival."""
        recorder, factory, clock = make()
        protocol, transport = connect(factory)
        clock.advance(8)
        protocol.dataReceived(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HT")
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(recorder.seen), 1)

    def test_custom_timeouts(self) -> None:
        _, factory, clock = make(HTTPOptions(head_timeout=2, idle_timeout=5))
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)


class LingerTests(SynchronousTestCase):
    """After an error answer the write side is shut and input is discarded for a while, so the
    client reads the answer rather than a reset."""

    def test_oversized_head_lingers(self) -> None:
        _, factory, clock = make()
        protocol, transport = connect_tcp(factory)
        protocol.dataReceived(b"GET /" + b"a" * 9000)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        self.assertTrue(transport.write_closed)
        self.assertFalse(transport.disconnecting)  # still reading, to discard
        protocol.dataReceived(b"a" * 30000)
        clock.advance(1.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_linger_bounded_by_bytes(self) -> None:
        _, factory, clock = make()
        protocol, transport = connect_tcp(factory)
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        protocol.dataReceived(b"x" * 65536)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"x")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value().count(b"HTTP/1.1"), 1)  # nothing discarded was parsed

    def test_no_linger_option(self) -> None:
        _, factory, _ = make(HTTPOptions(linger=0))
        protocol, transport = connect_tcp(factory)
        protocol.dataReceived(b"GET / HTTP/3.0\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 505 "))
        self.assertFalse(transport.write_closed)
        self.assertTrue(transport.disconnecting)


class BadInputLogTests(SynchronousTestCase):
    def test_one_line_per_source_then_counts(self) -> None:
        """A thousand bad requests from one source and one from another: two lines in the
        interval, then one summary with the count of the rest."""
        _, factory, clock = make()
        with capturedLogs() as events:
            for _ in range(1000):
                protocol, _transport = connect(factory)
                protocol.dataReceived(b"BAD\r\n\r\n")
            protocol, _transport = connect(factory, "10.1.1.51")
            protocol.dataReceived(b"GET / HTTP/1.1\r\n\r\n")  # no Host
        self.assertEqual([(e["source"], e["reason"]) for e in events],
                         [("10.1.1.50", "400 Bad Request"), ("10.1.1.51", "400 Bad Request")])
        clock.advance(60)
        with capturedLogs() as events:
            protocol, _transport = connect(factory)
            protocol.dataReceived(b"BAD\r\n\r\n")
        self.assertEqual(len(events), 2)
        self.assertEqual(events[0]["count"], 999)
        self.assertEqual(events[0]["busiest"], "10.1.1.50 (999)")
        self.assertEqual(factory.bad_input.total, 1002)


class LingerSocketTests(TestCase):
    """On a real socket: a client still sending an oversized head reads its 431."""

    def test_client_reads_431(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._client_reads_431())

    async def _client_reads_431(self) -> None:
        factory = LeanHTTPFactory(Recorder(), reactor)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        received: list[bytes] = []
        closed: Deferred[None] = Deferred()

        class Client(Protocol):
            def connectionMade(self) -> None:
                # far more than the server reads before answering: the rest is in flight; and
                # the answer is read a moment later, as a busy client would
                self.transport.write(b"GET /" + b"a" * 400_000)  # type: ignore[union-attr]
                self.transport.pauseProducing()  # type: ignore[union-attr]
                reactor.callLater(0.3, self.transport.resumeProducing)  # type: ignore[union-attr]

            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: object = None) -> None:
                closed.callback(None)

        await ClientCreator(reactor, Client).connectTCP("127.0.0.1", port.getHost().port)
        await closed
        self.assertTrue(b"".join(received).startswith(b"HTTP/1.1 431 "), received)
