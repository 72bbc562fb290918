"""Checksums in CloudStack's `{ALG}hex` syntax (pure): the download request's `checksum` and the
storage appliance's check of what it fetched (`ssvm.download.checksum` re-exports it).

`parse_checksum("{SHA-256}ab…")` gives a `Checksum`; no prefix means MD5 (spec §11.1). Algorithm
names are matched case-insensitively and with or without the dash (`SHA256`, `sha-256`). The hex
part must have the algorithm's exact length. `matches` compares lower-case hex in constant time.
`format_checksum` renders the computed value as `{ALG}hex` with the canonical name.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

# Canonical name -> hashlib name.
ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-224": "sha224",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
DEFAULT_ALGORITHM = "MD5"  # for a checksum given without a prefix
UNREQUESTED_ALGORITHM = "SHA-256"  # computed when the request carries no checksum
_ALIASES = {name.replace("-", ""): name for name in ALGORITHMS}
_SYNTAX = re.compile(r"(?:\{([A-Za-z0-9-]{1,16})\})?([0-9A-Fa-f]+)")


@dataclass(frozen=True)
class Checksum:
    algorithm: str  # canonical, e.g. "SHA-256"
    hexdigest: str  # lower case

    def __str__(self) -> str:
        return format_checksum(self.algorithm, self.hexdigest)


def canonical_algorithm(name: str) -> str:
    """`sha256`, `SHA-256`, `Sha-256` → `SHA-256`; `ValueError` for anything else."""
    key = name.strip().upper().replace("-", "")
    try:
        return _ALIASES[key]
    except KeyError:
        raise ValueError(f"checksum algorithm {name!r} is not one of {', '.join(ALGORITHMS)}") from None


def new_hasher(algorithm: str) -> hashlib._Hash:
    return hashlib.new(ALGORITHMS[canonical_algorithm(algorithm)])


def parse_checksum(text: str) -> Checksum:
    """Parse `{ALG}hex` (or bare hex = MD5); `ValueError` with the reason."""
    match = _SYNTAX.fullmatch(text.strip())
    if match is None:
        raise ValueError("checksum must be {ALGORITHM}hex, e.g. {SHA-256}9f86d0…")
    algorithm = canonical_algorithm(match.group(1)) if match.group(1) else DEFAULT_ALGORITHM
    hexdigest = match.group(2).lower()
    expected = hashlib.new(ALGORITHMS[algorithm]).digest_size * 2
    if len(hexdigest) != expected:
        raise ValueError(f"{algorithm} checksum must have {expected} hex digits, not {len(hexdigest)}")
    return Checksum(algorithm, hexdigest)


def format_checksum(algorithm: str, hexdigest: str) -> str:
    return f"{{{canonical_algorithm(algorithm)}}}{hexdigest.lower()}"


def matches(expected: Checksum, computed_hex: str) -> bool:
    """Constant-time comparison of lower-case hex digests."""
    return hmac.compare_digest(expected.hexdigest.lower().encode("ascii"),
                               computed_hex.lower().encode("ascii"))
