"""Download URLs: parsing, the scheme rule, credentials kept apart, and the forms safe to show (pure).

A `DownloadURL` holds the request target without credentials (`for_request`, ASCII bytes for
`Agent`), the credentials separately (`userinfo`, used for preemptive basic auth on the first
origin only), `for_status` (the URL with userinfo stripped, as the status reports it) and
`for_log` (scheme, host, port and path only: a query string may carry a token).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from ssvm.download.errors import URLRefused

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters kept as they are in a path or query; everything else non-ASCII is percent-encoded.
_SAFE = "/%:@!$&'()*+,;=-._~?"
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class DownloadURL:
    scheme: str
    host: str  # lower case, IDNA-encoded, IPv6 without brackets
    port: int
    target: str  # path plus "?query", percent-encoded ASCII, never empty
    userinfo: tuple[str, str] | None = None

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def for_status(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"

    @property
    def for_request(self) -> bytes:
        return self.for_status.encode("ascii")

    @property
    def for_log(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target.split('?', 1)[0]}"

    @property
    def path_name(self) -> str:
        """The last path segment, unquoted (for display only)."""
        return urllib.parse.unquote(self.target.split("?", 1)[0].rsplit("/", 1)[-1])

    def basic_auth(self) -> bytes | None:
        if self.userinfo is None:
            return None
        user, password = self.userinfo
        return b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    def join(self, location: str) -> DownloadURL:
        """The absolute URL a `Location` header names, relative to this one, checked by `parse_url`."""
        base = self.for_status
        return parse_url(urllib.parse.urljoin(base, location.strip()))


def _encode_host(host: str) -> str:
    if "%" in host:
        raise URLRefused("URL host must not carry an IPv6 zone")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise URLRefused(f"URL host {host!r} is not a valid host name") from None
    if not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?", encoded) or ".." in encoded:
        raise URLRefused(f"URL host {host!r} is not a valid host name")
    return encoded.rstrip(".")


def parse_url(text: str) -> DownloadURL:
    """Check and split a download URL; raise `URLRefused` with the reason."""
    if not isinstance(text, str) or not text:
        raise URLRefused("URL is empty")
    if len(text) > MAX_URL_LENGTH:
        raise URLRefused(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN.search(text):
        raise URLRefused("URL contains white space, a backslash or a control character")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise URLRefused(f"URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme or "none"
        raise URLRefused(f"URL scheme {shown!r} is not allowed (only http and https)")
    host = parts.hostname
    if not host:
        raise URLRefused("URL has no host")
    userinfo = None
    if parts.username is not None or parts.password is not None:
        userinfo = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
    path = parts.path or "/"
    target = path + (f"?{parts.query}" if parts.query else "")
    target = urllib.parse.quote(target, safe=_SAFE)
    if port == 0:
        raise URLRefused("URL port 0 is not allowed")
    return DownloadURL(scheme, _encode_host(host), port or _DEFAULT_PORTS[scheme], target, userinfo)
