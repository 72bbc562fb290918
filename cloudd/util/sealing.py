"""Secrets at rest: API secret keys sealed with AES-GCM, session keys kept only as keyed hashes.

Both rest on one 32-byte master key, which the composition root reads (a 0600 file in the base
directory, created at first start, or a key the operator gives when several servers share one
database) and hands down. Two sub-keys are derived from it with HKDF-SHA256, one per use.

A sealed value is `v1:<key id>:<base64url(nonce | ciphertext | tag)>`. The version prefix and the
key id (a public fingerprint of the master key) leave room for a new format or a key rotation, and
let a server that holds another key say so at start instead of answering 401 to everyone. The
associated data binds a ciphertext to its row (the user's uuid), so a sealed value copied onto
another user's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
VERSION = "v1"
NONCE_BYTES = 12


class SecretsKeyError(ValueError):
    """The master key is missing, malformed, or not the one the database's secrets were sealed with."""


class SealError(ValueError):
    """A sealed value that does not open with this key for this row (or is not sealed at all)."""


def parse_key(text: str, source: str) -> bytes:
    """The master key from its text form: standard base64 of 32 bytes (whitespace around is ignored)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(f"{source} does not hold a secrets key: expected the base64 form of "
                              f"{KEY_BYTES} random bytes (for example `openssl rand -base64 32`)")
    return key


def new_key_text() -> str:
    """A fresh master key in the form `parse_key` reads, with a final newline."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n"


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"cloudd " + purpose).derive(key)


def key_id_of(sealed: str) -> str | None:
    """The key id a sealed value names, or None when the value is not in a known sealed form."""
    parts = sealed.split(":", 2)
    if len(parts) != 3 or parts[0] != VERSION:
        return None
    return parts[1]


class Sealer:
    """Seals and opens secrets under one master key; `source` says where the key came from (for messages)."""

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"{source}: a secrets key has {KEY_BYTES} bytes")
        self.source = source
        self.key_id = _derive(key, b"key id").hex()[:8]
        self._aead = AESGCM(_derive(key, b"secret keys v1"))
        self._session_mac = _derive(key, b"session keys v1")

    @classmethod
    def ephemeral(cls) -> Sealer:
        """A random key that lives as long as this process (in-memory databases and tests)."""
        return cls(os.urandom(KEY_BYTES), "a key made for this process only")

    # --- API secret keys ------------------------------------------------------------------------

    def seal(self, secret: str, bound_to: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        body = nonce + self._aead.encrypt(nonce, secret.encode("utf-8"), _aad(bound_to))
        return f"{VERSION}:{self.key_id}:{base64.urlsafe_b64encode(body).decode()}"

    def open(self, sealed: str, bound_to: str) -> str:
        """The secret a `seal` with the same key and `bound_to` produced; SealError otherwise."""
        kid = key_id_of(sealed)
        if kid is None:
            raise SealError("the value is not sealed")
        if kid != self.key_id:
            raise SealError(f"the value was sealed under key {kid}, not this server's key {self.key_id}")
        try:
            body = base64.urlsafe_b64decode(sealed.split(":", 2)[2])
            return self._aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], _aad(bound_to)).decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag):
            raise SealError("the sealed value does not open with this key for this row") from None

    # --- session keys ---------------------------------------------------------------------------

    def session_hash(self, session_key: str) -> str:
        """The keyed hash (HMAC-SHA256, hex) stored in place of a session key."""
        return hmac.new(self._session_mac, session_key.encode("utf-8"), hashlib.sha256).hexdigest()

    def session_matches(self, stored_hash: str, presented: str) -> bool:
        """Whether a presented session key is the one whose hash is stored (constant-time)."""
        return hmac.compare_digest(self.session_hash(presented).encode(), stored_hash.encode())


def _aad(bound_to: str) -> bytes:
    return b"cloudd users.secret_key\0" + bound_to.encode("utf-8")
