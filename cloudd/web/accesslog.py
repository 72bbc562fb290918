"""The access log line of the API site: Twisted's combined log format without parameter values.

A query-API request carries its secrets in the query string (`password` on a GET login or
createAccount, `signature`, `sessionkey`, `usersecretkey`, ...), and Twisted's default access log
writes the full request URI to the twistd log. Here every parameter value except `command` and
`response` is replaced by `***` (names are kept, so an operator still sees what was sent), and the
`Referer` keeps only its path.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IAccessLogFormatter
from zope.interface import provider

__all__ = ["access_log_line", "redact_uri"]

_SHOWN = frozenset({b"command", b"response"})


def redact_uri(uri: bytes) -> bytes:
    """*uri* with the value of every query parameter other than `command`/`response` hidden."""
    path, sep, query = uri.partition(b"?")
    if not sep:
        return uri
    pieces = []
    for piece in query.split(b"&"):
        name, eq, _ = piece.partition(b"=")
        pieces.append(piece if not eq or name.lower() in _SHOWN else name + b"=***")
    return path + b"?" + b"&".join(pieces)


class _Redacted:
    """A read-only view of a request for the log formatter, with the secrets left out."""

    def __init__(self, request: Any) -> None:
        self._request = request

    @property
    def uri(self) -> bytes:
        return redact_uri(self._request.uri)

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802 (Twisted API)
        value: bytes | None = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            return value.split(b"?", 1)[0].split(b"#", 1)[0]
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


@provider(IAccessLogFormatter)
def access_log_line(timestamp: str, request: Any) -> str:
    """The combined-log-format line for *request*, with parameter values hidden."""
    line: str = combinedLogFormatter(timestamp, _Redacted(request))
    return line
