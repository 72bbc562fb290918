"""Hostile requests to /client/api: bytes that are not UTF-8, too many parameters, oversized bodies,
unknown commands (issue items 2–4; spec/api.md §1.2, §3.5).

Every refusal here happens before authentication and before the rate limiter, costs one log line
without a traceback, and is answered in the API's own error envelope. The body limit is checked on
the real twisted.web channel (`cloudd.web.site.ApiChannel`) over a `StringTransport` on the
harness's fake clock, so the lingering close is driven by the clock, not by sleeping.
"""

from __future__ import annotations

import json
import random
import urllib.parse
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from cloudd.service import api_site
from cloudd.web.site import LINGER_BYTES, LINGER_SECONDS, ApiChannel
from cloudd.web.wire import (
    UndecodableParameter,
    count_pieces,
    first_undecodable_header,
    parse_pairs,
    wants_json,
)
from tests.util.cloud import make_cloud
from tests.util.tenants import http_request, login, raw_http, session_call, session_of, snapshot, v1_params

FORM = "application/x-www-form-urlencoded"
SIGNATURE_FAILED = "unable to verify user credentials and/or request signature"
BAD_HEADERS = [("X-Forwarded-For", b"203.0.113.\xff"), ("Content-Type", b"application/x-www-form-urlencoded\xe9"),
               ("Origin", b"http://\xc3"), ("Referer", b"http://localhost:8080/\xfe"), ("Host", b"\xfflocalhost"),
               ("Cookie", b"JSESSIONID=\x80"), ("Sec-Fetch-Site", b"same\xa0origin")]
BAD_PARAMS = [(b"name=%FF", "name"), (b"name=\xe9", "name"), (b"keyword=%C3%28", "keyword"),
              (b"name=%ED%A0%80", "name"), (b"%FF=1", None), (b"\xc0\xaf=1", None), (b"command=list%FF", "command")]


def with_header(data: bytes, name: str, value: bytes) -> bytes:
    """Raw request bytes with header `name` set to `value` (replacing one of that name)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(name.lower().encode() + b":")]
    return b"\r\n".join([*lines, name.encode() + b": " + value]) + sep + rest


class HalfClosingTransport(StringTransport):
    """A StringTransport that records a half-close and an abort, as a TCP transport does them."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:  # noqa: N802 (Twisted API)
        self.write_closed = True

    def abortConnection(self) -> None:  # noqa: N802 (Twisted API)
        self.aborted = True


class WireTests(SynchronousTestCase):
    """The byte-level checks made before a request is decoded."""

    def test_strict_decoding_names_the_parameter(self) -> None:
        """Strict parsing refuses a value or a name that is not UTF-8, naming the parameter when it can."""
        for raw, name in BAD_PARAMS:
            error = self.assertRaises(UndecodableParameter, parse_pairs, b"a=1&" + raw, strict=True)
            self.assertEqual(error.name, name, raw)
        self.assertEqual(parse_pairs(b"a=Gr%C3%BC%C3%9Fe&b=%zz", strict=True), [("a", "Grüße"), ("b", "%zz")])

    def test_count_pieces_is_an_upper_bound(self) -> None:
        """One piece per `&` plus one per non-empty part; nothing is decoded to count them."""
        self.assertEqual(count_pieces(b"", b""), 0)
        self.assertEqual(count_pieces(b"a=1", b""), 1)
        self.assertEqual(count_pieces(b"a=1&b=2", b"c=%FF&&"), 5)

    def test_wants_json_reads_bytes(self) -> None:
        """`response=json` is found as a whole piece in any case; a longer name does not count."""
        self.assertTrue(wants_json(b"command=x&Response=JSON"))
        self.assertTrue(wants_json(b"", b"response=json&x=%FF"))
        self.assertFalse(wants_json(b"xresponse=json", b"response=jsonp"))

    def test_only_headers_read_are_checked(self) -> None:
        """A header cloudd does not read may carry any bytes; the first bad one it reads is named."""
        headers = [(b"User-Agent", [b"\xff"]), (b"Origin", [b"ok"]), (b"Referer", [b"ok", b"\xc3"])]
        self.assertEqual(first_undecodable_header(headers, {b"origin", b"referer"}), "Referer")
        self.assertIsNone(first_undecodable_header(headers[:2], {b"origin", b"referer"}))


