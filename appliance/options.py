"""What an appliance's `twistd` options load: its control-channel files and its settings file, each
failing as a usage error that says what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from twisted.python import usage

from appliance.tls import TlsMaterial, TlsMaterialError

T = TypeVar("T")


def load_tls(directory: str) -> TlsMaterial:
    try:
        return TlsMaterial.from_directory(directory)
    except TlsMaterialError as exc:
        raise usage.UsageError(f"{exc} (issue the appliance's files with `cloudd appliance-cert`)") from None


def load_settings(path: str | None, parse: Callable[[str], T], default: T,
                  error: type[Exception]) -> T:
    """`parse` of the file at `path` (`default` without one); unreadable or invalid → UsageError."""
    if not path:
        return default
    try:
        with open(path) as f:
            return parse(f.read())
    except OSError as exc:
        raise usage.UsageError(f"cannot read {path}: {exc.strerror}") from None
    except error as exc:
        raise usage.UsageError(str(exc)) from None
