"""The twisted.web Site of the query API, whose access log does not cost each request a log event.

Twisted's `Site` writes one access-log line per request to the process log (the twistd log file),
and each line is a log event of its own. Formatting and writing a log event costs about as much
CPU as answering a small signed API call, so on a busy server the access log alone would halve
the request rate. `ApiSite` writes the same lines (the caller's formatter, e.g.
`cloudd.web.accesslog.access_log_line`, decides what they contain) but gathers them into one log
event per tenth of a second: each line keeps its own timestamp, no line waits longer than that,
and the ones still gathered when the site stops are written then.

The site also bounds what one request may make it hold. A body longer than the setting
`api.request.body.max.bytes` is refused while it arrives: at once when its `Content-Length` says so
(before twisted.web opens a buffer or a temporary file for it, and without a `100 Continue`), or as
soon as a chunked body passes the limit. The refusal is a 413 in the API's error envelope, written
straight away; then the connection is half-closed and what the client still sends is read and
dropped for a short while (at most `LINGER_SECONDS` and `LINGER_BYTES`), so that the client reads
the answer instead of a reset, before the connection is closed. twisted.web's own parsing of form
and multipart bodies into `request.args` is turned off: the API resource reads the raw bytes itself,
after counting the parameters (the API does not take multipart bodies, spec/api.md §1.2).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python import log as legacy_log
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from cloudd.api.errors import ApiError, body_too_large, head_too_large, uri_too_long
from cloudd.api.service import Answer
from cloudd.settings import Settings
from cloudd.web.resource import encode_answer
from cloudd.web.wire import wants_json

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "ApiChannel", "ApiRequest", "ApiSite", "GatheredAccessLog"]

# After a refused body, how long and how much more of it is read and dropped before the connection
# is closed (Apache's lingering close, in miniature).
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


class GatheredAccessLog:
    """A file-like sink for access-log lines: one log event per `delay` seconds, not one per line."""

    log = Logger()

    def __init__(self, clock: IReactorTime, delay: float = 0.1) -> None:
        self.clock = clock
        self.delay = delay
        self._lines: list[str] = []
        self._call: IDelayedCall | None = None

    def write(self, data: str, /) -> None:
        self._lines.append(data)
        if self._call is None:
            self._call = self.clock.callLater(self.delay, self.flush)

    def flush(self) -> None:
        """Emit the gathered lines now, as one event."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        if self._lines:
            text = "".join(self._lines).rstrip("\n")
            self._lines.clear()
            self.log.info("{access_log}", access_log=text)

    def close(self) -> None:
        self.flush()


class ApiRequest(Request):
    """A request that parses neither its query string nor its body into `args`, and counts the body
    as it arrives."""

    def __init__(self, channel: HTTPChannel, queued: object = None) -> None:
        super().__init__(channel, parsePOSTFormSubmission=False)
        self.body_received = 0
        self._full_uri = b""

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802 (Twisted API)
        # The API parses the query string itself, strictly and after counting its parameters:
        # twisted.web's own parse into `args` would be work thrown away on every request (and
        # unbounded for a hostile one). It is handed the path alone; `process` puts the whole
        # request target back before anything reads it.
        self._full_uri = path
        super().requestReceived(command, path.split(b"?", 1)[0], version)

    def process(self) -> None:
        self.uri = self._full_uri
        super().process()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        channel = self.channel
        if not isinstance(channel, ApiChannel):
            super().handleContentChunk(data)
            return
        if channel.refused:
            return
        self.body_received += len(data)
        if self.body_received > channel.body_limit():
            channel.refuse_body()
            return
        super().handleContentChunk(data)