class BadBytesTests(SynchronousTestCase):
    """Bytes that are not UTF-8 in a header or a parameter: a 4xx, one log line, nothing else."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(1_700_000_000)

    def signed_get(self) -> bytes:
        """A valid signed listAccounts GET as raw HTTP bytes."""
        p = v1_params("listAccounts", self.cloud.admin.apikey, self.cloud.admin.secretkey)
        return http_request("GET", b"/client/api?" + urllib.parse.urlencode(p).encode())

    def assert_one_line(self, events: Any, text: str) -> None:
        warnings = [e for e in events if e.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical)]
        self.assertEqual(len(warnings), 1, [formatEvent(e) for e in warnings])
        self.assertIn(text, formatEvent(warnings[0]))
        self.assertFalse([e for e in events if "log_failure" in e])

    def test_each_bad_header(self) -> None:
        """Each header cloudd reads, with a byte that is not UTF-8 in a validly signed request, gets 400
        `errorresponse` (no cserrorcode, as for other servlet-level refusals) instead of a 530 with a
        traceback, and one log line naming the header and never its value."""
        for name, value in BAD_HEADERS:
            with capturedLogs() as events:
                r = raw_http(self.cloud, with_header(self.signed_get(), name, value))
            self.assertEqual(r.status, 400, (name, r.body))
            self.assertEqual(json.loads(r.body), {"errorresponse": {
                "uuidList": [], "errorcode": 400,
                "errortext": f"Received a value that is not valid UTF-8 in header {name}"}})
            self.assertEqual(r.headers["content-type"], "application/json; charset=UTF-8")
            self.assert_one_line(events, f"its {name} header is not UTF-8")
            self.assertNotIn(repr(value)[2:-1], "".join(formatEvent(e) or "" for e in events))

    def test_configured_forwarded_header_is_checked(self) -> None:
        """The headers named by proxy.header.names are read, so they are checked too, as soon as the
        setting changes."""
        self.cloud.api.settings.set("proxy.header.names", "X-Real-IP, X-Forwarded-For")
        r = raw_http(self.cloud, with_header(self.signed_get(), "X-Real-IP", b"\xff"))
        # twisted.web spells header names in its canonical case
        self.assertEqual((r.status, json.loads(r.body)["errorresponse"]["errortext"]),
                         (400, "Received a value that is not valid UTF-8 in header X-Real-Ip"))
        self.cloud.api.settings.set("proxy.header.names", "X-Forwarded-For")
        self.assertEqual(raw_http(self.cloud, with_header(self.signed_get(), "X-Real-IP", b"\xff")).status, 200)

    def test_each_bad_parameter(self) -> None:
        """A parameter name or value that is not UTF-8 once decoded, in the query or a form body, gets
        431/9999 naming the parameter (not its value), and one log line."""
        for raw, name in BAD_PARAMS:
            # a raw byte outside ASCII in the request target is refused by twisted.web itself (a bare 400)
            query = [http_request("GET", b"/client/api?response=json&" + raw)] if raw.isascii() else []
            for data in [*query, http_request("POST", b"/client/api?response=json", raw, FORM)]:
                with capturedLogs() as events:
                    r = raw_http(self.cloud, data)
                self.assertEqual(r.status, 431, (raw, r.body))
                body = json.loads(r.body)["errorresponse"]
                self.assertEqual((body["errorcode"], body["cserrorcode"]), (431, 9999))
                self.assertEqual(body["errortext"], "Received a parameter name that is not valid UTF-8" if name is None
                                 else f"Received value that is not valid UTF-8 for parameter {name}")
                self.assert_one_line(events, "is not UTF-8")

    def test_refused_before_the_rate_limiter_and_authentication(self) -> None:
        """With per-address throttling at 2 requests, ten refusals for bad bytes neither count towards
        the limit nor reach authentication: a valid signed request still passes afterwards."""
        settings = self.cloud.api.settings
        settings.set("api.throttling.enabled", "true")
        settings.set("api.throttling.address.max", "2")
        before = snapshot(self.cloud)
        for i in range(10):
            name, value = BAD_HEADERS[i % len(BAD_HEADERS)]
            self.assertEqual(raw_http(self.cloud, with_header(self.signed_get(), name, value)).status, 400)
            raw, _ = BAD_PARAMS[i % len(BAD_PARAMS)]
            self.assertEqual(raw_http(self.cloud, http_request("POST", b"/client/api", raw, FORM)).status, 431)
        self.assertEqual([raw_http(self.cloud, self.signed_get()).status for _ in range(3)], [200, 200, 429])
        self.assertEqual(snapshot(self.cloud)["users"], before["users"])

    def test_session_path_with_bad_origin(self) -> None:
        """A session call whose Origin is not UTF-8 (which the CSRF check reads) gets 400, not a 530."""
        session = session_of(login(self.cloud, "admin", self.cloud.admin.password))
        ok = session_call(self.cloud, session, "listDomains")
        self.assertEqual(ok.status, 200)
        q = urllib.parse.urlencode({"command": "listDomains", "response": "json", "sessionkey": session.key})
        data = with_header(http_request("GET", b"/client/api?" + q.encode()), "Cookie", session.cookie().encode())
        self.assertEqual(raw_http(self.cloud, data).status, 200)
        self.assertEqual(raw_http(self.cloud, with_header(data, "Origin", b"http://\xff")).status, 400)


class ParameterCountTests(SynchronousTestCase):
    """api.request.parameters.max: counted on the bytes, before any decoding."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.api.settings.set("api.request.parameters.max", "10")

    def test_limit_and_setting(self) -> None:
        """Ten pieces pass, eleven (query and body together) get 431 `errorresponse`; the setting is
        read per request from memory."""
        query = b"command=listUsers&response=json&" + b"&".join(b"p%d=1" % i for i in range(7))
        self.assertEqual(raw_http(self.cloud, http_request("POST", b"/client/api?" + query, b"q=1", FORM)).status,
                         401)
        r = raw_http(self.cloud, http_request("POST", b"/client/api?" + query, b"q=1&r=2", FORM))
        self.assertEqual(r.status, 431)
        self.assertEqual(json.loads(r.body)["errorresponse"]["errortext"],
                         "Too many parameters in the request: at most 10 are accepted")
        self.cloud.api.settings.set("api.request.parameters.max", "1000")
        self.assertEqual(raw_http(self.cloud, http_request("POST", b"/client/api?" + query, b"q=1&r=2",
                                                           FORM)).status, 401)

    def test_counted_before_decoding(self) -> None:
        """A request with too many parameters and a byte that is not UTF-8 is refused for the count:
        the count comes first, so a flood of pairs costs no decoding at all."""
        body = b"&".join(b"p%d=%%FF" % i for i in range(11))
        r = raw_http(self.cloud, http_request("POST", b"/client/api?response=json", body, FORM))
        self.assertEqual((r.status, json.loads(r.body)["errorresponse"]["errortext"]),
                         (431, "Too many parameters in the request: at most 10 are accepted"))


