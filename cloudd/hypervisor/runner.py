"""Runs blocking libvirt work on the driver's thread pool, with a time limit seen by the caller.

Every libvirt call blocks, so each one is a plain function run by `deferToThreadPool` on the one
"cloudd-libvirt" pool, never on the reactor thread. A call that does not finish within its time limit
fails for the caller with `HostUnreachable`; the thread itself cannot be interrupted and finishes when
libvirt gives up (a keepalive or the socket's error ends it). What such a late call returns is handed to
a `late` callback, so a connection opened after its caller gave up is closed rather than leaked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from cloudd.hypervisor.errors import HostUnreachable

T = TypeVar("T")


class LibvirtRunner:
    """Hands functions to the libvirt pool and bounds how long a caller waits for each."""

    log = Logger()

    def __init__(self, reactor: IReactorThreads, clock: IReactorTime, threadpool: ThreadPool) -> None:
        self.reactor = reactor
        self.clock = clock
        self.threadpool = threadpool

    async def run(self, fn: Callable[[], T], timeout: float, what: str,
                  late: Callable[[T], Any] | None = None, finished: Callable[[], Any] | None = None) -> T:
        """`fn()` on the pool; HostUnreachable("`what` did not answer within N s") after `timeout`.

        `finished()` is called on the reactor thread when the thread is done, however late.
        """
        inner: Deferred[T] = deferToThreadPool(self.reactor, self.threadpool, fn)
        outer: Deferred[T] = Deferred()

        def expire() -> None:
            outer.errback(Failure(HostUnreachable(f"{what} did not answer within {timeout:g} s")))

        timer = self.clock.callLater(timeout, expire)

        def done(result: T | Failure) -> None:
            if finished is not None:
                finished()
            if timer.active():
                timer.cancel()
                if isinstance(result, Failure):
                    outer.errback(result)
                else:
                    outer.callback(result)
                return
            # the caller has given up; a late success may hold a resource to release
            if isinstance(result, Failure):
                self.log.info("{what} finished after its caller gave up: {error}", what=what,
                              error=result.getErrorMessage())
            elif late is not None:
                try:
                    late(result)
                except Exception:
                    self.log.failure("releasing the late result of {what}", what=what)

        inner.addBoth(done)
        return await outer
