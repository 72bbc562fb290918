"""A dedicated thread pool on which every SQL statement of the management server runs.

Functions handed to `do` receive a SQLAlchemy Connection inside a transaction and must return plain
data; returning a Row or Result is a programming error and is refused, because such objects would
be read later on the reactor thread.

A transaction that fails with a disconnect, a deadlock or a lock timeout is run again after a wait
that grows exponentially (Buildbot's pool is the model), until `max_retry_time` has passed since the
first attempt. Unlike Buildbot, the wait is not a sleep on the pool thread: the next attempt is
scheduled on the injected clock, so a database outage neither blocks the reactor nor holds the
pool's threads, and tests step through the waits without really waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine, Result, Row
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from cloudd.db.enginestrategy import should_retry

T = TypeVar("T")


class DBThreadPool:
    """Runs `thd(conn)` functions in a transaction on a named thread pool."""

    log = Logger()
    # the first wait before a retry, the factor by which each wait grows, the longest wait, and how
    # long after the first attempt a transaction is given up (the error then reaches the caller)
    backoff_start = 0.1
    backoff_mult = 2.0
    backoff_max = 5.0
    max_retry_time = 30.0

    def __init__(
        self,
        engine: Engine,
        reactor: IReactorThreads,
        clock: IReactorTime,
        min_threads: int = 1,
        max_threads: int = 5,
        threadpool: ThreadPool | None = None,
        *,
        backoff_start: float | None = None,
        backoff_mult: float | None = None,
        backoff_max: float | None = None,
        max_retry_time: float | None = None,
    ) -> None:
        self.engine = engine
        self.reactor = reactor
        self.clock = clock
        self._own_pool = threadpool is None
        self.threadpool = threadpool or ThreadPool(min_threads, max_threads, name="cloudd-db")
        self._started = False
        if backoff_start is not None:
            self.backoff_start = backoff_start
        if backoff_mult is not None:
            self.backoff_mult = backoff_mult
        if backoff_max is not None:
            self.backoff_max = backoff_max
        if max_retry_time is not None:
            self.max_retry_time = max_retry_time
        # transactions run again after a retryable error, since the start (for logs and tests)
        self.retries = 0

    def start(self) -> None:
        if self._own_pool and not self._started:
            self.threadpool.start()
        self._started = True

    def stop(self) -> None:
        if self._own_pool and self._started:
            self.threadpool.stop()
        self._started = False
        self.engine.dispose()

    def _run(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            result = fn(conn)
        if isinstance(result, Result | Row):
            raise TypeError("do not return SQLAlchemy Result or Row objects from the DB pool")
        return result

    def backoff(self) -> list[float]:
        """The waits before each retry, in order, that fit in `max_retry_time`."""
        waits: list[float] = []
        wait, total = self.backoff_start, 0.0
        while total + wait <= self.max_retry_time:
            waits.append(wait)
            total += wait
            wait = min(wait * self.backoff_mult, self.backoff_max)
        return waits

    def do(self, fn: Callable[[Connection], T]) -> Deferred[T]:
        """Run `fn(conn)` in one transaction off the reactor thread, again after a retryable error."""
        return Deferred.fromCoroutine(self._do(fn))

    async def _do(self, fn: Callable[[Connection], T]) -> T:
        waits = None
        attempt = 0
        while True:
            try:
                return await deferToThreadPool(self.reactor, self.threadpool, self._run, fn)
            except Exception as exc:
                if not should_retry(exc):
                    raise
                if waits is None:
                    waits = self.backoff()
                if attempt >= len(waits):
                    self.log.error("database error, giving up after {attempts} attempts: {error}",
                                   attempts=attempt + 1, error=type(exc).__name__)
                    raise
                wait = waits[attempt]
                attempt += 1
                self.retries += 1
                self.log.info("database error ({error}); attempt {attempt} again in {wait:.2f}s",
                              error=type(exc).__name__, attempt=attempt + 1, wait=wait)
                await deferLater(self.clock, wait)

    def do_with_engine(self, fn: Callable[[Engine], T]) -> Deferred[T]:
        """Run `fn(engine)` off the reactor thread, outside any transaction (schema work)."""
        return deferToThreadPool(self.reactor, self.threadpool, fn, self.engine)

    def do_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` once on the calling thread; for command-line tools and start-up, never the reactor
        (there is no clock to wait on, so an error is not retried)."""
        return self._run(fn)