class UnknownCommandTests(SynchronousTestCase):
    """An unknown command on the signature path: still 401 (libcloud raises InvalidCredsError), with a
    text that names the command as a possible cause and confirms nothing."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)

    def test_same_answer_with_or_without_valid_keys(self) -> None:
        """Validly signed, wrongly signed or unsigned, the answer is the same: the caller learns neither
        whether the command exists nor whether their keys are good."""
        text = (f"The API [listVirtualMachinez] may not exist or may not be available to this account, or "
                f"{SIGNATURE_FAILED}")
        answers = [self.cloud.signed("listVirtualMachinez"),
                   self.cloud.signed("listVirtualMachinez", secret="wrong"),
                   self.cloud.request({"command": "listVirtualMachinez", "response": "json"})]
        for r in answers:
            self.assertEqual(r.status, 401)
            self.assertEqual(r.json(), {"errorresponse": {"uuidList": [], "errorcode": 401, "errortext": text}})
            self.assertEqual(r.headers["x-description"], text)

    def test_known_command_keeps_the_credentials_text(self) -> None:
        """A known command with a bad signature keeps CloudStack's text exactly."""
        r = self.cloud.signed("listUsers", secret="wrong")
        self.assertEqual((r.status, r.inner()["errortext"]), (401, SIGNATURE_FAILED))

    def test_long_name_is_cut(self) -> None:
        """The name echoed in the text is cut to 64 characters."""
        r = self.cloud.request({"command": "x" * 5000, "response": "json"})
        self.assertIn("[" + "x" * 64 + "]", r.inner()["errortext"])
        self.assertLess(len(r.inner()["errortext"]), 200)