class ApiChannel(HTTPChannel):
    """An HTTP channel that refuses a request body over the site's limit while it arrives, and answers
    a request or header line over the line limit."""

    log = Logger()
    site: ApiSite

    def __init__(self) -> None:
        super().__init__()
        self.refused = False
        self._dropped = 0
        self._linger: IDelayedCall | None = None

    def body_limit(self) -> int:
        return self.site.body_limit()

    def allHeadersReceived(self) -> None:  # noqa: N802 (Twisted API)
        # self.length is the Content-Length (None for a chunked body, 0 without a body)
        if self.length is not None and self.length > self.body_limit():
            self.refuse_body()
            return
        super().allHeadersReceived()

    def allContentReceived(self) -> None:  # noqa: N802 (Twisted API)
        if not self.refused:
            super().allContentReceived()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        if not self.refused:
            super().dataReceived(data)
            return
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self._close()

    def refuse_body(self) -> None:
        """Answer 413 to the request whose body is arriving, then drop the rest and close."""
        if self.refused:
            return
        request = self.requests[-1]
        request.method, request.uri, request.clientproto = self._command, self._path, self._version
        limit = self.body_limit()
        self.log.warn("refused an API request body over {limit} bytes from {peer}", limit=limit, peer=self._peer())
        self._refuse(b"413 Request Entity Too Large", body_too_large(limit), self._path, request)

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802 (Twisted API)
        """A request line or header line over twisted.web's line limit: twisted.web would close the
        connection without a word (and the client, still sending, would see a reset); answer 414 or
        431 in the error envelope instead, then close as after a refused body."""
        in_head = getattr(self, "_command", None) is not None
        self.log.warn("refused an API request from {peer}: a {what} line over {limit} bytes", peer=self._peer(),
                      what="header" if in_head else "request", limit=self.MAX_LENGTH)
        if in_head:
            self._refuse(b"431 Request Header Fields Too Large", head_too_large(self.MAX_LENGTH), self._path, None)
        else:
            target = line.split(b" ", 2)[1] if line.count(b" ") >= 1 else b""
            self._refuse(b"414 Request-URI Too Long", uri_too_long(self.MAX_LENGTH), target, None)

    def _peer(self) -> str:
        return str(getattr(self.transport.getPeer(), "host", "-") if self.transport is not None else "-")

    def _refuse(self, status: bytes, err: ApiError, target: bytes, request: Request | None) -> None:
        """Write `err` as the answer with `Connection: close`, half-close, and drop what the client
        still sends until LINGER_SECONDS or LINGER_BYTES have passed, then close."""
        if self.refused:
            return
        self.refused = True
        self.persistent = False
        transport = self.transport
        assert transport is not None
        query = target.split(b"?", 1)[1] if b"?" in target else b""
        headers, data = encode_answer(Answer("errorresponse", err.body(), err.code), wants_json(query),
                                      self.site.json_content_type())
        transport.write(b"".join([
            b"HTTP/1.1 " + status + b"\r\n",
            *(name + b": " + value + b"\r\n" for name, value in headers),
            b"Connection: close\r\n\r\n", data]))
        if request is not None:
            request.code, request.sentLength = err.code, len(data)
            self.site.log(request)
        lose_write = getattr(transport, "loseWriteConnection", None)
        if lose_write is None:
            transport.loseConnection()
            return
        lose_write()
        self._linger = self.callLater(LINGER_SECONDS, self._close)

    def _close(self) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        transport = self.transport
        if transport is not None:
            cast(ITCPTransport, transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802 (Twisted API)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(reason)


class ApiSite(Site):
    """A `Site` whose access log goes to the process log in gathered events, and that refuses bodies
    over `api.request.body.max.bytes` (see the module)."""

    protocol = ApiChannel  # type: ignore[assignment]
    requestFactory = ApiRequest  # type: ignore[assignment]

    def __init__(self, resource: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.settings = settings if settings is not None else Settings()

    def body_limit(self) -> int:
        return self.settings.int("api.request.body.max.bytes")

    def json_content_type(self) -> bytes:
        return self.settings.str("json.content.type").encode()

    def startFactory(self) -> None:  # noqa: N802 (Twisted API)
        super().startFactory()
        if self._logFile is legacy_log.logfile:
            self._logFile = GatheredAccessLog(self.reactor)
