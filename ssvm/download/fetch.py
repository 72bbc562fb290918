"""One HTTP(S) transfer into a `PartialFile`: redirects, size limits, resume and retries.

`Transfer.run()` GETs the URL with an `Agent` whose endpoints are `CheckedEndpoint`s, so every
connection — the first and each redirect hop — passes the address policy at connect time.

* Redirects (301, 302, 303, 307, 308) are followed up to `max_redirects` hops; a relative
  `Location` is resolved against the current URL and re-checked (http/https only); credentials
  of the first URL are sent (preemptive basic auth) only to the first URL's origin.
* A `Content-Length` (or the total of a `Content-Range`) above `max_size` fails before the body;
  the body is counted as it streams and the connection aborted once it passes `max_size`.
* With bytes already on disk the request carries `Range: bytes=N-` and an `If-Range` with the
  strong ETag or the Last-Modified of the first response. Only a 206 whose `Content-Range`
  starts at N (and whose total and ETag match what was seen before) continues the file; a 200
  restarts it from zero with that body; any other 206 or a 416 restarts it with a new request.
* A body that ends before the known total (a server that caps range answers) is continued like
  an interrupted one.
* A dropped or stalled connection is retried `retries` times (the count starts again whenever an
  attempt made progress), each time resuming.
* Once `HEAD_SIZE` bytes are in, `check_head` may refuse the content early.

Log events carry `for_log` URLs only (scheme, host, port, path).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from twisted.internet import defer, error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import RequestTransmissionFailed, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IResponse

from ssvm.download.errors import (
    DownloadFailed,
    HTTPStatusFailed,
    RedirectRefused,
    SizeExceeded,
    TransferInterrupted,
    URLRefused,
)
from ssvm.download.sniff import HEAD_SIZE
from ssvm.download.urls import DownloadURL
from ssvm.download.writer import PartialFile, WriteFailed

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = b"cloudd-ssvm-download/1"
# Headers some stores use for the size when the body is chunked (spec §11.3).
SIZE_HEADERS = (b"x-goog-stored-content-length", b"x-amz-meta-size", b"x-object-meta-size")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
MAX_ATTEMPTS = 1000  # all attempts of one run, progress or not (bounds a server that trickles)


@dataclass
class Validator:
    """What the first full response said about the file; persisted to resume after a restart."""

    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None

    def if_range(self) -> bytes | None:
        if self.etag is not None:
            return self.etag.encode("latin-1")
        if self.last_modified is not None:
            return self.last_modified.encode("latin-1")
        return None


@dataclass
class TransferStats:
    requests: int = 0
    redirects: int = 0
    retries: int = 0
    restarts_from_zero: int = 0
    resumed_at: list[int] = field(default_factory=list)


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    if not values:
        return None
    return values[-1].decode("latin-1").strip() if isinstance(values[-1], bytes) else str(values[-1]).strip()


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, total or None) of `bytes first-last/total`, or None if malformed."""
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


class _Discard(Protocol):
    """Takes an unwanted body (a redirect's, a refused resume's) by closing its connection."""

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        super().makeConnection(transport)
        transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        pass


def discard(response: IResponse) -> None:
    response.deliverBody(_Discard())


class BodyReceiver(Protocol):
    """Feeds a response body into a `PartialFile`, enforcing the size limit and the early sniff."""

    def __init__(self, sink: PartialFile, limit: int, check_head: Callable[[bytes], None] | None) -> None:
        self._sink = sink
        self._limit = limit
        self._check_head = check_head
        self._failure: DownloadFailed | None = None
        self.finished: Deferred[None] = Deferred(self._cancel)

    def connectionMade(self) -> None:  # noqa: N802
        self._sink.attach_producer(self.transport)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._failure is not None:
            return
        sink = self._sink
        if sink.received + len(data) > self._limit:
            self.stop(SizeExceeded(f"the download is larger than the maximum size of {self._limit} bytes"))
            return
        sink.write(data)
        if self._check_head is not None and sink.received >= HEAD_SIZE:
            check, self._check_head = self._check_head, None
            try:
                check(sink.head)
            except DownloadFailed as exc:
                self.stop(exc)

    def stop(self, failure: DownloadFailed) -> None:
        """Abort the body with `failure` (the connection is closed)."""
        if self._failure is None:
            self._failure = failure
            if self.transport is not None:
                cast(Any, self.transport).stopProducing()

    def _cancel(self, _: Deferred[None]) -> None:
        if self.transport is not None:
            cast(Any, self.transport).stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._sink.attach_producer(None)
        if self.finished.called:
            return
        if self._failure is not None:
            self.finished.errback(self._failure)
        elif self._sink.error is not None:
            self.finished.errback(WriteFailed(f"writing the download failed: {self._sink.error}"))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(None)
        else:
            self.finished.errback(TransferInterrupted(
                f"the transfer stopped after {self._sink.received} bytes ({_reason_text(reason)})"))


