"""The C allocator setting that lets the router give back the memory of a large state change.

glibc's malloc serves a large block (128 KiB and more by default) with its own mapping, and when
such a block is freed it raises that threshold to the freed block's size (up to 32 MiB on 64-bit
systems).  A router's full sync frees several such blocks (the request body, the state file's
encoding, the tables of the previous views): afterwards every large block up to that size comes
from the heap and stays resident once freed, between the long-lived records and views.  Measured
with 10,000 VMs (`bench/router_memory.py`) this held about 2 KB per VM more after a sync than
after a restart.  Fixing the threshold with ``mallopt(M_MMAP_THRESHOLD, ...)`` turns the dynamic
adjustment off (the trim threshold stays at its default too), so freed large blocks go back to the
system at once.  Python's own small-object arenas are mapped separately and do not depend on it.

Other C libraries (musl) have no such adjustment: `fix_mmap_threshold` is then a no-op.
"""

from __future__ import annotations

import ctypes
from typing import Any

from twisted.logger import Logger

__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold"]

#: glibc's default threshold, kept fixed.
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>

log = Logger()


def fix_mmap_threshold(libc: Any = None, threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix the C allocator's mmap threshold at `threshold` bytes; return whether it was set.
    `libc` is the C library's handle (tests pass a fake; default: this process's own symbols)."""
    try:
        if libc is None:
            libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc: nothing to fix
    if mallopt(_M_MMAP_THRESHOLD, threshold) != 1:
        log.warn("could not fix the allocator's mmap threshold at {threshold} bytes", threshold=threshold)
        return False
    return True
