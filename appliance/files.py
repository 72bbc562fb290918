"""Atomic replacement of files: a new sibling file, written and fsynced, renamed over the old one.

Readers see either the old or the new content, never a torn file, and a crash leaves at most a
stray temporary file (named `.<name>.<random>.tmp`) that `remove_stale_temporaries` clears.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

TEMPORARY_SUFFIX = ".tmp"


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o600, sync_directory: bool = True) -> None:
    """Replace `path` with `data`: write a temporary sibling with `mode`, fsync it and rename it over
    `path`. With `sync_directory` the directory is fsynced too, so the rename itself survives a
    crash; without it a crash may bring back the previous complete file, never a torn one."""
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    if sync_directory:
        _fsync_directory(directory)


def atomic_write_json(path: str, value: Any, mode: int = 0o600) -> None:
    """`atomic_write` of `value` as compact, key-sorted UTF-8 JSON."""
    atomic_write(path, json.dumps(value, sort_keys=True, separators=(",", ":")).encode(), mode)


def remove_stale_temporaries(directory: str) -> list[str]:
    """Delete temporaries an interrupted `atomic_write` left in `directory`; return their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith(".") and name.endswith(TEMPORARY_SUFFIX):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            removed.append(name)
    return removed
