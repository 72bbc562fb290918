"""The router's per-VM record and the guest-identity index: the control message model
(`appliance.messages.records`), which cloudd validates with the same code before it sends."""

from __future__ import annotations

from appliance.messages.records import (
    MAX_USER_DATA_BYTES,
    RESERVED_KEYS,
    IdentityKey,
    Nic,
    RecordError,
    RecordIndex,
    VmRecord,
    decode_user_data,
    identity_key,
)

__all__ = [
    "MAX_USER_DATA_BYTES",
    "RESERVED_KEYS",
    "IdentityKey",
    "Nic",
    "RecordError",
    "RecordIndex",
    "VmRecord",
    "decode_user_data",
    "identity_key",
]