class ChannelCase(SynchronousTestCase):
    """The production site's channel on a half-closing StringTransport, with a 1000-byte body limit."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.api.settings.set("api.request.body.max.bytes", "1000")
        self.site = api_site(self.cloud.resource)
        self.site.reactor = self.cloud.reactor
        self.lines: list[str] = []
        self.site._logFile = self  # the access log lines, as written
        self.channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert isinstance(self.channel, ApiChannel)
        self.transport = HalfClosingTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.channel.makeConnection(self.transport)
        self.addCleanup(self.channel.connectionLost, Failure(ConnectionDone()))

    def write(self, line: str) -> None:
        self.lines.append(line)

    def head(self, length: int | None, query: bytes = b"response=json", extra: bytes = b"") -> bytes:
        framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
        return (b"POST /client/api?" + query + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n" + framing + b"\r\n" + extra + b"\r\n")

    def answer(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        return status, dict(line.split(b": ", 1) for line in lines), body

    def assert_refused(self, as_json: bool = True) -> None:
        status, headers, body = self.answer()
        self.assertEqual(status, b"HTTP/1.1 413 Request Entity Too Large")
        self.assertEqual(headers[b"Connection"], b"close")
        self.assertEqual(int(headers[b"Content-Length"]), len(body))
        text = "Request body larger than the limit of 1000 bytes"
        self.assertEqual(headers[b"X-Description"], text.encode())
        if as_json:
            self.assertEqual(json.loads(body), {"errorresponse": {"uuidList": [], "errorcode": 413, "errortext": text}})
        else:
            self.assertIn(b"<errorcode>413</errorcode>", body)
        self.assertTrue(self.transport.write_closed)
        self.assertEqual(len(self.lines), 1)
        query = "response=json" if as_json else "response=xml"
        self.assertIn(f'"POST /client/api?{query} HTTP/1.1" 413', self.lines[0])


class QueryStringTests(ChannelCase):
    """The API reads the query string itself; twisted.web's parse into `request.args` is skipped."""

    def test_query_not_parsed_by_twisted_but_answered(self) -> None:
        """A GET through the real channel is answered from its query string (an unknown command's
        401 names it), the request's `args` stay empty (twisted.web never walked the parameters) and
        the access log shows the whole request target."""
        requests: list[Any] = []
        original = self.site.requestFactory

        def recording(*args: Any, **kwargs: Any) -> Any:
            request = original(*args, **kwargs)
            requests.append(request)
            return request

        self.site.requestFactory = recording  # type: ignore[assignment]
        self.channel.requestFactory = recording  # type: ignore[assignment]
        self.channel.dataReceived(b"GET /client/api?command=noSuchThing&response=json&a=1&b=2 HTTP/1.1\r\n"
                                  b"Host: localhost\r\n\r\n")
        status, _, body = self.answer()
        self.assertEqual(status, b"HTTP/1.1 401 Unauthorized")
        self.assertIn("[noSuchThing]", json.loads(body)["errorresponse"]["errortext"])
        [request] = requests
        self.assertEqual(request.args, {})
        self.assertEqual(request.uri, b"/client/api?command=noSuchThing&response=json&a=1&b=2")
        self.assertEqual(request.path, b"/client/api")
        self.assertIn('"GET /client/api?command=noSuchThing&response=json', self.lines[0])


class BodyLimitTests(ChannelCase):
    """api.request.body.max.bytes, enforced by the channel while the body arrives."""

    def test_content_length_over_the_limit(self) -> None:
        """A Content-Length over the limit is refused as soon as the head arrives (no 100 Continue,
        nothing buffered), in the envelope `response=` asks for, with one log line."""
        with capturedLogs() as events:
            self.channel.dataReceived(self.head(1001, extra=b"Expect: 100-continue\r\n"))
        self.assertNotIn(b"100 Continue", self.transport.value())
        self.assert_refused()
        self.assertEqual([formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn],
                         ["refused an API request body over 1000 bytes from 127.0.0.1"])

    def test_xml_by_default(self) -> None:
        """Without response=json the 413 is in the XML envelope, as every other error."""
        self.channel.dataReceived(self.head(5000, query=b"response=xml"))
        self.assert_refused(as_json=False)

    def test_chunked_body_over_the_limit(self) -> None:
        """A chunked body is counted as it arrives and refused when it passes the limit; the request is
        never handed to the API resource."""
        self.channel.dataReceived(self.head(None) + b"258\r\n" + b"a" * 600 + b"\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.channel.dataReceived(b"258\r\n" + b"a" * 600 + b"\r\n0\r\n\r\n")
        self.assert_refused()
        self.assertEqual(self.answer()[2].count(b"errorresponse"), 1)

    def test_body_at_the_limit_is_read(self) -> None:
        """A body of exactly the limit reaches the API (here an unsigned call: 401)."""
        body = b"command=listUsers&pad=" + b"x" * (1000 - 22)
        self.assertEqual(len(body), 1000)
        self.channel.dataReceived(self.head(len(body)) + body)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 401 "), self.transport.value()[:100])

    def test_rest_dropped_then_closed_after_a_while(self) -> None:
        """After the answer, what the client still sends is read and dropped (so that the client sees
        the 413 rather than a reset) until LINGER_SECONDS have passed; then the connection is aborted."""
        self.channel.dataReceived(self.head(10_000_000))
        sent = len(self.transport.value())
        self.channel.dataReceived(b"x" * 65536)
        self.cloud.reactor.advance(LINGER_SECONDS - 0.1)
        self.assertFalse(self.transport.aborted)
        self.assertEqual(len(self.transport.value()), sent)
        self.cloud.reactor.advance(0.2)
        self.assertTrue(self.transport.aborted)

    def test_closed_after_linger_bytes(self) -> None:
        """A client that keeps sending is cut off after LINGER_BYTES more, without waiting."""
        self.channel.dataReceived(self.head(10_000_000))
        self.channel.dataReceived(b"x" * LINGER_BYTES)
        self.assertFalse(self.transport.aborted)
        self.channel.dataReceived(b"x")
        self.assertTrue(self.transport.aborted)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.cloud.reactor.getDelayedCalls(), [])

    def test_setting_read_per_request(self) -> None:
        """Raising the limit takes effect for the next request, without a restart."""
        self.cloud.api.settings.set("api.request.body.max.bytes", "4194304")
        body = b"command=listUsers&pad=" + b"x" * 5000
        self.channel.dataReceived(self.head(len(body)) + body)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 401 "))


