"""Pending VM passwords, keyed by VM uuid (router.md §2.2–2.4, DESIGN.md §5, security.md 19).

A password is served until the guest acknowledges it, replaced at once by a newer one, and dropped
after ``ttl_seconds`` on the injected clock.  It never reaches disk in clear: `PasswordStore.sealed`
encrypts the pending set with AES-GCM under a caller-held key, and `PasswordStore.unseal` restores a
store from those bytes.  The caller writes the sealed bytes atomically (temp file, fsync, rename);
``on_change`` tells it when the pending set changed, expiry included, so the file can follow.

Passwords never appear in ``repr``, log events or exception texts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["PasswordStore", "SealError"]

_MAGIC = b"RVPW\x01"
_NONCE_BYTES = 12


class SealError(ValueError):
    """Sealed password data could not be opened: wrong key, damaged or not ours."""


@dataclass
class _Pending:
    password: str = field(repr=False)
    expires: float
    call: IDelayedCall = field(repr=False)


class PasswordStore:
    """In-memory pending passwords with TTL expiry on ``clock``."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        ttl_seconds: float,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._clock = clock
        self._ttl = float(ttl_seconds)
        self._on_change = on_change
        self._pending: dict[str, _Pending] = {}

    def __repr__(self) -> str:
        return f"<PasswordStore pending={len(self._pending)} ttl={self._ttl:g}s>"

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._pending

    def set(self, uuid: str, password: str) -> None:
        """Make ``password`` the pending password of VM ``uuid``, replacing any older one and
        restarting its TTL."""
        if not isinstance(password, str) or not password:
            raise ValueError("password must be a non-empty string")
        self._put(uuid, password, self._ttl)
        self.log.info("password pending for vm {uuid}", uuid=uuid)
        self._changed()

    def fetch(self, uuid: str) -> str | None:
        """The pending password of VM ``uuid``, or ``None``.  Reading does not consume it."""
        entry = self._pending.get(uuid)
        if entry is None:
            return None
        if self._clock.seconds() >= entry.expires:
            # The delayed call has not run yet; the TTL is still the TTL.
            self._expire(uuid)
            return None
        return entry.password

    def acknowledge(self, uuid: str) -> bool:
        """Drop the pending password of VM ``uuid`` (the guest's ``saved_password``).  Returns
        whether there was one."""
        if not self._remove(uuid):
            return False
        self.log.info("password acknowledged by vm {uuid}", uuid=uuid)
        self._changed()
        return True

    def discard_except(self, keep: Container[str]) -> list[str]:
        """Drop the pending passwords of every VM not in `keep` (VMs the router no longer serves);
        return their uuids. Not an acknowledgement: nothing is logged as one."""
        gone = [uuid for uuid in self._pending if uuid not in keep]
        for uuid in gone:
            self._remove(uuid)
        if gone:
            self._changed()
        return gone

    def clear(self) -> None:
        """Drop every pending password and cancel their timers (for example on service stop)."""
        if not self._pending:
            return
        for uuid in list(self._pending):
            self._remove(uuid)
        self._changed()

    def sealed(self, key: bytes) -> bytes:
        """The pending passwords (with their absolute expiry times) encrypted with AES-GCM under
        ``key`` (16, 24 or 32 bytes), in a form `unseal` reads back."""
        plain = json.dumps(
            {
                "passwords": [
                    {"uuid": uuid, "password": entry.password, "expires": entry.expires}
                    for uuid, entry in self._pending.items()
                ]
            },
            separators=(",", ":"),
        ).encode("utf-8")
        nonce = os.urandom(_NONCE_BYTES)
        return _MAGIC + nonce + AESGCM(key).encrypt(nonce, plain, _MAGIC)

    @classmethod
    def unseal(
        cls,
        data: bytes,
        key: bytes,
        *,
        clock: IReactorTime,
        ttl_seconds: float,
        on_change: Callable[[], None] | None = None,
    ) -> PasswordStore:
        """A store holding the passwords sealed in ``data`` that have not expired by
        ``clock.seconds()``.  Raises `SealError` for a wrong key or damaged data."""
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _NONCE_BYTES:
            raise SealError("not sealed password data")
        nonce = data[len(_MAGIC) : len(_MAGIC) + _NONCE_BYTES]
        try:
            plain = AESGCM(key).decrypt(nonce, data[len(_MAGIC) + _NONCE_BYTES :], _MAGIC)
        except InvalidTag:
            raise SealError("sealed password data does not open with this key") from None
        entries = _parse_entries(plain)
        store = cls(clock, ttl_seconds, on_change=on_change)
        now = clock.seconds()
        for uuid, password, expires in entries:
            remaining = expires - now
            if remaining > 0:
                # A clock that went back must not stretch the TTL.
                store._put(uuid, password, min(remaining, store._ttl))
        return store

    @staticmethod
    def generate_key() -> bytes:
        """A fresh random 256-bit sealing key."""
        return AESGCM.generate_key(bit_length=256)

    def _put(self, uuid: str, password: str, lifetime: float) -> None:
        self._remove(uuid)
        call = self._clock.callLater(lifetime, self._expire, uuid)
        self._pending[uuid] = _Pending(password, self._clock.seconds() + lifetime, call)

    def _remove(self, uuid: str) -> bool:
        entry = self._pending.pop(uuid, None)
        if entry is None:
            return False
        if entry.call.active():
            entry.call.cancel()
        return True

    def _expire(self, uuid: str) -> None:
        if self._remove(uuid):
            self.log.info("pending password of vm {uuid} expired", uuid=uuid)
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


def _parse_entries(plain: bytes) -> list[tuple[str, str, float]]:
    try:
        doc = json.loads(plain)
        items = doc["passwords"]
        entries = [(item["uuid"], item["password"], item["expires"]) for item in items]
    except (ValueError, KeyError, TypeError):
        raise SealError("sealed password data is damaged") from None
    for uuid, password, expires in entries:
        if (
            not isinstance(uuid, str)
            or not isinstance(password, str)
            or not password
            or isinstance(expires, bool)
            or not isinstance(expires, int | float)
        ):
            raise SealError("sealed password data is damaged")
    return [(uuid, password, float(expires)) for uuid, password, expires in entries]
