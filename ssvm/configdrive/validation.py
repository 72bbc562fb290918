"""The config drive's errors and the typed field checks its JSON description is read with.

The checks are the control messages' own (`appliance.messages.base`), so the appliance and cloudd
read a drive description with the same code; a malformed description raises `DriveError`, which is
`MessageError`.  Every check names the offending field by its JSON path (`network.nics[0].mac`)
and, for fields that are not secret, quotes the bad value.
"""

from __future__ import annotations

from appliance.messages.base import (
    MessageError,
    expect_bool,
    expect_int,
    expect_list,
    expect_object,
    expect_str,
    expect_true,
    fail,
    is_utf8,
    quote,
    type_name,
)

__all__ = [
    "MAX_DRIVE_SIZE",
    "DriveError",
    "DriveTooLarge",
    "expect_bool",
    "expect_int",
    "expect_list",
    "expect_object",
    "expect_str",
    "expect_true",
    "fail",
    "is_utf8",
    "quote",
    "type_name",
]

MAX_DRIVE_SIZE = 64 * 1024 * 1024
"""The largest ISO a config drive may be (CloudStack's limit)."""

DriveError = MessageError
"""The drive description is unusable; the message says why and is safe to show the caller."""


class DriveTooLarge(DriveError):
    """The drive would exceed `MAX_DRIVE_SIZE`."""
