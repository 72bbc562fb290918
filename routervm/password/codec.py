"""Sans-IO wire format of the guest password server (router.md §2.2–2.5).

A guest sends ``GET /`` with the header ``DomU_Request``; the header name is matched
case-insensitively and the value exactly (case-sensitive).  `parse_request` turns the headers into a
`Command`; `response_for` gives the status, headers and body to send.  The reply is always
``200 OK``, ``text/plain``, and the body is a bare token with no trailing newline:

* ``send_my_password`` → the pending password, or ``saved_password`` when there is none (also for
  an unknown or non-owning requester: the caller passes ``None`` then);
* ``saved_password`` (the acknowledgement) → ``saved_password``;
* a missing, duplicated or unknown value → ``bad_request``.

Choosing the password (owner lookup by interface, MAC and IP) and deleting it on acknowledgement
are the caller's job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "BAD_REQUEST",
    "HEADER_NAME",
    "NO_PASSWORD",
    "SERVER",
    "Command",
    "Response",
    "parse_request",
    "response_for",
]

HEADER_NAME = "DomU_Request"
#: The body meaning "no password for you" (and the acknowledgement reply).
NO_PASSWORD = b"saved_password"
BAD_REQUEST = b"bad_request"
#: The reference's ``Server`` header value.
SERVER = b"CloudStack Password Server"

_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Type", b"text/plain"),
    (b"Server", SERVER),
)


class Command(enum.Enum):
    """What a guest asked for."""

    SEND_MY_PASSWORD = "send_my_password"
    SAVED_PASSWORD = "saved_password"
    BAD_REQUEST = "bad_request"


class Response(NamedTuple):
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def parse_request(headers: Mapping[str, str]) -> Command:
    """The command carried by a request's headers.

    More than one ``DomU_Request`` header (differently cased names in ``headers``) is ambiguous
    and counts as a bad request.
    """
    values = [value for name, value in headers.items() if name.lower() == "domu_request"]
    if len(values) != 1:
        return Command.BAD_REQUEST
    value = values[0]
    if value == Command.SEND_MY_PASSWORD.value:
        return Command.SEND_MY_PASSWORD
    if value == Command.SAVED_PASSWORD.value:
        return Command.SAVED_PASSWORD
    return Command.BAD_REQUEST


def response_for(command: Command, password: str | None) -> Response:
    """The reply to ``command``; ``password`` is the requester's pending password or ``None``
    (no pending password, unknown or non-owning requester).  It is used only for
    ``SEND_MY_PASSWORD``; an empty password counts as none."""
    if command is Command.SEND_MY_PASSWORD:
        body = password.encode("utf-8") if password else NO_PASSWORD
    elif command is Command.SAVED_PASSWORD:
        body = NO_PASSWORD
    else:
        body = BAD_REQUEST
    return Response(200, _HEADERS, body)
