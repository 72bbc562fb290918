"""The query API endpoint `/client/api`: one leaf resource over the command layer.

It parses a request (query string plus form body), chooses the authentication path (login and
logout, a session, or an API-key signature), and renders the command layer's answer as JSON or
XML with the matching HTTP status. It never touches SQL and never formats a parameter value into
a log event.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

import cloudd
from cloudd.api.auth import Authenticator
from cloudd.api.context import Caller
from cloudd.api.errors import (
    ApiError,
    bad_header,
    param_error,
    too_many_parameters,
    unauthorized,
    undecodable_parameter,
    unknown_command,
)
from cloudd.api.service import Answer, ApiService
from cloudd.db.base import NotFound
from cloudd.web.render import XML_CONTENT_TYPE, render_json, render_xml
from cloudd.web.wire import (
    DuplicateParameter,
    UndecodableParameter,
    count_pieces,
    first_control_char_param,
    first_undecodable_header,
    merge_params,
    param_ci,
    parse_cookies,
    parse_pairs,
    wants_json,
)

LOGIN_GET_TEXT = b"Please use HTTP POST to authenticate using this API"
SECURITY_HEADERS = (
    (b"X-Content-Type-Options", b"nosniff"),
    (b"X-XSS-Protection", b"1; mode=block"),
    (b"Content-Security-Policy", b"default-src 'none'; frame-ancestors 'none'"),
)


# Headers cloudd reads as text (besides the configured forwarded-for headers): a byte in them that
# is not UTF-8 gets a 400 before anything else happens. Other headers are never decoded.
HEADERS_READ = frozenset({b"content-type", b"cookie", b"host", b"origin", b"referer", b"sec-fetch-site"})


def _peer(request: Request) -> str:
    """The connected peer's address, for a log line (no forwarded-for header is believed here)."""
    return str(getattr(request.getClientAddress(), "host", "") or "-")


