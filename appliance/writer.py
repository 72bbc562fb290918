"""Atomic file writes kept off the reactor thread (STYLE.md: no blocking call on the reactor).

`SerialWriter` runs every `atomic_write` (write, fsync, rename, directory fsync) on one worker
thread of its own, in the order the writes were asked for, so the last write of a file is always
the last one to land.  `InlineWriter` writes at once on the calling thread: the default for tests
and tools that own no reactor.  Both return a `Deferred` that fires when the file is durable, or
fails with the `OSError`.

`WriteTracker` follows the writes of one file: `wait()` fires once every write issued so far has
landed, and fails when the newest one failed, so a caller can answer only after its change is on
disk and a later successful write clears an earlier failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from appliance.files import atomic_write

__all__ = ["FileWriter", "InlineWriter", "SerialWriter", "WriteTracker"]

Content = bytes | Callable[[], bytes]


def _write(path: str, content: Content, mode: int) -> None:
    atomic_write(path, content() if callable(content) else content, mode)


class FileWriter(Protocol):
    def write(self, path: str, content: Content, mode: int = 0o600) -> Deferred[None]:
        """Replace `path` atomically with `content` (bytes, or a function returning them, called
        where the write happens); the result fires when the file is durable."""
        ...


class InlineWriter:
    """Writes on the calling thread before `write` returns."""

    def write(self, path: str, content: Content, mode: int = 0o600) -> Deferred[None]:
        try:
            _write(path, content, mode)
        except Exception:
            return fail()
        return succeed(None)


class SerialWriter(Service):
    """Writes on one worker thread, first asked first written.  A service: started before anything
    writes, and stopping waits for the writes asked for so far."""

    def __init__(self, reactor: Any, name: str = "writer") -> None:
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name=name)

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        self.pool.start()

    def stopService(self) -> None:  # noqa: N802 (Twisted API)
        if self.running:
            super().stopService()
            self.pool.stop()  # joins the worker: the queued writes land first

    def write(self, path: str, content: Content, mode: int = 0o600) -> Deferred[None]:
        return deferToThreadPool(self.reactor, self.pool, _write, path, content, mode)


class WriteTracker:
    """The outcome of the writes of one file, issued in order and landing in order."""

    def __init__(self) -> None:
        self.issued = 0
        self.landed = 0
        self.error: Failure | None = None  # the newest landed write's failure
        self._waiting: list[tuple[int, Deferred[None]]] = []

    @property
    def failed(self) -> bool:
        """Every write issued has landed and the newest one failed."""
        return self.landed == self.issued and self.error is not None

    def track(self, written: Deferred[None]) -> Deferred[None]:
        """Follow `written` (the next write of the file); returns it, with its failure consumed."""
        self.issued += 1
        number = self.issued

        def landed(result: object) -> None:
            self.landed = max(self.landed, number)
            self.error = result if isinstance(result, Failure) else None
            still: list[tuple[int, Deferred[None]]] = []
            for wanted, waiter in self._waiting:
                if wanted > number:
                    still.append((wanted, waiter))
                elif self.error is not None:
                    waiter.errback(self.error)
                else:
                    waiter.callback(None)
            self._waiting = still

        written.addBoth(landed)
        return written

    def wait(self) -> Deferred[None]:
        """Fires when every write issued so far has landed; fails with the newest one's failure."""
        if self.landed >= self.issued:
            return fail(self.error) if self.error is not None else succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append((self.issued, waiter))
        return waiter
