"""Bad input to the query API, table-driven (spec/api.md §1, §3.5, §4.1, §11 items 1–7).

Every case is a request the server must answer with its documented status and error body
(`errorcode` equal to the status, an `errortext`, the right response name, `errorresponse` for an
unknown command), never with a 500 or a traceback, and without changing anything stored: every
table of the database is compared before and after each case (a failed call records no event
either). Requests are signed with the root admin's keys unless the case is about authentication,
so that each one reaches the layer it is meant to probe.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree import ElementTree

from twisted.trial.unittest import SynchronousTestCase

from cloudd.web.signing import sign
from tests.util.cloud import Cloud, make_cloud
from tests.util.tenants import http_request, iso, raw_http, snapshot, v1_params, v3_params

SIGNATURE_FAILED = "unable to verify user credentials and/or request signature"
NOT_UTF8 = "Received value that is not valid UTF-8 for parameter"
TOO_MANY = "Too many parameters in the request: at most 1000 are accepted"


def unknown(name: str) -> str:
    """The 401 text of an unknown command on the signature path (issue: newcomers suspected their keys)."""
    return f"The API [{name}] may not exist or may not be available to this account, or {SIGNATURE_FAILED}"
NOW = 1_700_000_000.0
FORM = "application/x-www-form-urlencoded"


class Answer(Protocol):
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Case:
    name: str
    send: Callable[[Cloud], Answer]
    status: int
    # None: not a CloudStack envelope at all (plain HTTP answer)
    response_name: str | None
    # a fragment of errortext for errors; for 200 answers, a fragment of the body
    text: str = ""
    xml: bool = False


def signed(command: str, method: str = "GET", **params: Any) -> Callable[[Cloud], Answer]:
    def send(cloud: Cloud) -> Answer:
        return cloud.signed(command, method=method, **params)

    return send


def plain(params: dict[str, str], method: str = "GET") -> Callable[[Cloud], Answer]:
    def send(cloud: Cloud) -> Answer:
        return cloud.request(params, method, body={} if method == "POST" else None)

    return send


def raw(method: str, query: Callable[[Cloud], bytes], body: bytes = b"",
        content_type: str | None = None, header: bytes = b"") -> Callable[[Cloud], Answer]:
    """Bytes through the production Site: for what the harness's urlencode cannot express. `header`
    (a raw `Name: value` line) is added to the request head, replacing a `Host` line when it is one."""

    def send(cloud: Cloud) -> Answer:
        data = http_request(method, b"/client/api?" + query(cloud), body, content_type)
        if header:
            head, sep, rest = data.partition(b"\r\n\r\n")
            lines = [line for line in head.split(b"\r\n")
                     if not line.lower().startswith(header.split(b":", 1)[0].lower() + b":")]
            data = b"\r\n".join([*lines, header]) + sep + rest
        return raw_http(cloud, data)

    return send


def signed_query(command: str, *, tail: bytes = b"", hidden: dict[str, str] | None = None,
                 **params: Any) -> Callable[[Cloud], bytes]:
    """A signed query string; `hidden` values are signed as given but sent as the raw `tail`."""

    def build(cloud: Cloud) -> bytes:
        p = v1_params(command, cloud.admin.apikey, cloud.admin.secretkey, **params, **(hidden or {}))
        for name in hidden or {}:
            del p[name]
        return urllib.parse.urlencode(p).encode() + tail

    return build


def literal(query: bytes) -> Callable[[Cloud], bytes]:
    return lambda cloud: query


def signed_body(command: str, **params: Any) -> Callable[[Cloud], Answer]:
    """A signed form POST sent through the production Site."""

    def send(cloud: Cloud) -> Answer:
        p = v1_params(command, cloud.admin.apikey, cloud.admin.secretkey, **params)
        body = urllib.parse.urlencode(p).encode()
        return raw_http(cloud, http_request("POST", b"/client/api", body, FORM))

    return send


def v3(command: str, **params: Any) -> Callable[[Cloud], Answer]:
    return lambda cloud: cloud.request(v3_params(cloud, command, **params))


def unsigned_with_key(cloud: Cloud) -> Answer:
    return cloud.request({"command": "listUsers", "response": "json", "apiKey": cloud.admin.apikey})


def bad_signature(cloud: Cloud) -> Answer:
    p = v1_params("listUsers", cloud.admin.apikey, cloud.admin.secretkey)
    p["signature"] = sign({**p, "command": "listDomains"}, cloud.admin.secretkey)
    return cloud.request(p)


def no_command(cloud: Cloud) -> Answer:
    p = {"response": "json", "apiKey": cloud.admin.apikey}
    p["signature"] = sign(p, cloud.admin.secretkey)
    return cloud.request(p)


UPPER_UUID = str(uuid.uuid4()).upper()
MANY = {f"p{i}": "v" for i in range(5000)}
SOME = {f"p{i}": "v" for i in range(990)}
MULTIPART = (b'--XyZ\r\nContent-Disposition: form-data; name="command"\r\n\r\nlistUsers\r\n'
             b'--XyZ\r\nContent-Disposition: form-data; name="response"\r\n\r\njson\r\n--XyZ--\r\n')
INVALID_PARAM = "Unable to execute API command listusers due to invalid value. Invalid parameter id value="

CASES = [
    # commands
    Case("unknown command", signed("fooBar"), 401, "errorresponse", unknown("fooBar")),
    Case("command in the wrong case", signed("listusers"), 401, "errorresponse", unknown("listusers")),
    Case("missing command", no_command, 401, "errorresponse", SIGNATURE_FAILED),
    Case("missing command, XML", plain({}), 401, "errorresponse", SIGNATURE_FAILED, xml=True),
    Case("unknown command, XML", plain({"command": "fooBar"}), 401, "errorresponse", unknown("fooBar"), xml=True),
    Case("unknown command, unsigned", plain({"command": "fooBar", "response": "json"}), 401, "errorresponse",
         unknown("fooBar")),
    # required parameters, ids
    Case("missing required parameter", signed("createDomain"), 431, "createdomainresponse",
         "Unable to execute API command createdomain due to missing parameter name"),
    Case("blank required parameter", signed("deleteDomain", id=""), 431, "deletedomainresponse",
         "due to missing parameter id"),
    Case("invalid uuid", signed("listUsers", id="not-a-uuid"), 431, "listusersresponse",
         INVALID_PARAM + "not-a-uuid"),
    Case("upper-case uuid", signed("listUsers", id=UPPER_UUID), 431, "listusersresponse", INVALID_PARAM + UPPER_UUID),
    Case("uuid of nothing", signed("updateDomain", id=str(uuid.uuid4()), name="x"), 431, "updatedomainresponse",
         "Invalid parameter id value="),
    Case("-1 as a uuid", signed("listUsers", id="-1"), 200, "listusersresponse", "{}"),
    Case("projectid=-1", signed("listEvents", projectid="-1"), 200, "listeventsresponse", "{}"),
    Case("bad uuid in a list", signed("updateRolePermission", roleid=str(uuid.uuid4()), ruleorder="a,b"), 431,
         "updaterolepermissionresponse", "Invalid parameter ruleorder value=a"),
    # lengths and types
    Case("string over 255", signed("createDomain", name="x" * 256), 431, "createdomainresponse",
         "Value greater than max allowed length 255 for param: name"),
    Case("string over its declared length", signed("updateConfiguration", name="proxy.cidr", value="x" * 4096),
         431, "updateconfigurationresponse", "Value greater than max allowed length 4095 for param: value"),
    Case("a megabyte in a POST body", signed_body("createDomain", name="x" * 1_000_000), 431,
         "createdomainresponse", "Value greater than max allowed length 255 for param: name"),
    Case("bad integer", signed("listDomains", level="abc"), 431, "listdomainsresponse",
         "Unable to execute API command listdomains due to invalid value abc for parameter level"),
    Case("integer out of range", signed("listDomains", level="99999999999"), 431, "listdomainsresponse",
         "due to invalid value 99999999999 for parameter level"),
    Case("bad account type", signed("createAccount", username="u", password="p", firstname="f", lastname="l",
                                    email="e", accounttype="7"), 431, "createaccountresponse",
         "Invalid account type 7"),
    Case("bad boolean is false", signed("listAccounts", listall="yes"), 200, "listaccountsresponse", '"admin"'),
    Case("bad date", signed("listEvents", startdate="2024-13-45"), 431, "listeventsresponse",
         "Unable to parse date 2024-13-45 for command listevents, please pass dates in the format mentioned in "
         "the api documentation"),
    Case("date with a bad time", signed("listEvents", enddate="2024-01-01 25:00:00"), 431, "listeventsresponse",
         "Unable to parse date"),
    # control characters
    Case("tab in a value", signed("listAccounts", name="a\tb"), 431, "listaccountsresponse",
         "Received value containing illegal ASCII non-printable characters for parameter name"),
    Case("NUL in a value", signed("listAccounts", name="a\x00b"), 431, "listaccountsresponse",
         "illegal ASCII non-printable characters for parameter name"),
    Case("DEL in a value", signed("listAccounts", keyword="\x7f"), 431, "listaccountsresponse",
         "illegal ASCII non-printable characters for parameter keyword"),
    Case("control character in an unknown parameter", signed("createDomain", name="ok", junk="\x1b"), 431,
         "createdomainresponse", "illegal ASCII non-printable characters for parameter junk"),
    Case("CR and LF allowed", signed("listAccounts", name="a\r\nb"), 200, "listaccountsresponse", "{}"),
    # maps
    Case("map key without a field", signed("createAccount", username="u", password="p", firstname="f",
                                           lastname="l", email="e", accounttype="0", **{"accountdetails[0]": "x"}),
         430, "createaccountresponse", "Unable to decode parameter accountdetails[0]; if specifying an object "
         "array, please use parameter[index].field=XXX, e.g. userGroupList[0].group=httpGroup"),
    Case("map key details[0]", signed("listAccounts", **{"details[0]": "x"}), 430, "listaccountsresponse",
         "Unable to decode parameter details[0]"),
    Case("map index not a number", signed("listAccounts", **{"tags[x].key": "a"}), 430, "listaccountsresponse",
         "Unable to decode parameter tags[x].key"),
    Case("map index of 5000 digits", signed("listAccounts", **{"tags[" + "9" * 5000 + "].key": "a"}), 430,
         "listaccountsresponse", "Unable to decode parameter tags[999"),
    Case("map index 999999", signed("listAccounts", **{"details[999999].x": "a"}), 200, "listaccountsresponse",
         '"admin"'),
    Case("map key with two brackets", signed("listAccounts", **{"tags[0][1].key": "a"}), 430,
         "listaccountsresponse", "Unable to decode parameter tags[0][1].key"),
    # duplicates
    Case("duplicated parameter", raw("GET", signed_query("listAccounts", name="a", tail=b"&name=b")), 431,
         "errorresponse", "Parameter name was specified more than once"),
    Case("duplicated parameter, other case", raw("GET", signed_query("listAccounts", name="a", tail=b"&NAME=b")),
         431, "errorresponse", "Parameter NAME was specified more than once"),
    Case("duplicated between query and body", raw("POST", signed_query("listAccounts", name="a"), b"Name=b", FORM),
         431, "errorresponse", "Parameter Name was specified more than once"),
    Case("duplicated command", raw("GET", literal(b"command=listUsers&command=createDomain&response=json")),
         431, "errorresponse", "Parameter command was specified more than once"),
    # pagination
    Case("page without pagesize", signed("listAccounts", page=1), 431, "listaccountsresponse",
         '"pagesize" parameter is required when "page" is specified'),
    Case("pagesize without page", signed("listAccounts", pagesize=10), 431, "listaccountsresponse",
         '"page" parameter is required when "pagesize" is specified'),
    Case("pagesize above default.page.size", signed("listAccounts", page=1, pagesize=501), 431,
         "listaccountsresponse", "Page size can't exceed max allowed page size value: 500"),
    Case("pagesize=-1 with page", signed("listAccounts", page=1, pagesize=-1), 431, "listaccountsresponse",
         "Can't specify page parameter when pagesize is -1 (Unlimited)"),
    Case("pagesize=-1 alone", signed("listAccounts", pagesize=-1), 200, "listaccountsresponse", '"count":1'),
    Case("pagesize=0", signed("listAccounts", page=1, pagesize=0), 431, "listaccountsresponse", "Page size"),
    Case("page=0 is page 1", signed("listAccounts", page=0, pagesize=1), 200, "listaccountsresponse",
         '"count":1'),
    Case("page past the end", signed("listAccounts", page=9, pagesize=1), 200, "listaccountsresponse",
         '{"listaccountsresponse":{"count":1}}'),
    # bodies and methods
    Case("JSON body is not parsed", raw("POST", literal(b""), b'{"command":"listUsers","response":"json"}',
                                        "application/json"), 401, "errorresponse", SIGNATURE_FAILED, xml=True),
    Case("JSON body beside a signed query", raw("POST", signed_query("listAccounts"), b'{"name":"x"}',
                                                "application/json"), 200, "listaccountsresponse", '"admin"'),
    Case("multipart body is not an API body", raw("POST", literal(b""), MULTIPART, "multipart/form-data; boundary=XyZ"),
         401, "errorresponse", SIGNATURE_FAILED, xml=True),
    Case("broken multipart body", raw("POST", literal(b"command=listUsers"), b"garbage",
                                      "multipart/form-data; boundary=XyZ"), 401, "listusersresponse",
         SIGNATURE_FAILED, xml=True),
    Case("PUT", raw("PUT", signed_query("createDomain", name="put")), 405, None, "Method Not Allowed"),
    Case("DELETE", raw("DELETE", signed_query("deleteDomain", id=str(uuid.uuid4()))), 405, None,
         "Method Not Allowed"),
    Case("PATCH", raw("PATCH", signed_query("listUsers")), 405, None, "Method Not Allowed"),
    Case("990 unknown parameters, signed", signed_body("listAccounts", **SOME), 200, "listaccountsresponse",
         '"admin"'),
    Case("5000 unknown parameters, signed", signed_body("listAccounts", **MANY), 431, "errorresponse", TOO_MANY),
    Case("20000 parameters, unsigned", raw("POST", literal(b"command=listUsers&response=json"),
                                           b"&".join(b"q%d=%d" % (i, i) for i in range(20000)), FORM), 431,
         "errorresponse", TOO_MANY),
    Case("1001 parameters in the query, XML", raw("GET", literal(b"&".join(b"q%d=" % i for i in range(1001)))),
         431, "errorresponse", TOO_MANY, xml=True),
    # encodings
    Case("invalid UTF-8 escapes", raw("GET", signed_query("listAccounts", hidden={"name": "\ufffd\ufffd"},
                                                          tail=b"&name=%FF%FE")), 431, "errorresponse",
         NOT_UTF8 + " name"),
    Case("raw byte that is not UTF-8", raw("POST", literal(b""), b"command=listUsers&response=json&name=\xe9t\xe9",
                                           FORM), 431, "errorresponse", NOT_UTF8 + " name"),
    Case("raw byte in the request target", raw("GET", literal(b"command=listUsers&name=\xe9")), 400, None),
    Case("truncated UTF-8 sequence", raw("GET", literal(b"command=listUsers&response=json&name=%C3")), 431,
         "errorresponse", NOT_UTF8 + " name"),
    Case("encoded surrogate", raw("GET", literal(b"command=listUsers&response=json&name=%ED%A0%80")), 431,
         "errorresponse", NOT_UTF8 + " name"),
    Case("name that is not UTF-8", raw("GET", literal(b"command=listUsers&response=json&%FF=1")), 431,
         "errorresponse", "Received a parameter name that is not valid UTF-8"),
    Case("body that is not UTF-8", raw("POST", literal(b"response=json"), b"command=listUsers&keyword=%80", FORM),
         431, "errorresponse", NOT_UTF8 + " keyword"),
    Case("body that is not UTF-8, XML", raw("POST", literal(b""), b"command=listUsers&keyword=\xff", FORM),
         431, "errorresponse", NOT_UTF8 + " keyword", xml=True),
    Case("valid UTF-8 accepted", raw("GET", signed_query("listAccounts", name="Gr\u00fc\u00dfe")), 200,
         "listaccountsresponse", "{}"),
    Case("broken percent escapes", raw("GET", signed_query("listAccounts", hidden={"name": "%zz%4"},
                                                           tail=b"&name=%zz%4")), 200, "listaccountsresponse", "{}"),
    Case("invalid UTF-8 in the command", raw("GET", literal(b"command=list%FFUsers&response=json")), 431,
         "errorresponse", NOT_UTF8 + " command"),
    Case("NUL escape in the command", raw("GET", literal(b"command=listUsers%00&response=json")), 401,
         "errorresponse", unknown("listUsers\x00")),
    # headers that are not UTF-8: 400 before authentication and throttling, in the envelope asked for
    *[Case(f"{name} not UTF-8", raw("POST", literal(b"command=listUsers&response=json"), b"",
                                    header=name.encode() + b": " + value), 400, "errorresponse",
           f"Received a value that is not valid UTF-8 in header {name}")
      for name, value in [("X-Forwarded-For", b"10.0.0.\xff"), ("Content-Type", FORM.encode() + b"; x=\xe9"),
                          ("Origin", b"http://caf\xe9.example"), ("Referer", b"http://localhost:8080/\xc3"),
                          ("Host", b"\xfflocalhost:8080"), ("Cookie", b"JSESSIONID=\xfe\xff"),
                          ("Sec-Fetch-Site", b"\x80")]],
    Case("header not UTF-8, XML", raw("GET", literal(b"command=listUsers"), header=b"Origin: \xff"), 400,
         "errorresponse", "in header Origin", xml=True),
    Case("unread header not UTF-8 is ignored", raw("GET", literal(b"command=listUsers&response=json"),
                                                   header=b"X-Whatever: \xff"), 401, "listusersresponse",
         SIGNATURE_FAILED),
    Case("UTF-8 in a header accepted", raw("GET", signed_query("listAccounts"),
                                           header="Referer: http://localhost:8080/caf\u00e9".encode()), 200,
         "listaccountsresponse", '"admin"'),
    # authentication
    Case("missing signature", unsigned_with_key, 401, "listusersresponse", SIGNATURE_FAILED),
    Case("bad signature", bad_signature, 401, "listusersresponse", SIGNATURE_FAILED),
    Case("expired", v3("createDomain", name="late", expires=iso(NOW - 60)), 401, "createdomainresponse",
         SIGNATURE_FAILED),
    Case("no credentials at all", plain({"command": "createDomain", "name": "anon", "response": "json"}, "POST"),
         401, "createdomainresponse", SIGNATURE_FAILED),
    Case("login command by GET", plain({"command": "login", "username": "admin", "password": "x",
                                        "response": "json"}), 405, None,
         "Please use HTTP POST to authenticate using this API"),
    Case("control characters echoed in XML", raw("POST", literal(b""), b"command=login&username=u%0B&password=x&"
                                                                         b"domain=%00%1B%7F", FORM),
         531, "loginresponse", "Unable to find the domain from the path /", xml=True),
    Case("control characters in a duplicated name, XML", raw("GET", literal(b"a%01%0Bb=1&A%01%0BB=2")), 431,
         "errorresponse", "was specified more than once", xml=True),
    Case("login without password", plain({"command": "login", "username": "admin", "response": "json"}, "POST"),
         431, "loginresponse", "Unable to execute API command login due to missing parameter password"),
]


def parse_envelope(answer: Answer, xml: bool) -> tuple[str, dict[str, Any]]:
    """(response name, fields) of a JSON or XML envelope."""
    if not xml:
        data = json.loads(answer.body)
        assert isinstance(data, dict) and len(data) == 1, data
        name, inner = next(iter(data.items()))
        return name, inner
    root = ElementTree.fromstring(answer.body)
    fields: dict[str, Any] = {child.tag: child.text for child in root}
    if "errorcode" in fields:
        fields["errorcode"] = int(fields["errorcode"])
    return root.tag, fields


class BadInputTests(SynchronousTestCase):
    """Each case of CASES gets its documented answer and leaves the database as it was."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(NOW)

    def check(self, case: Case) -> list[str]:
        """The ways `case` is answered wrongly (empty when right)."""
        problems = []
        before = snapshot(self.cloud)
        answer = case.send(self.cloud)
        after = snapshot(self.cloud)
        changed = sorted(t for t in before if before[t] != after.get(t))
        if changed:
            problems.append(f"stored state changed in {changed}")
        if answer.status != case.status:
            problems.append(f"status {answer.status}, expected {case.status}: {answer.body[:300]!r}")
        if answer.status == 500:
            problems.append("a 500")
        if b"Traceback" in answer.body or b'File "' in answer.body:
            problems.append("a traceback in the body")
        if any(ch < " " or ch == "\x7f" for value in answer.headers.values() for ch in value):
            problems.append(f"a control character in a header: {answer.headers}")
        if case.response_name is None:
            if answer.body.startswith((b"{", b"<?xml")):
                problems.append(f"an envelope where plain HTTP was expected: {answer.body[:200]!r}")
            if case.text and case.text.encode() not in answer.body:
                problems.append(f"body {answer.body[:200]!r} lacks {case.text!r}")
            return problems
        try:
            name, fields = parse_envelope(answer, case.xml)
        except Exception as exc:
            return [*problems, f"no {'XML' if case.xml else 'JSON'} envelope ({exc}): {answer.body[:200]!r}"]
        if name != case.response_name:
            problems.append(f"response name {name}, expected {case.response_name}")
        if case.status == 200:
            if case.text and case.text.encode() not in answer.body:
                problems.append(f"body {answer.body[:200]!r} lacks {case.text!r}")
            return problems
        if fields.get("errorcode") != answer.status:
            problems.append(f"errorcode {fields.get('errorcode')} is not the status {answer.status}")
        text = fields.get("errortext")
        if not text:
            problems.append("no errortext")
        elif case.text not in text:
            problems.append(f"errortext {text!r} lacks {case.text!r}")
        elif answer.headers.get("x-description") != re.sub("[\x00-\x1f\x7f\ufffd]", " ", text):
            problems.append(f"X-Description {answer.headers.get('x-description')!r} is not the errortext")
        if answer.status == 401 and "cserrorcode" in fields:
            problems.append("a cserrorcode on a servlet-level 401")
        return problems

    def test_cases(self) -> None:
        """Every case is answered as documented, with nothing stored changed."""
        failures = {}
        for case in CASES:
            problems = self.check(case)
            if problems:
                failures[case.name] = problems
        self.assertEqual(failures, {})

    def test_case_names_are_unique(self) -> None:
        """The table has no two cases of one name (a failure report names the case)."""
        names = [c.name for c in CASES]
        self.assertEqual(len(names), len(set(names)))

    def test_failed_calls_record_no_event(self) -> None:
        """A burst of every failing case leaves the events table exactly as it was (one snapshot
        over the whole table, beside the per-case comparison)."""
        before = snapshot(self.cloud)["events"]
        for case in CASES:
            if case.status != 200:
                case.send(self.cloud)
        self.assertEqual(snapshot(self.cloud)["events"], before)

    def test_every_answer_is_json_when_asked(self) -> None:
        """With response=json every envelope answer is JSON with the JSON content type."""
        for case in CASES:
            if case.response_name is None or case.xml:
                continue
            answer = case.send(self.cloud)
            self.assertEqual(answer.headers.get("content-type"), "application/json; charset=UTF-8", case.name)

    def test_v3_request_with_bad_input_changes_nothing(self) -> None:
        """The same refusals happen on the v3 path (the signature is checked before the parameters)."""
        before = snapshot(self.cloud)
        for params, status in [({"name": "x" * 256}, 431), ({"name": "a\tb"}, 431), ({}, 431),
                               ({"name": "ok", "parentdomainid": "nope"}, 431)]:
            r = self.cloud.request(v3_params(self.cloud, "createDomain", **params))
            self.assertEqual(r.status, status, r.body)
            self.assertEqual(list(r.json()), ["createdomainresponse"])
        self.assertEqual(snapshot(self.cloud), before)
