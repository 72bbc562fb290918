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
  Requests are answered in order.  No answer is started while part of an earlier one still waits
  to be sent, and meanwhile nothing is read from the client, so a client that does not read its
  answers costs one answer and the kernel's socket buffers.
* a connection idle (nothing received) for ``idle_timeout`` seconds on the injected clock is
  aborted, and so is one whose request head is not whole ``head_timeout`` seconds (default 10)
  after it began: after the connection opened for the first request, after its first byte for
  the later ones.  The deadline is not moved by the bytes that arrive, so a client sending a
  byte now and then holds a connection for ``head_timeout`` seconds, not for days.
* after an error answer the server stops sending (``shutdown(SHUT_WR)``) and reads and discards
  what the client still sends, for ``linger`` seconds or ``linger_bytes`` bytes at most, before
  it closes: closing with unread input makes the kernel send a reset, which can destroy the
  answer before the client reads it (a client still sending its oversized head would never see
  its ``431``).
* bad requests (every error answer) and head timeouts are logged through a `BadInputLog`: one
  line per source and interval, then counts.  A head arriving in pieces is searched for its end
  only where it grew, so a byte-at-a-time head costs time linear in its length.
* HEAD gets the headers of the GET answer (``Content-Length`` included) and no body.
* a handler exception is logged and answered ``500``; nothing ever raises out of the protocol.

Header names reach the handler lower-cased, each with the list of its values in arrival order
(only the names in `HTTPOptions.handler_headers` when that is set); the path is the raw
request-target (absolute-form targets reduced to their path), not decoded.

Speed (the metadata bench, ``bench/router_metadata.py``): a head in the usual shape (origin-form
target, HTTP/1.x, every line ended by CRLF) is checked by one regular expression; anything else
takes the general parser, which applies the same rules.  The status line and header block of an
answer are built once per (status, headers, body length, connection header) and second, and an
answer is one ``send`` on the socket: on a plain TCP transport (`twisted.internet.tcp`) the
protocol sends straight away through the transport's handle (``getHandle()``) and gives Twisted
only what the kernel did not take, registering itself as a pull producer, whose
``resumeProducing`` Twisted calls once that rest is sent.  Twisted's ``write`` would otherwise
queue every answer and send it one reactor turn later, after registering the socket for
writability (two ``epoll_ctl`` calls and one more event per answer): a bare Twisted protocol
answering a constant that way serves about half the requests per second of one that sends
directly.
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

from routervm.limits import BadInputLog

__all__ = ["REASONS", "Handler", "HTTPOptions", "LeanHTTPFactory", "LeanHTTPProtocol", "Reply"]

#: ``(status, headers, body)``; the protocol adds Server/Date first and Content-Length and
#: Connection after the handler's headers, as configured.  Answers whose headers are a tuple
#: (hashable) have their head cached.
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

_TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_TOKEN = re.compile(_TCHAR + rb"+")
_DIGITS = re.compile(rb"[0-9]{1,18}")
#: The usual head, whole: an origin-form HTTP/1.x request line, then header fields that the general
#: parser would accept as they are, every line ended by CRLF, then the empty line.  A match from
#: the start of the buffer ends at the first empty line, as the general parser's head does.
_PLAIN_HEAD = re.compile(
    rb"(" + _TCHAR + rb"+) (/[\x21-\x7e]*) HTTP/1\.([0-9])\r\n"
    rb"((?:" + _TCHAR + rb"+:[^\x00\r\n]*\r\n)*)\r\n"
)
#: One field of a head `_PLAIN_HEAD` matched: (name, value without leading blanks).
_PLAIN_FIELD = re.compile(rb"([^:]+):[ \t]*([^\r]*)\r\n")
_METHODS = {b"GET": "GET", b"HEAD": "HEAD", b"POST": "POST"}
_ERROR_HEADERS = ((b"Content-Type", b"text/plain"),)
#: Bound on the cached answer heads of one listener (they are dropped every second anyway).
_MAX_HEADS = 512

#: (name as received, value without leading blanks; trailing ones may remain) of each header
#: field, in arrival order.
Fields = list[tuple[bytes, bytes]]


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
    #: Seconds a request head may take to arrive whole (see the module docstring).
    head_timeout: float = 10.0
    #: After an error answer: seconds, and bytes, of the client's input read and discarded before
    #: the connection is closed.
    linger: float = 2.0
    linger_bytes: int = 65536
    max_head: int = 8192
    max_headers: int = 100
    #: The lower-case names of the header fields the handler is given; ``None``: all of them.
    #: (The framing fields are checked either way.)
    handler_headers: frozenset[str] | None = None


