"""A minimal HTTP/1.1 responder for the router's guest-facing GET services (metadata, passwords).

DESIGN.md §6: twisted.web serves metadata GETs at about a quarter of nginx's rate; this lean
protocol answers the same requests at well over half of it.  It does only what those services
need: a request head (request line and header fields, no body) goes in, a handler's
``(status, headers, body)`` comes out.  Everything else about HTTP is handled conservatively:

* the head is limited to ``max_head`` bytes (default 8 KiB) and ``max_headers`` fields (100);
  beyond either → ``431``.  A request carrying a body (``Content-Length`` > 0 or any
  ``Transfer-Encoding``) to GET/HEAD → ``413``; other methods still reach the handler (which
  answers 405/501/403) and the connection is closed, since the body is never read.
* a malformed request line or header field (obsolete line folding, a space before the colon, a
  non-token name, an NUL, a bad ``Content-Length``, HTTP/1.1 without exactly one ``Host``) → ``400``;
  an HTTP major version other than 1 → ``505``.  Every error reply closes the connection.
* persistent connections and pipelining: HTTP/1.1 keeps the connection unless ``Connection:
  close``; HTTP/1.0 closes unless ``Connection: keep-alive`` (answered with the same header).
  Requests are answered in order; the protocol is a streaming producer for its transport, so a
  client that does not read its answers stops being read from.
* a connection idle (nothing received) for ``idle_timeout`` seconds on the injected clock is
  aborted.
* HEAD gets the headers of the GET answer (``Content-Length`` included) and no body.
* a handler exception is logged and answered ``500``; nothing ever raises out of the protocol.

Header names reach the handler lower-cased, each with the list of its values in arrival order;
the path is the raw request-target (absolute-form targets reduced to their path), not decoded.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

from twisted.internet import interfaces, tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["REASONS", "Handler", "HTTPOptions", "LeanHTTPFactory", "LeanHTTPProtocol", "Reply"]

#: ``(status, headers, body)``; the protocol adds Server/Date first and Content-Length and
#: Connection after the handler's headers, as configured.
Reply = tuple[int, Sequence[tuple[bytes, bytes]], bytes]

REASONS: dict[int, bytes] = {
    200: b"OK",
    204: b"No Content",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIGITS = re.compile(rb"[0-9]{1,18}")


class Handler(Protocol):
    """What a lean HTTP listener answers with."""

    def respond(
        self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
    ) -> Reply:
        """The answer to one request.  ``method`` is any syntactically valid method; the handler
        decides what other methods than GET/HEAD get.  For HEAD the body is computed but not
        sent."""
        ...


class GuestService(Protocol):
    """A guest-facing service that answers per guest interface (metadata, passwords)."""

    def respond_on(
        self, interface: str, method: str, path: str, headers: dict[str, list[str]], peer_ip: str
    ) -> Reply:
        ...


class OnInterface:
    """A `GuestService` bound to the guest interface one listener serves: the listener's Handler."""

    def __init__(self, service: GuestService, interface: str) -> None:
        self.service = service
        self.interface = interface

    def __repr__(self) -> str:
        return f"<OnInterface {self.interface} of {self.service!r}>"

    def respond(
        self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
    ) -> Reply:
        return self.service.respond_on(self.interface, method, path, headers, peer_ip)


@dataclass(frozen=True)
class HTTPOptions:
    """How a listener frames its answers."""

    #: The status line's protocol version.
    version: bytes = b"HTTP/1.1"
    #: ``False``: one request per connection, closed after the answer (an HTTP/1.0 server).
    keep_alive: bool = True
    #: A ``Server`` header sent first, if set.
    server: bytes | None = None
    #: Send a ``Date`` header (after ``Server``).
    date: bool = True
    #: Add ``Content-Length`` to the handler's answers (error answers always carry it).
    content_length: bool = True
    idle_timeout: float = 60.0
    max_head: int = 8192
    max_headers: int = 100


