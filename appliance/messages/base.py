"""The one error of every control message and the typed field checks the messages are read with.

Every check names the offending field by its JSON path (`network.nics[0].mac`) and, for fields that
are not secret, quotes the bad value, so the sender can fix the message from the error alone.
Secret fields (passwords, user data, vendor data) are checked by callers that never pass their value
into a message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, NoReturn, Protocol, Self

__all__ = [
    "Message",
    "MessageError",
    "expect_bool",
    "expect_int",
    "expect_list",
    "expect_object",
    "expect_optional_int",
    "expect_optional_str",
    "expect_str",
    "expect_true",
    "fail",
    "is_utf8",
    "quote",
    "type_name",
]


class MessageError(ValueError):
    """A control message is malformed.

    `path` is the JSON path of the offending field (empty for the message as a whole) and `text`
    says what is wrong; `str()` is ``"<path>: <text>"`` (or `separator` between them: the download
    request's errors read ``"max_size must be ..."``).  Messages that already name their field
    in the text (the router's record and state checks) are raised with the text alone."""

    def __init__(self, path: str, text: str | None = None, *, separator: str = ": ") -> None:
        if text is None:
            path, text = "", path
        super().__init__(f"{path}{separator}{text}" if path else text)
        self.path = path
        self.text = text


class Message(Protocol):
    """What every control message model offers: a validating reader and the JSON it reads."""

    @classmethod
    def from_json(cls, obj: Any) -> Self: ...

    def to_json(self) -> dict[str, Any]: ...


def fail(where: str, problem: str) -> NoReturn:
    raise MessageError(where, problem)


def quote(value: object, limit: int = 80) -> str:
    """`value` for an error message: repr'd and cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def expect_object(value: object, where: str, allowed: Collection[str],
                  required: Collection[str] = ()) -> Mapping[str, object]:
    """`value` as a JSON object with only `allowed` keys and all `required` ones."""
    if not isinstance(value, dict):
        fail(where, f"must be an object, not {type_name(value)}")
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}; "
                    f"allowed: {', '.join(sorted(allowed))}")
    missing = [key for key in required if key not in value]
    if missing:
        fail(where, f"missing required key(s) {', '.join(map(repr, missing))}")
    return value


def expect_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        fail(where, f"must be a string, not {type_name(value)}")
    return value


def expect_optional_str(value: object, where: str) -> str | None:
    return None if value is None else expect_str(value, where)


def expect_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        fail(where, f"must be true or false, not {type_name(value)}")
    return value


def expect_int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(where, f"must be an integer, not {type_name(value)}")
    if not low <= value <= high:
        fail(where, f"must be between {low} and {high}, not {value}")
    return value


def expect_optional_int(value: object, where: str, low: int, high: int) -> int | None:
    return None if value is None else expect_int(value, where, low, high)


def expect_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        fail(where, f"must be a list, not {type_name(value)}")
    return value


def expect_true(value: object, where: str) -> None:
    """A `{"dhcp": true}`-style flag: only `true` means something."""
    if value is not True:
        fail(where, "must be true (leave the family out to configure nothing)")


def is_utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (JSON may smuggle in lone surrogates, which do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