def _in_networks(address: str, networks: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for item in networks.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if ip in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def normalise_domain_path(value: str | None) -> str:
    if not value or value == "/":
        return "/"
    path = value.strip()
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return path


class ApiResource(Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, api: ApiService, auth: Authenticator,
                 integration_caller: Callable[[], Awaitable[Caller]] | None = None) -> None:
        super().__init__()
        self.api = api
        self.auth = auth
        self.integration_caller = integration_caller
        self._header_names: tuple[str | None, frozenset[bytes]] = (None, HEADERS_READ)

    # --- twisted.web entry points ---------------------------------------------------------------

    def render_GET(self, request: Request) -> int:  # noqa: N802 (Twisted API)
        d = Deferred.fromCoroutine(self._handle(request))
        d.addErrback(self._crashed, request)
        return NOT_DONE_YET

    render_POST = render_GET  # noqa: N815 (Twisted API)

    def render(self, request: Request) -> bytes | int:
        # Only GET and POST are API calls (spec §1.1); anything else gets a plain 405, as the
        # servlet container answers, without Twisted's deprecated HTML error page.
        if request.method not in (b"GET", b"POST", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, POST")
            request.setHeader(b"Content-Type", b"text/plain; charset=UTF-8")
            return b"Method Not Allowed"
        result: bytes | int = super().render(request)
        return result

    def _crashed(self, failure: Failure, request: Request) -> None:
        self.log.failure("unexpected error while answering an API request", failure)
        if not request.finished and not getattr(request, "_disconnected", False):
            err = ApiError(530, "Internal error executing command, please contact your system administrator", 4250)
            self._write(request, Answer("errorresponse", err.body(), 530), True)

    # --- request handling -----------------------------------------------------------------------

    def client_address(self, request: Request) -> str:
        peer = request.getClientAddress()
        host = getattr(peer, "host", "") or ""
        settings = self.api.settings
        names = [n.strip() for n in settings.str("proxy.header.names").split(",") if n.strip()]
        forwarded = next((",".join(v) for v in (request.requestHeaders.getRawHeaders(n) for n in names) if v),
                         None)
        if forwarded is None:
            return host
        cidr = settings.str("proxy.cidr")
        if settings.bool("proxy.header.verify") and _in_networks(host, cidr):
            # Walk from the nearest hop outwards, past every trusted proxy: the first other
            # address is the client. Entries further left were written by the client itself.
            client = host
            for item in reversed(forwarded.split(",")):
                try:
                    client = str(ipaddress.ip_address(item.strip()))
                except ValueError:
                    break
                if not _in_networks(client, cidr):
                    break
            return client
        self.log.warn("ignored a forwarded-for header from untrusted peer {peer}", peer=host)
        return host

    async def _handle(self, request: Request) -> None:
        method = request.method.decode("ascii", "replace")
        uri = request.uri
        query = uri.split(b"?", 1)[1] if b"?" in uri else b""
        body = b""
        if method == "POST" and self.integration_caller is None:
            ctype = (request.getHeader(b"content-type") or b"").lower()
            if not ctype or ctype.startswith(b"application/x-www-form-urlencoded"):
                body = request.content.read() if request.content is not None else b""
        # Refusals before anything is decoded, authenticated or counted by the rate limiter: they
        # cost a byte scan, and each writes one log line (never a value, which may be a secret).
        settings = self.api.settings
        header = first_undecodable_header(request.requestHeaders.getAllRawHeaders(), self._headers_read())
        if header is not None:
            self.log.warn("refused an API request from {peer}: its {header} header is not UTF-8",
                          peer=_peer(request), header=header)
            self._refuse(request, bad_header(header), wants_json(query, body))
            return
        limit = settings.int("api.request.parameters.max")
        if count_pieces(query, body) > limit:
            self.log.warn("refused an API request from {peer}: more than {limit} parameters",
                          peer=_peer(request), limit=limit)
            self._refuse(request, too_many_parameters(limit), wants_json(query, body))
            return
        try:
            params = merge_params(parse_pairs(query, strict=True), parse_pairs(body, strict=True))
        except DuplicateParameter as dup:
            self._refuse(request, param_error(f"Parameter {dup.name[:64]} was specified more than once"),
                         wants_json(query, body))
            return
        except UndecodableParameter as undecodable:
            self.log.warn("refused an API request from {peer}: a parameter {part} is not UTF-8",
                          peer=_peer(request), part="name" if undecodable.name is None else "value")
            self._refuse(request, undecodable_parameter(undecodable.name), wants_json(query, body))
            return
        as_json = (param_ci(params, "response") or "").lower() == "json"
        command = param_ci(params, "command")
        client = self.client_address(request)
        try:
            self.api.throttle_address(client)
            if command == "login":
                await self._login(request, method, params, client, as_json)
                return
            if command == "logout":
                await self._logout(request, as_json)
                return
            caller = await self._authenticate(request, params, command)
        except ApiError as err:
            self._write(request, self.api.error_answer(command, err), as_json)
            return
        assert command is not None
        bad = first_control_char_param(params)
        if bad is not None:
            refusal = param_error(f"Received value containing illegal ASCII non-printable characters for "
                                  f"parameter {bad[:64]}")
            self._write(request, self.api.error_answer(command, refusal), as_json)
            return
        answer = await self.api.dispatch(caller, command, params, method, client)
        self._write(request, answer, as_json)

    async def _authenticate(self, request: Request, params: dict[str, str], command: str | None) -> Caller:
        if self.integration_caller is not None:
            if not command:
                raise ApiError(400, "no command specified", None)
            return await self.integration_caller()
        cookies = parse_cookies(request.getHeader(b"cookie"))
        session_id = cookies.get("JSESSIONID")
        key_param = params.get("sessionkey")
        signed = param_ci(params, "apikey") is not None and param_ci(params, "signature") is not None
        if session_id and (key_param is not None or "sessionkey" in cookies or not signed):
            self._check_origin(request)
            caller = await self.auth.session_caller(session_id, key_param, cookies.get("sessionkey"))
            if not command:
                raise ApiError(400, "no command specified", None)
            return caller
        cmd = self.api.registry.get(command) if command else None
        if command and cmd is None:
            raise unknown_command(command)
        if cmd is None or cmd.authenticator or not signed:
            raise unauthorized()
        return await self.auth.verify_signed(params)

    def _check_origin(self, request: Request) -> None:
        # CSRF (CVE-2024-45693): the browser names the page a request comes from in Origin
        # ("null" for an opaque origin such as a sandboxed frame); a top-level GET navigation sends
        # no Origin, but Sec-Fetch-Site and usually a Referer.
        if not self.api.settings.bool("api.session.origin.check"):
            return
        host = (request.getHeader("host") or "").lower()
        origin = request.getHeader("origin")
        referer = request.getHeader("referer")
        if (request.getHeader("sec-fetch-site") or "").lower() == "cross-site" or (
                urlsplit(origin).netloc.lower() != host if origin
                else referer is not None and urlsplit(referer).netloc.lower() != host):
            raise ApiError(403, "The request's Origin does not match this server", 9999)

    async def _login(self, request: Request, method: str, params: dict[str, str], client: str,
                     as_json: bool) -> None:
        if method != "POST":
            request.setResponseCode(405)
            request.setHeader(b"Content-Type", b"text/plain; charset=UTF-8")
            request.write(LOGIN_GET_TEXT)
            request.finish()
            return
        username, password = param_ci(params, "username"), param_ci(params, "password")
        for name, value in (("username", username), ("password", password)):
            if value is None:
                raise param_error(f"Unable to execute API command login due to missing parameter {name}")
        assert username is not None and password is not None
        domain_id = param_ci(params, "domainid")
        db = self.api.db
        try:
            if domain_id:
                domain = await db.domains.get_by_uuid(domain_id)
            else:
                domain = await db.domains.get_by_path(normalise_domain_path(param_ci(params, "domain")))
        except NotFound:
            if domain_id:
                raise unauthorized("Invalid domain id entered, please enter a valid one") from None
            raise ApiError(531, f"Unable to find the domain from the path "
                                f"{normalise_domain_path(param_ci(params, 'domain'))[:255]}", None) from None
        login = await self.auth.login(username, password, domain, client)
        previous = parse_cookies(request.getHeader(b"cookie")).get("JSESSIONID")
        if previous:
            # a login replaces the session the client held before (spec §2.5)
            await db.sessions.delete(previous)
        user = login.caller.user
        fields: dict[str, Any] = {
            "username": user.username, "userid": user.uuid, "domainid": user.account.domain_uuid,
            "timeout": login.timeout, "account": user.account.name, "firstname": user.firstname,
            "lastname": user.lastname, "type": str(user.account.account_type), "registered": "false",
            "sessionkey": login.session_key, "is2faenabled": "false", "is2faverified": "true",
            "issuerfor2fa": "cloudd",
        }
        if user.timezone:
            fields["timezone"] = user.timezone
            fields["timezoneoffset"] = "0.0"
        if login.caller.is_root_admin:
            fields["managementserverid"] = self.api.management_server_uuid
        settings = self.api.settings
        attrs = "; Path=/client; HttpOnly; SameSite=" + settings.str("api.sessionkey.cookie.samesite")
        if settings.bool("enable.secure.session.cookie"):
            attrs += "; Secure"
        request.responseHeaders.addRawHeader(b"Set-Cookie", f"JSESSIONID={login.session_id}{attrs}".encode())
        request.responseHeaders.addRawHeader(b"Set-Cookie", f"sessionkey={login.session_key}{attrs}".encode())
        self._write(request, Answer("loginresponse", fields), as_json)

    async def _logout(self, request: Request, as_json: bool) -> None:
        cookies = parse_cookies(request.getHeader(b"cookie"))
        await self.auth.logout(cookies.get("JSESSIONID"))
        for name in cookies:
            request.responseHeaders.addRawHeader(
                b"Set-Cookie", f"{name}=; Path=/client; Max-Age=0; HttpOnly".encode("utf-8", "replace"))
        self._write(request, Answer("logoutresponse", {"description": "success"}), as_json)

    def _headers_read(self) -> frozenset[bytes]:
        """The (lower-case) names of the headers cloudd reads, which must be UTF-8: a fixed set plus
        the configured forwarded-for headers (cached while the setting keeps its value)."""
        proxy_names = self.api.settings.str("proxy.header.names")
        if self._header_names[0] != proxy_names:
            extra = {n.strip().lower().encode("latin-1", "replace") for n in proxy_names.split(",") if n.strip()}
            self._header_names = (proxy_names, HEADERS_READ | extra)
        return self._header_names[1]

    # --- output ---------------------------------------------------------------------------------

    def _refuse(self, request: Request, err: ApiError, as_json: bool) -> None:
        """Answer a request refused before its command is known: the `errorresponse` envelope."""
        self._write(request, Answer("errorresponse", err.body(), err.code), as_json)

    def _write(self, request: Request, answer: Answer, as_json: bool) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        headers, data = encode_answer(answer, as_json, self.api.settings.str("json.content.type").encode())
        request.setResponseCode(answer.status)
        for name, value in headers:
            request.setHeader(name, value)
        request.write(data)
        request.finish()


def encode_answer(answer: Answer, as_json: bool, json_content_type: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The response headers and body of `answer` in the JSON or XML envelope (spec §3.1)."""
    if as_json:
        data = render_json(answer.response_name, answer.body)
        ctype = json_content_type
    else:
        data = render_xml(answer.response_name, answer.body, cloudd.CLOUDSTACK_VERSION)
        ctype = XML_CONTENT_TYPE
    headers = [(b"Content-Type", ctype), *SECURITY_HEADERS]
    if answer.status != 200:
        text = str(answer.body.get("errortext", ""))
        # a header value carries no control characters (an error text may echo some)
        printable = "".join(" " if ch < " " or ch == "\x7f" else ch for ch in text)
        headers.append((b"X-Description", printable.encode()[:1024]))
    if answer.retry_after is not None:
        headers.append((b"Retry-After", str(max(1, math.ceil(answer.retry_after))).encode()))
    headers.append((b"Content-Length", str(len(data)).encode()))
    return headers, data