class _Reject(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Heads:
    """The status line and header block of the answers of one listener, built once per (status,
    handler headers, body length, connection header) and second (the ``Date`` value)."""

    def __init__(self, options: HTTPOptions) -> None:
        self.options = options
        self._second = -1
        self._date = b""
        self._heads: dict[tuple[int, Sequence[tuple[bytes, bytes]], int, bytes], bytes] = {}

    def head(
        self, now: float, status: int, headers: Sequence[tuple[bytes, bytes]], length: int, announce: bytes
    ) -> bytes:
        """The head of an answer, its empty line included; ``length`` < 0: no ``Content-Length``."""
        options = self.options
        if options.date:
            second = int(now)
            if second != self._second:
                self._second = second
                self._date = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
                self._heads = {}
        key = (status, headers, length, announce)
        try:
            found = self._heads.get(key)
        except TypeError:  # unhashable headers (a list): built every time
            return self._build(status, headers, length, announce)
        if found is None:
            found = self._build(status, headers, length, announce)
            if len(self._heads) >= _MAX_HEADS:
                self._heads = {}
            self._heads[key] = found
        return found

    def _build(
        self, status: int, headers: Sequence[tuple[bytes, bytes]], length: int, announce: bytes
    ) -> bytes:
        options = self.options
        parts = [options.version, b" %d " % status, REASONS.get(status, b"Unknown"), b"\r\n"]
        if options.server is not None:
            parts += (b"Server: ", options.server, b"\r\n")
        if options.date:
            parts.append(self._date)
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if length >= 0:
            parts.append(b"Content-Length: %d\r\n" % length)
        parts += (announce, b"\r\n")
        return b"".join(parts)


@implementer(interfaces.IPushProducer, interfaces.IPullProducer)
class LeanHTTPProtocol(TwistedProtocol):
    """One HTTP connection answered by ``handler``.

    On a plain TCP transport the protocol writes to the socket itself (see the module docstring)
    and is the transport's pull producer only while Twisted holds a rest of an answer; on any
    other transport it writes through the transport and is its push producer throughout.
    """

    log = Logger()

    def __init__(
        self,
        handler: Handler,
        clock: IReactorTime,
        options: HTTPOptions | None = None,
        heads: _Heads | None = None,
        bad_input: BadInputLog | None = None,
    ) -> None:
        self.handler = handler
        self.bad_input = bad_input
        self.clock = clock
        self.options = HTTPOptions() if options is None else options
        self._heads = heads if heads is not None and heads.options is self.options else _Heads(self.options)
        wanted = self.options.handler_headers
        self._wanted = None if wanted is None else frozenset(name.lower().encode("ascii") for name in wanted)
        self._buffer = b""
        self._closing = False
        # No answer is started: the transport paused us (push), or Twisted holds a rest (pull).
        self._paused = False
        # Twisted holds a rest of an answer we sent directly; we are its pull producer meanwhile.
        self._queued = False
        self._last_activity = 0.0
        # When the connection is aborted unless the head being received is whole by then, or,
        # lingering after an error answer, in any case; None: no such deadline.
        self._deadline: float | None = None
        self._lingering = False
        self._discarded = 0
        # Bytes at the start of the buffer already searched for the end of a head, in vain.
        self._scanned = 0
        self._timer: IDelayedCall | None = None
        self._direct: socket.socket | None = None
        self.peer_ip = ""
        self.local_ip = ""

    # -- connection life -------------------------------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        peer = transport.getPeer()  # type: ignore[union-attr]
        host = transport.getHost()  # type: ignore[union-attr]
        self.peer_ip = str(getattr(peer, "host", ""))
        self.local_ip = str(getattr(host, "host", ""))
        self._last_activity = self.clock.seconds()
        options = self.options
        self._deadline = self._last_activity + options.head_timeout
        self._timer = self.clock.callLater(min(options.idle_timeout, options.head_timeout), self._check_idle)
        if (
            isinstance(transport, tcp.Connection)
            and isinstance(transport.getHandle(), socket.socket)
            and not transport.TLS
            and not interfaces.ISSLTransport.providedBy(transport)
        ):
            # One send per answer: never hold it back waiting for the client's ACK.
            transport.setTcpNoDelay(True)
            self._direct = transport.getHandle()
        else:
            transport.registerProducer(self, True)  # type: ignore[union-attr]

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
        now = self.clock.seconds()
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            if self._lingering:
                self._abort()
                return
            if self._paused or self._closing:
                # Not reading (the client does not read its answers) or answering the last
                # request: no head is awaited; the idle timeout rules.
                deadline = self._deadline = None
            else:
                self._bad_input(f"request head not whole within {self.options.head_timeout:g}s")
                self._abort()
                return
        elapsed = now - self._last_activity
        if elapsed >= self.options.idle_timeout:
            # Also when closing: a client that never reads the rest of its answer is dropped.
            self._abort()
            return
        delay = self.options.idle_timeout - elapsed
        if deadline is not None:
            delay = min(delay, deadline - now)
        self._timer = self.clock.callLater(delay, self._check_idle)

    def _abort(self) -> None:
        self._closing = True
        self._buffer = b""
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _set_deadline(self, deadline: float) -> None:
        """Abort at `deadline` (unless a head is whole by then, when not lingering)."""
        self._deadline = deadline
        timer = self._timer
        if timer is not None and timer.getTime() > deadline:
            timer.reset(max(deadline - self.clock.seconds(), 0.0))

    def _await_head(self) -> None:
        """After the received bytes are processed: a head begun and not whole has its deadline."""
        if self._buffer and self._deadline is None and not self._closing and not self._paused:
            self._set_deadline(self.clock.seconds() + self.options.head_timeout)

    def _bad_input(self, reason: str) -> None:
        if self.bad_input is not None:
            self.bad_input.note(self.peer_ip, reason)

    # -- producer: stop reading while the client does not read our answers ----------------------

    def pauseProducing(self) -> None:
        """`IPushProducer` (not on a direct transport): the transport's buffer is full."""
        if not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        """`IPushProducer`: the transport's buffer drained.  `IPullProducer` (direct transport):
        Twisted sent the rest of our answers, or (the call ``registerProducer`` makes at once)
        is about to."""
        if self._direct is not None:
            if not self._queued:
                return
            self._queued = False
            self.transport.unregisterProducer()  # type: ignore[union-attr]
        if self._paused:
            self._paused = False
            if not self._closing:
                self.transport.resumeProducing()  # type: ignore[union-attr]
                self._process_safely()
            elif self._lingering:
                self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        self._closing = True
        self._buffer = b""

    # -- requests --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            if self._lingering:
                self._discarded += len(data)
                if self._discarded > self.options.linger_bytes:
                    self._abort()
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
        if self._buffer:
            self._await_head()

    def _process(self) -> None:
        max_head = self.options.max_head
        while self._buffer and not self._paused and not self._closing:
            buffer = self._buffer
            if buffer[0] in (13, 10):
                # Empty lines before a request line are ignored (RFC 9112 §2.2).
                buffer = self._buffer = buffer.lstrip(b"\r\n")
                self._scanned = 0
                if not buffer:
                    return
            # The whole head, its terminating empty line included, must fit in max_head bytes.
            # A head arriving in pieces is searched only where it grew (bytes before `_scanned`
            # hold no end of head), so its cost is linear, not quadratic, in its length.
            scanned = self._scanned
            plain = _PLAIN_HEAD.match(buffer, 0, max_head) if not scanned else None
            if plain is not None:
                self._buffer = buffer[plain.end() :]
                self._deadline = None
                raw_method, target, minor, block = plain.groups()
                method = _METHODS.get(raw_method) or raw_method.decode("ascii")
                fields = _PLAIN_FIELD.findall(block) if block else []
                if len(fields) > self.options.max_headers:
                    self._error(431, method)
                    return
                self._answer(method, target.decode("ascii"), minor != b"0", fields)
                continue
            start = max(scanned - 3, 0)  # an end of head may straddle the bytes searched before
            end = buffer.find(b"\r\n\r\n", start, max_head)
            size = 4
            # A head ended by bare LFs (tolerated, as nginx and Apache do).
            bare = buffer.find(b"\n\n", start, max_head if end < 0 else end + 2)
            if bare >= 0 and (end < 0 or bare < end):
                end, size = bare, 2
            else:
                mixed = buffer.find(b"\n\r\n", start, max_head if end < 0 else end + 1)
                if mixed >= 0 and (end < 0 or mixed < end):
                    end, size = mixed, 3
            if end < 0:
                if len(buffer) >= max_head:
                    self._error(431)
                else:
                    self._scanned = len(buffer)
                return
            self._scanned = 0
            head = buffer[:end]
            self._buffer = buffer[end + size :]
            self._deadline = None
            self._request(head)

    def _request(self, head: bytes) -> None:
        """The general parser: any head, bare-LF line ends included."""
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
            fields = self._fields(lines)
            path = _path(target)
        except _Reject as reject:
            self._error(reject.status, method)
            return
        self._answer(method, path, minor != b"0", fields)

    def _fields(self, lines: list[bytes]) -> Fields:
        if len(lines) - 1 > self.options.max_headers:
            raise _Reject(431)
        fields: Fields = []
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
            fields.append((name, value))
        return fields

    def _answer(self, method: str, path: str, http11: bool, fields: Fields) -> None:
        """Check the framing fields, ask the handler and send its answer."""
        hosts = 0
        chunked = False
        lengths: list[str] | None = None
        connection: list[str] | None = None
        headers: dict[str, list[str]] = {}
        wanted = self._wanted
        for name, value in fields:
            key = name.lower()
            if key == b"host":
                hosts += 1
            elif key == b"content-length":
                lengths = [] if lengths is None else lengths
                lengths.append(value.rstrip(b" \t").decode("latin-1"))
            elif key == b"transfer-encoding":
                chunked = True
            elif key == b"connection":
                connection = [] if connection is None else connection
                connection.append(value.rstrip(b" \t").decode("latin-1"))
            if wanted is None or key in wanted:
                text_key, text = key.decode("ascii"), value.rstrip(b" \t").decode("latin-1")
                found = headers.get(text_key)
                if found is None:
                    headers[text_key] = [text]
                else:
                    found.append(text)
        try:
            if http11 and hosts != 1:
                raise _Reject(400)
            has_body = chunked or (lengths is not None and _has_length(lengths))
        except _Reject as reject:
            self._error(reject.status, method)
            return

        if has_body and (method == "GET" or method == "HEAD"):
            self._error(413, method)
            return
        options = self.options
        keep = options.keep_alive and not has_body
        if keep:
            if connection is None:
                keep = http11
            else:
                tokens = {t.strip().lower() for v in connection for t in v.split(",")}
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
        if options.keep_alive:
            if not keep and http11:
                announce = b"Connection: close\r\n"
            elif keep and not http11:
                announce = b"Connection: keep-alive\r\n"
        self._send(status, reply_headers, body, method == "HEAD", options.content_length, announce)
        if not keep:
            self._close()

    # -- answers ---------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        head_only: bool,
        content_length: bool,
        announce: bytes,
    ) -> None:
        head = self._heads.head(
            self.clock.seconds(), status, headers, len(body) if content_length else -1, announce
        )
        self._write(head if head_only or not body else head + body)

    def _write(self, data: bytes) -> None:
        """Write ``data``: on a direct transport with nothing queued, one ``send`` now, and only
        what the kernel did not take goes to Twisted (see the module docstring)."""
        direct = self._direct
        if direct is None or self._queued:
            self.transport.write(data)  # type: ignore[union-attr]
            return
        try:
            sent = direct.send(data)
        except OSError:
            sent = 0  # would block, or the connection failed: Twisted's write sees to it
        if sent == len(data):
            return
        transport = self.transport
        transport.write(data[sent:])  # type: ignore[union-attr]
        # Answer and read nothing more until Twisted has sent this rest: it then calls
        # resumeProducing (registerProducer calls it once at once, while _queued is still False).
        self._paused = True
        transport.pauseProducing()  # type: ignore[union-attr]
        transport.registerProducer(self, False)  # type: ignore[union-attr]
        self._queued = not self._closing  # False: the transport was gone (stopProducing ran)

    def _error(self, status: int, method: str = "") -> None:
        """A protocol-level error answer; always closes the connection, lingering first (see the
        module docstring)."""
        if self._closing:
            return
        reason = REASONS.get(status, b"Error")
        if status != 500:  # a handler failure is logged with its traceback already
            self._bad_input(f"{status} {reason.decode('ascii')}")
        body = b"%d %s\n" % (status, reason)
        announce = b"Connection: close\r\n" if self.options.keep_alive else b""
        self._send(status, _ERROR_HEADERS, body, method == "HEAD", True, announce)
        transport = self.transport
        lose_write = getattr(transport, "loseWriteConnection", None)
        if lose_write is None or self.options.linger <= 0:
            self._close()
            return
        self._closing = self._lingering = True
        self._buffer = b""
        self._set_deadline(self.clock.seconds() + self.options.linger)
        lose_write()
        if self._paused and not self._queued:
            # Paused by the transport (push): keep reading, to discard.
            self._paused = False
            transport.resumeProducing()  # type: ignore[union-attr]

    def _close(self) -> None:
        self._closing = True
        self._buffer = b""
        self.transport.loseConnection()  # type: ignore[union-attr]


def _has_length(lengths: list[str]) -> bool:
    """Whether the ``Content-Length`` values announce a body; a malformed one → 400."""
    values = {v.strip() for value in lengths for v in value.split(",")}
    if len(values) != 1:
        raise _Reject(400)
    value = values.pop().encode("latin-1")
    if _DIGITS.fullmatch(value) is None:
        raise _Reject(400)
    return int(value) > 0


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

    def __init__(self, handler: Handler, clock: IReactorTime, options: HTTPOptions | None = None,
                 bad_input: BadInputLog | None = None) -> None:
        self.handler = handler
        self.clock = clock
        self.options = HTTPOptions() if options is None else options
        self._heads = _Heads(self.options)
        #: Where bad requests are counted and logged; one per listener by default.
        self.bad_input = BadInputLog(clock, "HTTP: bad request") if bad_input is None else bad_input

    def buildProtocol(self, addr: object) -> LeanHTTPProtocol:
        protocol = LeanHTTPProtocol(self.handler, self.clock, self.options, self._heads, self.bad_input)
        protocol.factory = self
        return protocol