class LongLineTests(ChannelCase):
    """A request or header line over twisted.web's line limit gets an answer, not a silent close."""

    def test_long_request_line(self) -> None:
        """A request target over the limit gets 414 in the envelope `response=` asks for, then the
        connection is half-closed and closed after the linger."""
        self.channel.dataReceived(b"GET /client/api?response=json&name=" + b"x" * (ApiChannel.MAX_LENGTH + 10))
        status, headers, body = self.answer()
        self.assertEqual(status, b"HTTP/1.1 414 Request-URI Too Long")
        self.assertEqual(json.loads(body)["errorresponse"]["errorcode"], 414)
        self.assertTrue(self.transport.write_closed)
        self.cloud.reactor.advance(LINGER_SECONDS)
        self.assertTrue(self.transport.aborted)

    def test_long_header_line(self) -> None:
        """A header line over the limit gets 431 Request Header Fields Too Large, in XML by default."""
        self.channel.dataReceived(b"GET /client/api?command=listUsers HTTP/1.1\r\nX-Big: "
                                  + b"y" * (ApiChannel.MAX_LENGTH + 10))
        status, headers, body = self.answer()
        self.assertEqual(status, b"HTTP/1.1 431 Request Header Fields Too Large")
        self.assertIn(b"<errorcode>431</errorcode>", body)
        self.assertEqual(headers[b"Connection"], b"close")


class RandomHostileRequestsTests(SynchronousTestCase):
    """A few hundred random hostile requests through the production Site: never a 5xx, never a
    logged failure (the real-process probe in tests/integration/test_api_probe.py sends 2,000)."""

    def test_random_requests(self) -> None:
        cloud = make_cloud()
        self.addCleanup(cloud.stop)
        rng = random.Random(9)
        alphabet = [bytes([b]) for b in range(256) if b not in b"\r\n"]
        statuses = set()
        with capturedLogs() as events:
            for _ in range(300):
                pieces = [b"command=" + rng.choice([b"listUsers", b"fooBar", b"login", b"%FF", b"list%00Users"]),
                          rng.choice([b"response=json", b"response=xml", b""])]
                for _ in range(rng.randrange(0, 12)):
                    name = rng.choice([b"tags[%d].key" % rng.randrange(10**9), b"details[999999].x", b"details[0]",
                                       b"tags[x].key", b"a" * rng.randrange(1, 300), b"name", b"NAME"])
                    value = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
                    pieces.append(name + b"=" + urllib.parse.quote_from_bytes(value).encode())
                body = b"&".join(pieces)
                r = raw_http(cloud, http_request("POST", b"/client/api", body, FORM))
                statuses.add(r.status)
                self.assertLess(r.status, 500, (body[:200], r.body[:300]))
        self.assertFalse([e for e in events if "log_failure" in e or e.get("log_level") == LogLevel.critical])
        self.assertTrue({401, 431} <= statuses, statuses)
