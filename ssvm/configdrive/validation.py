"""The config drive's errors and the typed field checks its JSON description is read with.

The checks are the control messages' own (`appliance.messages.base`), so the appliance and cloudd
read a drive description with the same code; a malformed description raises `DriveError`, which is
`MessageError` (`DriveTooLarge` when it would not fit on a drive).  Every check names the offending
field by its JSON path (`network.nics[0].mac`) and, for fields that are not secret, quotes the bad
value.
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
from appliance.messages.configdrive import MAX_DRIVE_SIZE, DriveTooLarge

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

DriveError = MessageError
"""The drive description is unusable; the message says why and is safe to show the caller."""
