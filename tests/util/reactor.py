"""A fake reactor for unit tests: a Clock whose thread pools run work synchronously."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock


class NonThreadPool:
    """Runs each call at once on the calling thread (Buildbot's NonThreadPool)."""

    started = True

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], None], func: Callable[..., Any],  # noqa: N802
                                 *args: Any, **kw: Any) -> None:
        try:
            result = func(*args, **kw)
        except BaseException as exc:  # the pool hands every failure to onResult
            from twisted.python.failure import Failure

            onResult(False, Failure(exc))
        else:
            onResult(True, result)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class SynchronousThreads:
    """Reactor threading that runs at once on the calling thread: callFromThread and a NonThreadPool."""

    pool: NonThreadPool

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:  # noqa: N802
        f(*args, **kw)

    def getThreadPool(self) -> NonThreadPool:  # noqa: N802
        return self.pool


class FakeReactor(SynchronousThreads, Clock):
    """Clock + synchronous threads, enough for the DB pool and services."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = NonThreadPool()

    def callWhenRunning(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:  # noqa: N802
        f(*args, **kw)