class _Reject(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@implementer(interfaces.IPushProducer)
class LeanHTTPProtocol(TwistedProtocol):
    """One HTTP connection answered by ``handler``."""

    log = Logger()

    def __init__(self, handler: Handler, clock: IReactorTime, options: HTTPOptions | None = None) -> None:
        self.handler = handler
        self.clock = clock
        self.options = HTTPOptions() if options is None else options
        self._buffer = b""
        self._closing = False
        self._paused = False
        self._last_activity = 0.0
        self._timer: IDelayedCall | None = None
        self._direct: socket.socket | None = None
        self._date_second = -1
        self._date = b""
        self.peer_ip = ""
        self.local_ip = ""

    # -- connection life -------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        host = self.transport.getHost()  # type: ignore[union-attr]
        self.peer_ip = str(getattr(peer, "host", ""))
        self.local_ip = str(getattr(host, "host", ""))
        self._last_activity = self.clock.seconds()
        self._timer = self.clock.callLater(self.options.idle_timeout, self._check_idle)
        transport = self.transport
        if (
            isinstance(transport, tcp.Connection)
            and not getattr(transport, "TLS", False)
            and isinstance(getattr(transport, "dataBuffer", None), bytes)
            and isinstance(getattr(transport, "_tempDataBuffer", None), list)
        ):
            # One write per answer: never hold it back waiting for the client's ACK.
            transport.setTcpNoDelay(True)
            self._direct = transport.socket
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        self._direct = None
        self._buffer = b""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _check_idle(self) -> None:
        self._timer = None
        if self.transport is None:
            return
        elapsed = self.clock.seconds() - self._last_activity
        if elapsed >= self.options.idle_timeout:
            # Also when closing: a client that never reads the rest of its answer is dropped.
            self._closing = True
            self._buffer = b""
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        self._timer = self.clock.callLater(self.options.idle_timeout - elapsed, self._check_idle)

    # -- IPushProducer: stop reading while the client does not read our answers -------------------

    def pauseProducing(self) -> None:
        if not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            if not self._closing:
                self.transport.resumeProducing()  # type: ignore[union-attr]
                self._process_safely()

    def stopProducing(self) -> None:
        self._closing = True
        self._buffer = b""

    # -- requests --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = self.clock.seconds()
        self._buffer += data
        self._process_safely()

    def _process_safely(self) -> None:
        try:
            self._process()
        except Exception:
            self.log.failure("lean HTTP protocol error")
            self._error(500)

    def _process(self) -> None:
        max_head = self.options.max_head
        while self._buffer and not self._paused and not self._closing:
            buffer = self._buffer
            if buffer[0] in (13, 10):
                # Empty lines before a request line are ignored (RFC 9112 §2.2).
                buffer = self._buffer = buffer.lstrip(b"\r\n")
                if not buffer:
                    return
            # The whole head, its terminating empty line included, must fit in max_head bytes.
            end = buffer.find(b"\r\n\r\n", 0, max_head)
            size = 4
            # A head ended by bare LFs (tolerated, as nginx and Apache do).
            bare = buffer.find(b"\n\n", 0, max_head if end < 0 else end + 2)
            if bare >= 0 and (end < 0 or bare < end):
                end, size = bare, 2
            else:
                mixed = buffer.find(b"\n\r\n", 0, max_head if end < 0 else end + 1)
                if mixed >= 0 and (end < 0 or mixed < end):
                    end, size = mixed, 3
            if end < 0:
                if len(buffer) >= max_head:
                    self._error(431)
                return
            head = buffer[:end]
            self._buffer = buffer[end + size :]
            self._request(head)

    def _request(self, head: bytes) -> None:
        method = ""
        try:
            lines = head.split(b"\n")
            line = lines[0].rstrip(b"\r")
            match = _REQUEST_LINE.fullmatch(line)
            if match is None:
                raise _Reject(400)
            raw_method, target, major, minor = match.groups()
            method = raw_method.decode("ascii")
            if major != b"1":
                raise _Reject(505)
            http11 = minor != b"0"
            headers = self._headers(lines)
            path = _path(target)
            if http11 and len(headers.get("host", ())) != 1:
                raise _Reject(400)
            has_body = self._has_body(headers)
        except _Reject as reject:
            self._error(reject.status, method)
            return

        if has_body and method in ("GET", "HEAD"):
            self._error(413, method)
            return
        connection = headers.get("connection")
        tokens = {t.strip().lower() for v in connection for t in v.split(",")} if connection else set()
        keep = self.options.keep_alive and not has_body
        if keep:
            keep = "close" not in tokens if http11 else "keep-alive" in tokens
        try:
            status, reply_headers, body = self.handler.respond(
                method, path, headers, self.peer_ip, self.local_ip
            )
        except Exception:
            self.log.failure("metadata/password handler failed for {method} request", method=method)
            self._error(500, method)
            return
        announce = b""
        if self.options.keep_alive:
            if not keep and http11:
                announce = b"Connection: close\r\n"
            elif keep and not http11:
                announce = b"Connection: keep-alive\r\n"
        self._send(status, reply_headers, body, method == "HEAD", self.options.content_length, announce)
        if not keep:
            self._close()

    def _headers(self, lines: list[bytes]) -> dict[str, list[str]]:
        if len(lines) - 1 > self.options.max_headers:
            raise _Reject(431)
        headers: dict[str, list[str]] = {}
        for raw in lines[1:]:
            line = raw.rstrip(b"\r")
            colon = line.find(b":")
            if colon <= 0 or line[0] in (32, 9):
                raise _Reject(400)
            name = line[:colon]
            if _TOKEN.fullmatch(name) is None:
                raise _Reject(400)
            value = line[colon + 1 :].strip(b" \t")
            if b"\x00" in value or b"\r" in value:
                raise _Reject(400)
            key = name.decode("ascii").lower()
            text = value.decode("latin-1")
            found = headers.get(key)
            if found is None:
                headers[key] = [text]
            else:
                found.append(text)
        return headers

    @staticmethod
    def _has_body(headers: dict[str, list[str]]) -> bool:
        if "transfer-encoding" in headers:
            return True
        lengths = headers.get("content-length")
        if lengths is None:
            return False
        values = {v.strip() for value in lengths for v in value.split(",")}
        if len(values) != 1:
            raise _Reject(400)
        value = values.pop().encode("latin-1")
        if _DIGITS.fullmatch(value) is None:
            raise _Reject(400)
        return int(value) > 0

    # -- answers ---------------------------------------------------------------------------------

    def _date_header(self) -> bytes:
        now = self.clock.seconds()
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return self._date

    def _send(
        self,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        head_only: bool,
        content_length: bool,
        announce: bytes,
    ) -> None:
        options = self.options
        parts = [
            options.version,
            b" %d " % status,
            REASONS.get(status, b"Unknown"),
            b"\r\n",
        ]
        if options.server is not None:
            parts += (b"Server: ", options.server, b"\r\n")
        if options.date:
            parts.append(self._date_header())
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if content_length:
            parts.append(b"Content-Length: %d\r\n" % len(body))
        parts += (announce, b"\r\n")
        if not head_only:
            parts.append(body)
        self._write(b"".join(parts))

    def _write(self, data: bytes) -> None:
        """Write ``data``; on a plain TCP transport with nothing queued, send it at once.

        Twisted's ``write`` queues the bytes and sends them on a later reactor turn, after
        registering the socket for writability (two ``epoll_ctl`` calls and one more loop
        iteration per answer), which costs a third of the rate of a small-answer server.  An
        answer nearly always fits in the socket buffer, so the lean path sends it straight away
        and hands Twisted only what the kernel did not take, keeping the order of bytes.
        """
        transport = self.transport
        direct = self._direct
        if (
            direct is not None
            and not transport.dataBuffer  # type: ignore[union-attr]
            and not transport._tempDataBuffer  # type: ignore[union-attr]
            and not transport.disconnecting  # type: ignore[union-attr]
        ):
            try:
                sent = direct.send(data)
            except OSError:
                sent = 0  # would block, or the connection failed: Twisted's write sees to it
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)  # type: ignore[union-attr]

    def _error(self, status: int, method: str = "") -> None:
        """A protocol-level error answer; always closes the connection."""
        if self._closing:
            return
        body = b"%d %s\n" % (status, REASONS.get(status, b"Error"))
        announce = b"Connection: close\r\n" if self.options.keep_alive else b""
        self._send(status, ((b"Content-Type", b"text/plain"),), body, method == "HEAD", True, announce)
        self._close()

    def _close(self) -> None:
        self._closing = True
        self._buffer = b""
        self.transport.loseConnection()  # type: ignore[union-attr]


def _path(target: bytes) -> str:
    """The path of a request-target: origin-form as is, absolute-form reduced to its path."""
    if target[:1] == b"/":
        return target.decode("ascii")
    lowered = target[:8].lower()
    if lowered.startswith(b"http://") or lowered.startswith(b"https://"):
        rest = target[target.index(b"//") + 2 :]
        cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=-1)
        if cut < 0:
            return "/"
        path = rest[cut:].decode("ascii")
        return path if path.startswith("/") else "/" + path
    raise _Reject(400)


class LeanHTTPFactory(ServerFactory):
    """Builds `LeanHTTPProtocol` connections answered by one handler."""

    def __init__(self, handler: Handler, clock: IReactorTime, options: HTTPOptions | None = None) -> None:
        self.handler = handler
        self.clock = clock
        self.options = HTTPOptions() if options is None else options

    def buildProtocol(self, addr: object) -> LeanHTTPProtocol:
        protocol = LeanHTTPProtocol(self.handler, self.clock, self.options)
        protocol.factory = self
        return protocol
