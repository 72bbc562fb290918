"""The appliances' JSON control API on twisted.web: a bounded request, a route table and one error
envelope.

Every answer is JSON except file downloads. Errors have one shape,
`{"error": {"code": "<word>", "message": "<text>"}}`, with the HTTP status carrying the class of
failure; an unexpected exception is logged and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import File

DEFAULT_MAX_BODY = 8 * 1024 * 1024


class ApiError(Exception):
    """A failure the caller should see: an HTTP status, a short code and a clear message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(http.BAD_REQUEST, "bad_request", message)


def not_found(message: str) -> ApiError:
    return ApiError(http.NOT_FOUND, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(http.CONFLICT, "conflict", message)


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class BoundedRequest(Request):
    """A request whose body may not exceed the site's limit for its method and path
    (`ControlSite.body_limit`): a larger declared length or a longer stream is answered 413 at
    once and the connection closed."""

    refused = False
    _max: int | None = None

    def _limit(self) -> int:
        if self._max is None:
            site = getattr(self.channel, "site", None)
            if not isinstance(site, ControlSite):
                return DEFAULT_MAX_BODY
            # The request line as the channel parsed it: this request's method and path are set
            # only once its body is in, and the limit applies while it arrives.
            self._max = site.body_limit(getattr(self.channel, "_command", None),
                                        getattr(self.channel, "_path", None))
        return self._max

    def _refuse(self) -> None:
        self.refused = True
        body = error_body("too_large", f"the request body exceeds {self._limit()} bytes")
        head = (b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        transport = self.channel.transport
        if transport is not None:
            transport.write(head + body)
        self.channel.loseConnection()

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (Twisted API)
        super().gotLength(length)
        self._received = 0
        if length is not None and length > self._limit():
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        if self.refused:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if not self.refused:
            super().requestReceived(command, path, version)


class _WithoutQuery:
    """A request seen by the access log without its query string."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.uri = request.path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def path_only_log_formatter(timestamp: str, request: Request) -> str:
    """The combined access-log line with the path alone: query strings may carry signatures or
    tokens, which never reach a log."""
    line: str = http.combinedLogFormatter(timestamp, _WithoutQuery(request))
    return line


class ControlSite(Site):
    """A site of bounded requests; `max_body` is the largest request body accepted, and
    `body_limits` gives other limits to some routes, by (method, path) — such as a whole state,
    which grows with the number of VMs where every other body is about one item."""

    requestFactory = BoundedRequest  # noqa: N815 (Twisted API)

    def __init__(self, resource: Resource, max_body: int = DEFAULT_MAX_BODY,
                 body_limits: Mapping[tuple[str, str], int] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("logFormatter", path_only_log_formatter)
        super().__init__(resource, **kwargs)
        self.max_body = max_body
        self.body_limits = {(method.encode(), path.encode()): limit
                            for (method, path), limit in (body_limits or {}).items()}

    def body_limit(self, method: bytes | None, target: bytes | None) -> int:
        """The body limit of a request for `target` (its path and query) with `method`."""
        if method is None or target is None or not self.body_limits:
            return self.max_body
        return self.body_limits.get((method, target.split(b"?", 1)[0]), self.max_body)


@dataclass(frozen=True)
class FileAnswer:
    """A handler's answer that is a file, served with Range support."""

    path: str
    content_type: str = "application/octet-stream"


Handler = Callable[..., Awaitable[Any]]
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Route:
    method: bytes
    pattern: tuple[str, ...]
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    """A route: `pattern` is a path such as `/v1/downloads/{id}`; each `{name}` matches one safe
    segment (letters, digits, `.`, `_`, `-`; no leading dot) and is passed to the handler by name."""
    return Route(method.encode(), tuple(p for p in pattern.split("/") if p), handler)


def read_json(request: Request) -> Any:
    """The request body as JSON (an object), or a 400."""
    assert request.content is not None
    request.content.seek(0)
    raw = request.content.read()
    if not raw:
        raise bad_request("a JSON object body is needed")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object")
    return value


class JsonApi(Resource):
    """One leaf resource dispatching on method and path through a route table."""

    isLeaf = True
    log = Logger()

    def __init__(self, routes: Sequence[Route]) -> None:
        super().__init__()
        self._routes = list(routes)

    def _match(self, method: bytes, segments: list[str]) -> tuple[Route, dict[str, str]]:
        path_known = False
        for r in self._routes:
            if len(r.pattern) != len(segments):
                continue
            params: dict[str, str] = {}
            for want, got in zip(r.pattern, segments, strict=True):
                if want.startswith("{") and want.endswith("}"):
                    if not _SEGMENT.match(got) or ".." in got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                path_known = True
                if r.method == method or (method == b"HEAD" and r.method == b"GET"):
                    return r, params
        if path_known:
            raise ApiError(http.NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
        raise not_found("no such resource")

    def render(self, request: Request) -> int:
        request.notifyFinish().addErrback(lambda _: setattr(request, "_control_gone", True))
        d = Deferred.fromCoroutine(self._answer(request))
        d.addErrback(self._unexpected, request)
        return NOT_DONE_YET

    async def _answer(self, request: Request) -> None:
        try:
            raw_segments = [s.decode("utf-8") for s in request.postpath or []]
        except UnicodeDecodeError:
            self._write_error(request, not_found("no such resource"))
            return
        segments = [s for s in raw_segments if s != ""]
        try:
            assert request.method is not None
            r, params = self._match(request.method, segments)
            result = await r.handler(request, **params)
        except ApiError as exc:
            self._write_error(request, exc)
            return
        if isinstance(result, FileAnswer):
            resource = File(result.path, defaultType=result.content_type)
            resource.isLeaf = True
            body = resource.render(request)
            if body != NOT_DONE_YET:
                request.write(body)
                request.finish()
            return
        status, value = result if isinstance(result, tuple) else (http.OK, result)
        self._write(request, status, json.dumps(value).encode())

    def _write(self, request: Request, status: int, body: bytes) -> None:
        if request.finished or getattr(request, "_control_gone", False):
            return
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", str(len(body)).encode())
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _write_error(self, request: Request, exc: ApiError) -> None:
        self._write(request, exc.status, error_body(exc.code, exc.message))

    def _unexpected(self, failure: Failure, request: Request) -> None:
        self.log.failure("control request {method} {path} failed", failure,
                         method=request.method, path=request.uri)
        self._write(request, http.INTERNAL_SERVER_ERROR, error_body("internal", "internal error"))