def _reason_text(reason: Failure) -> str:
    """A short operator-facing text for why a connection or response failed."""
    value = reason.value
    if isinstance(value, ResponseFailed | RequestTransmissionFailed) and value.reasons:
        texts = (_reason_text(inner) for inner in value.reasons)
        return "; ".join(dict.fromkeys(text for text in texts if text))
    if isinstance(value, error.ConnectionDone):
        return "closed by the server"
    if isinstance(value, error.ConnectionLost):
        return "connection lost"
    if type(value).__name__ == "_DataLoss":
        return ""  # always accompanies one of the above
    text = str(value).strip()
    return f"{type(value).__name__}: {text}" if text else type(value).__name__


class _RestartFromZero(Exception):
    """The server cannot continue the partial file: start it again."""


class Transfer:
    log = Logger()

    def __init__(self, agent: IAgent, clock: IReactorTime, url: DownloadURL, sink: PartialFile, *,
                 max_size: int, max_redirects: int = 5, retries: int = 2, retry_delay: float = 1.0,
                 header_timeout: float = 120.0, idle_timeout: float = 120.0,
                 validator: Validator | None = None,
                 check_head: Callable[[bytes], None] | None = None) -> None:
        self._agent = agent
        self._clock = clock
        self.url = url
        self._sink = sink
        self.max_size = max_size
        self.max_redirects = max_redirects
        self.retries = retries
        self.retry_delay = retry_delay
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.validator = validator if validator is not None else Validator()
        self._check_head = check_head
        self.total: int | None = self.validator.total
        self.stats = TransferStats()

    async def run(self) -> None:
        """Fetch the whole body into the sink, or raise a `DownloadFailed`."""
        failures = 0
        attempts = 0
        while True:
            before = self._sink.received
            attempts += 1
            try:
                await self._attempt()
                return
            except DownloadFailed as exc:
                progressed = self._sink.received > before
                failures = 0 if progressed else failures
                if not exc.retryable or failures >= self.retries or attempts >= MAX_ATTEMPTS:
                    raise
                failures += 1
                self.stats.retries += 1
                self.log.info("download of {url} interrupted ({error}); retry {retry} at byte {offset}",
                              url=self.url.for_log, error=str(exc), retry=failures, offset=self._sink.received)
                if not progressed:
                    await deferLater(self._clock, self.retry_delay * failures, lambda: None)

    async def _attempt(self) -> None:
        restarted = False
        while True:
            offset = self._sink.received
            response, url = await self._get(offset)
            try:
                limit = await self._accept(response, offset)
            except _RestartFromZero as exc:
                discard(response)
                if restarted:
                    raise HTTPStatusFailed(f"the server cannot resume the download: {exc}") from None
                restarted = True
                self.stats.restarts_from_zero += 1
                self.log.info("{url}: {reason}; starting again from byte 0", url=url.for_log, reason=str(exc))
                await self._sink.reset()
                continue
            except BaseException:
                discard(response)
                raise
            await self._receive(response, limit)
            if self.total is not None and self._sink.received < self.total:
                raise TransferInterrupted(f"the server sent {self._sink.received} of {self.total} bytes")
            return

    def _headers(self, url: DownloadURL, offset: int) -> Headers:
        headers = Headers({b"User-Agent": [USER_AGENT], b"Accept-Encoding": [b"identity"]})
        if offset > 0:
            headers.setRawHeaders(b"Range", [f"bytes={offset}-".encode("ascii")])
            if_range = self.validator.if_range()
            if if_range is not None:
                headers.setRawHeaders(b"If-Range", [if_range])
        auth = self.url.basic_auth()
        if auth is not None and url.origin == self.url.origin:
            headers.setRawHeaders(b"Authorization", [auth])
        return headers

    async def _request(self, url: DownloadURL, offset: int) -> IResponse:
        self.stats.requests += 1
        if offset:
            self.stats.resumed_at.append(offset)
        d = self._agent.request(b"GET", url.for_request, self._headers(url, offset))
        d.addTimeout(self.header_timeout, self._clock)
        try:
            response: IResponse = await d
        except DownloadFailed:
            raise
        except CancelledError:
            raise
        except (error.ConnectError, error.TimeoutError, defer.TimeoutError, ResponseFailed,
                RequestTransmissionFailed, error.ConnectionLost) as exc:
            raise TransferInterrupted(f"request to {url.netloc} failed ({_reason_text(Failure(exc))})") from None
        return response

    async def _get(self, offset: int) -> tuple[IResponse, DownloadURL]:
        """GET with redirects followed (each hop checked); the final response and its URL."""
        url = self.url
        hops = 0
        while True:
            try:
                response = await self._request(url, offset)
            except DownloadFailed as exc:
                if hops and not exc.retryable:
                    exc.args = (f"after a redirect to {url.for_log}: {exc}",)
                raise
            if response.code not in REDIRECT_CODES:
                return response, url
            location = _header(response, b"location")
            discard(response)
            if not location:
                raise RedirectRefused(f"redirect {response.code} from {url.for_log} without a Location")
            hops += 1
            self.stats.redirects += 1
            if hops > self.max_redirects:
                raise RedirectRefused(f"too many redirects (more than {self.max_redirects}) from {self.url.for_log}")
            try:
                target = url.join(location)
            except URLRefused as exc:
                raise URLRefused(f"redirect from {url.for_log} refused: {exc}") from None
            self.log.info("redirect {code} from {source} to {target}", code=response.code,
                          source=url.for_log, target=target.for_log)
            url = target

    async def _accept(self, response: IResponse, offset: int) -> int:
        """Check the status and sizes before the body; return the byte limit for the body."""
        code = response.code
        if offset > 0:
            if code == 206:
                return self._accept_partial(response, offset)
            if code == 416:
                raise _RestartFromZero("the server refused the range (416)")
            if code == 200:
                self.log.info("{url}: the server answered 200 to a range request; starting again from byte 0",
                              url=self.url.for_log)
                self.stats.restarts_from_zero += 1
                await self._sink.reset()
                offset = 0
        if code != 200:
            phrase = response.phrase.decode("latin-1", "replace") if response.phrase else ""
            raise HTTPStatusFailed(f"the server answered {code} {phrase}".rstrip())
        total = response.length if response.length is not UNKNOWN_LENGTH else None
        if total is None:
            for name in SIZE_HEADERS:
                value = _header(response, name)
                if value is not None and value.isdigit():
                    total = int(value)
                    break
        etag = _header(response, b"etag")
        self.validator = Validator(etag=etag if etag and not etag.startswith("W/") else None,
                                   last_modified=_header(response, b"last-modified"), total=total)
        self._check_total(total)
        self.total = total
        return self.max_size

    def _accept_partial(self, response: IResponse, offset: int) -> int:
        content_range = parse_content_range(_header(response, b"content-range"))
        if content_range is None:
            raise _RestartFromZero("206 without a valid Content-Range")
        first, last, total = content_range
        if first != offset:
            raise _RestartFromZero(f"206 starts at byte {first}, not {offset}")
        known = self.validator.total
        if known is not None and total is not None and total != known:
            raise _RestartFromZero(f"the file changed size ({known} -> {total} bytes)")
        etag = _header(response, b"etag")
        if self.validator.etag is not None and etag is not None and etag != self.validator.etag:
            raise _RestartFromZero("the file changed (ETag differs)")
        if total is None:
            total = known
        self._check_total(total if total is not None else last + 1)
        self.total = total
        if self.validator.total is None:
            self.validator.total = total
        return min(self.max_size, last + 1)

    def _check_total(self, total: int | None) -> None:
        if total is not None and total > self.max_size:
            raise SizeExceeded(f"the download is {total} bytes, larger than the maximum size of "
                               f"{self.max_size} bytes")

    async def _receive(self, response: IResponse, limit: int) -> None:
        receiver = BodyReceiver(self._sink, limit, self._check_head if self._sink.received < HEAD_SIZE else None)
        watchdog = _IdleWatchdog(self._clock, self._sink, receiver, self.idle_timeout)
        response.deliverBody(receiver)
        try:
            await receiver.finished
        finally:
            watchdog.stop()


class _IdleWatchdog:
    """Aborts a body that delivers nothing for `timeout` seconds while not paused by us."""

    def __init__(self, clock: IReactorTime, sink: PartialFile, receiver: BodyReceiver, timeout: float) -> None:
        self._clock = clock
        self._sink = sink
        self._receiver = receiver
        self._timeout = timeout
        self._seen = sink.received
        self._call: IDelayedCall | None = clock.callLater(timeout, self._check)

    def _check(self) -> None:
        self._call = None
        if self._sink.received == self._seen and not self._sink.paused:
            self._receiver.stop(TransferInterrupted(f"no data for {self._timeout:g} seconds"))
            return
        self._seen = self._sink.received
        self._call = self._clock.callLater(self._timeout, self._check)

    def stop(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None
