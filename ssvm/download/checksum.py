"""Checksums in CloudStack's `{ALG}hex` syntax: the control messages' module
(`appliance.messages.checksum`), re-exported, so a request's checksum is read by the same code in
cloudd and here."""

from __future__ import annotations

from appliance.messages.checksum import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    UNREQUESTED_ALGORITHM,
    Checksum,
    canonical_algorithm,
    format_checksum,
    matches,
    new_hasher,
    parse_checksum,
)

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "UNREQUESTED_ALGORITHM",
    "Checksum",
    "canonical_algorithm",
    "format_checksum",
    "matches",
    "new_hasher",
    "parse_checksum",
]
