"""The control API's plumbing: routing, the error envelope, and the request-body bound."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyRequest

from appliance.web import ApiError, ControlSite, FileAnswer, JsonApi, bad_request, read_json, route


def _request(method: bytes, path: list[bytes], body: bytes = b"") -> DummyRequest:
    request = DummyRequest(path)
    request.method = method
    request.content = BytesIO(body)
    return request


class RoutingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.calls: list[Any] = []

        async def item(request: Request, name: str) -> Any:
            self.calls.append(name)
            if name == "boom":
                raise RuntimeError("secret detail")
            if name == "bad":
                raise bad_request("that is not allowed")
            return {"name": name}

        async def create(request: Request) -> Any:
            return 201, read_json(request)

        async def file(request: Request) -> Any:
            return FileAnswer(__file__, "text/plain")

        self.api = JsonApi([route("GET", "/v1/items/{name}", item), route("POST", "/v1/items", create),
                            route("GET", "/v1/file", file)])

    def render(self, request: DummyRequest) -> tuple[int, Any]:
        self.api.render(request)
        self.assertTrue(request.finished)
        body = b"".join(request.written)
        return request.responseCode or 200, body

    def test_match(self) -> None:
        """A route's `{name}` segment reaches the handler by name and the answer is JSON."""
        code, body = self.render(_request(b"GET", [b"v1", b"items", b"web-1"]))
        self.assertEqual((code, json.loads(body)), (200, {"name": "web-1"}))
        self.assertEqual(self.calls, ["web-1"])

    def test_unsafe_segment(self) -> None:
        """A parameter segment with `..`, a leading dot or other characters matches no route."""
        for segment in (b"..", b".hidden", b"a..b", b"a b", b"%2e%2e", "é".encode()):
            code, body = self.render(_request(b"GET", [b"v1", b"items", segment]))
            self.assertEqual(code, 404, segment)
            self.assertEqual(json.loads(body)["error"]["code"], "not_found")
        self.assertEqual(self.calls, [])

    def test_method(self) -> None:
        """A known path with another method gets 405; an unknown path 404."""
        code, body = self.render(_request(b"DELETE", [b"v1", b"items", b"x"]))
        self.assertEqual((code, json.loads(body)["error"]["code"]), (405, "method_not_allowed"))
        code, _ = self.render(_request(b"GET", [b"v2"]))
        self.assertEqual(code, 404)

    def test_errors(self) -> None:
        """ApiError keeps its status and message; anything else is a generic 500 that reveals nothing
        and is logged."""
        code, body = self.render(_request(b"GET", [b"v1", b"items", b"bad"]))
        self.assertEqual((code, json.loads(body)),
                         (400, {"error": {"code": "bad_request", "message": "that is not allowed"}}))
        code, body = self.render(_request(b"GET", [b"v1", b"items", b"boom"]))
        self.assertEqual(code, 500)
        self.assertNotIn(b"secret", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_json_body(self) -> None:
        """The body must be a JSON object; the handler's status is kept."""
        code, body = self.render(_request(b"POST", [b"v1", b"items"], b'{"a": 1}'))
        self.assertEqual((code, json.loads(body)), (201, {"a": 1}))
        for raw in (b"", b"[1]", b"{not json", b"\xff\xfe"):
            code, body = self.render(_request(b"POST", [b"v1", b"items"], raw))
            self.assertEqual(code, 400, raw)
            self.assertEqual(json.loads(body)["error"]["code"], "bad_request")

    def test_file(self) -> None:
        """A FileAnswer is served as the file's bytes."""
        code, body = self.render(_request(b"GET", [b"v1", b"file"]))
        with open(__file__, "rb") as f:
            self.assertEqual((code, body), (200, f.read()))


class BodyLimitTests(SynchronousTestCase):
    def tearDown(self) -> None:
        from twisted.internet import reactor

        self.assertEqual(reactor.getDelayedCalls(), [])  # type: ignore[attr-defined]

    def channel(self, limit: int) -> tuple[Any, StringTransport]:
        async def echo(request: Request) -> Any:
            return read_json(request)

        # No idle timeout: it would leave a call on the real reactor behind this synchronous test.
        site = ControlSite(JsonApi([route("POST", "/echo", echo)]), max_body=limit, timeout=None)
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_declared_length(self) -> None:
        """A Content-Length above the limit is answered 413 at once and the connection closed,
        before any body byte is read."""
        protocol, transport = self.channel(100)
        protocol.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertIn(b'"too_large"', transport.value())
        self.assertTrue(transport.disconnecting)

    def test_chunked(self) -> None:
        """A chunked body that grows past the limit is cut off the same way."""
        protocol, transport = self.channel(100)
        protocol.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        protocol.dataReceived(b"64\r\n" + b"x" * 100 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"1\r\nx\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(transport.disconnecting)

    def test_within(self) -> None:
        """A body within the limit is served normally."""
        protocol, transport = self.channel(100)
        body = b'{"k": "' + b"v" * 80 + b'"}'
        protocol.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode()
                              + b"\r\n\r\n" + body)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        self.assertTrue(transport.value().endswith(json.dumps({"k": "v" * 80}).encode()))


class RouteBodyLimitTests(SynchronousTestCase):
    """`body_limits`: one route gets a larger limit while the body arrives; the others keep
    `max_body`."""

    def send(self, method: bytes, target: bytes, size: int) -> bytes:
        async def echo(request: Request) -> Any:
            return read_json(request)

        site = ControlSite(JsonApi([route("PUT", "/big", echo), route("PUT", "/small", echo)]), max_body=100,
                           body_limits={("PUT", "/big"): 300}, timeout=None)
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        body = b'{"k": "' + b"v" * (size - 9) + b'"}'
        self.assertEqual(len(body), size)
        protocol.dataReceived(method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
                              + str(size).encode() + b"\r\n\r\n" + body)
        return transport.value()

    def test_larger_for_one_route(self) -> None:
        self.assertTrue(self.send(b"PUT", b"/big", 300).startswith(b"HTTP/1.1 200 "))
        self.assertTrue(self.send(b"PUT", b"/big?x=1", 300).startswith(b"HTTP/1.1 200 "))
        answer = self.send(b"PUT", b"/big", 301)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "))
        self.assertIn(b"exceeds 300 bytes", answer)

    def test_others_keep_the_site_limit(self) -> None:
        self.assertTrue(self.send(b"PUT", b"/small", 100).startswith(b"HTTP/1.1 200 "))
        for method, target in ((b"PUT", b"/small"), (b"POST", b"/big"), (b"PUT", b"/big/x")):
            answer = self.send(method, target, 101)
            self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), (method, target))
            self.assertIn(b"exceeds 100 bytes", answer)


class ErrorTests(SynchronousTestCase):
    def test_api_error(self) -> None:
        """ApiError carries status, code and message."""
        exc = ApiError(409, "conflict", "already there")
        self.assertEqual((exc.status, exc.code, str(exc)), (409, "conflict", "already there"))
