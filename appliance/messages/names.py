"""Network device names as the kernel accepts them, checked the same way wherever the router's
state, VM records or rules name an interface."""

from __future__ import annotations

import re
from typing import TypeGuard

__all__ = ["is_interface_name"]

# IFNAMSIZ is 16 including the terminating NUL; no "/", whitespace or ":" (alias labels).
_INTERFACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")


def is_interface_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _INTERFACE_NAME.fullmatch(value) is not None
