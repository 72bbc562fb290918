"""Password hashing (PBKDF2-SHA256, salted) and random tokens. Blocking: call off the reactor thread."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 100_000


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iters, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256" or not password:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt_b64), int(iters))
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


# A stored hash that no password matches (the system user cannot log in).
UNUSABLE = "!"


def new_api_key() -> str:
    """86 URL-safe characters, the shape of CloudStack's keys."""
    return secrets.token_urlsafe(64)


def new_session_key() -> str:
    return secrets.token_urlsafe(20)


def new_password() -> str:
    return secrets.token_urlsafe(18)
