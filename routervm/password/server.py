"""The guest password server on port 8080 of one guest interface (router.md §2).

The requester is the VM owning the (interface of the listener, MAC the neighbour table holds for
the source IP, source IP) triple (DESIGN.md §5, security.md 19–20):

* ``DomU_Request: send_my_password`` from the owner → its pending password (reading does not
  consume it), or ``saved_password`` when none is pending;
* ``DomU_Request: saved_password`` from the owner → the pending password is dropped (the
  acknowledgement) and the answer is ``saved_password``;
* a missing, unknown or repeated ``DomU_Request`` → ``bad_request`` from anyone, as the reference
  answers it (the answer depends on the header alone, so it tells nothing about ownership);
* a valid request from a source that owns no VM → ``saved_password``: it learns nothing and
  changes nothing.

The framing copies the reference (Python's ``BaseHTTPRequestHandler``, HTTP/1.0, router.md §2.3 and
§2.5) byte for byte where it matters: ``HTTP/1.0 200 OK``, then ``Server``, ``Date``,
``Content-type: text/plain`` and ``Server: CloudStack Password Server``, a blank line, the bare
token with no newline and no ``Content-Length``, and the connection is closed.  Only GET is
served (any path); POST gets ``403`` (the reference accepts it only from the router itself, which
never needs it here) and every other method, HEAD included, Python's ``501`` error page.
"""

from __future__ import annotations

import html
from http.server import BaseHTTPRequestHandler

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from routervm.http import REASONS, HTTPOptions, LeanHTTPFactory, OnInterface, Reply
from routervm.neighbours import NeighbourTable
from routervm.password.codec import HEADER_NAME, SERVER, Command, parse_request, response_for
from routervm.password.store import PasswordStore
from routervm.records import RecordIndex, VmRecord

__all__ = ["PASSWORD_HTTP", "PasswordFactory", "PasswordService"]

#: The reference's framing: an HTTP/1.0 server that closes after each answer.
PASSWORD_HTTP = HTTPOptions(
    version=b"HTTP/1.0", keep_alive=False, server=SERVER, date=True, content_length=False
)

_HEADER_KEY = HEADER_NAME.lower()
# The reference passes the name as "Content-type" to send_header, which writes it as given.
_WIRE_HEADERS = ((b"Content-type", b"text/plain"), (b"Server", SERVER))


def _error_page(status: int, message: str, explain: str) -> Reply:
    """Python's ``send_error`` page (``http.server``), as the reference sends it."""
    body = (
        BaseHTTPRequestHandler.error_message_format
        % {
            "code": status,
            "message": html.escape(message, quote=False),
            "explain": html.escape(explain, quote=False),
        }
    ).encode("utf-8", "replace")
    headers = (
        (b"Connection", b"close"),
        (b"Content-Type", b"text/html;charset=utf-8"),
        (b"Content-Length", b"%d" % len(body)),
    )
    return (status, headers, body)


class PasswordService:
    """Password answers for every guest interface, from one `RecordIndex` and `PasswordStore`."""

    log = Logger()

    def __init__(self, index: RecordIndex, neighbours: NeighbourTable, store: PasswordStore) -> None:
        self.index = index
        self.neighbours = neighbours
        self.store = store
        # uuid → fingerprint of the password last logged as served: each pending password is
        # logged once, not on every fetch a guest repeats (those are only counted: twistd's log
        # file takes every level, debug included).
        self._announced: dict[str, int] = {}
        #: Fetches of a pending password already logged as served.
        self.served_again = 0

    def __repr__(self) -> str:
        return f"<PasswordService {self.index!r} {self.store!r}>"

    def update(self, index: RecordIndex) -> None:
        """Identify requesters by ``index`` from now on."""
        self.index = index
        self._announced = {}

    def owner(self, interface: str, peer_ip: str) -> VmRecord | None:
        mac = self.neighbours.mac_for(interface, peer_ip)
        if mac is None:
            return None
        return self.index.lookup(interface, mac, peer_ip)

    def command(self, headers: dict[str, list[str]]) -> Command:
        """The command of a request whose header names are lower-cased (`routervm.http`)."""
        values = headers.get(_HEADER_KEY)
        if values is None or len(values) != 1:
            return Command.BAD_REQUEST
        return parse_request({HEADER_NAME: values[0]})

    def respond(self, interface: str, method: str, headers: dict[str, list[str]], peer_ip: str) -> Reply:
        if method != "GET":
            if method == "POST":
                return _error_page(
                    403, REASONS[403].decode(), "Request forbidden -- authorization will not help"
                )
            return _error_page(
                501, f"Unsupported method ({method!r})", "Server does not support this operation"
            )
        command = self.command(headers)
        if command is Command.BAD_REQUEST:
            return (200, _WIRE_HEADERS, response_for(command, None).body)
        record = self.owner(interface, peer_ip)
        if record is None:
            return (200, _WIRE_HEADERS, response_for(Command.SAVED_PASSWORD, None).body)
        password: str | None = None
        if command is Command.SEND_MY_PASSWORD:
            password = self.store.fetch(record.uuid)
            if password is not None:
                fingerprint = hash(password)
                if self._announced.get(record.uuid) != fingerprint:
                    self._announced[record.uuid] = fingerprint
                    self.log.info("password served to vm {uuid}", uuid=record.uuid)
                else:
                    self.served_again += 1
        elif command is Command.SAVED_PASSWORD:
            self._announced.pop(record.uuid, None)
            self.store.acknowledge(record.uuid)
        return (200, _WIRE_HEADERS, response_for(command, password).body)

    def respond_on(
        self, interface: str, method: str, path: str, headers: dict[str, list[str]], peer_ip: str
    ) -> Reply:
        """`routervm.http.GuestService`: the answer on one guest interface (the path is ignored,
        as by the reference)."""
        return self.respond(interface, method, headers, peer_ip)


class PasswordFactory(LeanHTTPFactory):
    """The port-8080 listener factory for one guest interface."""

    def __init__(
        self,
        service: PasswordService,
        interface: str,
        clock: IReactorTime,
        options: HTTPOptions = PASSWORD_HTTP,
    ) -> None:
        super().__init__(OnInterface(service, interface), clock, options)
        self.service = service
        self.interface = interface
