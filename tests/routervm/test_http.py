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


def connect(factory: LeanHTTPFactory) -> tuple[LeanHTTPProtocol, StringTransport]:
    address = IPv4Address("TCP", "10.1.1.50", 40000)
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
