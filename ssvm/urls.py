"""Signed, expiring URLs for stored images.

A URL names a file by its path inside the image store and carries `expires` (epoch seconds) and
`signature`, the hex HMAC-SHA256 of the path and the expiry under a key only this appliance holds.
The check is constant-time; an expired, altered or foreign URL is simply refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from urllib.parse import quote

from twisted.internet.interfaces import IReactorTime

from appliance.files import atomic_write

KEY_BYTES = 32
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
SERVED_ROOTS = ("template", "volumes")


class UrlError(ValueError):
    """A path or lifetime that cannot be signed."""


def load_or_create_key(path: str) -> bytes:
    """The signing key stored at `path` (0600), created on first use."""
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= KEY_BYTES:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(KEY_BYTES)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, key, 0o600)
    return key


def check_store_path(path: str) -> str:
    """`path` if it is a plain relative path under one of the served roots, else UrlError."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] not in SERVED_ROOTS or len(path) > 1024:
        raise UrlError(f"only files under {', '.join(r + '/' for r in SERVED_ROOTS)} can be served")
    for part in parts:
        if not _SEGMENT.match(part) or part in (".", ".."):
            raise UrlError("the path must be relative, without empty, '.' or '..' parts")
    return path


class UrlSigner:
    def __init__(self, key: bytes, clock: IReactorTime, max_ttl: int = 7 * 86400) -> None:
        self._key = key
        self._clock = clock
        self.max_ttl = max_ttl

    def _mac(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, ttl: int) -> tuple[str, int]:
        """The query-carrying relative URL for `path`, valid `ttl` seconds, and its expiry."""
        check_store_path(path)
        if not 1 <= ttl <= self.max_ttl:
            raise UrlError(f"ttl must be between 1 and {self.max_ttl} seconds")
        expires = int(self._clock.seconds()) + ttl
        return f"{quote(path)}?expires={expires}&signature={self._mac(path, expires)}", expires

    def verify(self, path: str, expires: str, signature: str) -> bool:
        """True when `signature` is this appliance's for `path` and `expires` has not passed."""
        if not expires.isdigit() or len(expires) > 12:
            return False
        good = hmac.compare_digest(self._mac(path, int(expires)).encode(), signature.encode("ascii", "replace"))
        return good and int(expires) > self._clock.seconds()
