"""A dedicated thread pool on which every SQL statement of the management server runs.

Functions handed to `do` receive a SQLAlchemy Connection inside a transaction and must return plain
data; returning a Row or Result is a programming error and is refused, because such objects would
be read later on the reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine, Result, Row
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from cloudd.db.enginestrategy import should_retry

T = TypeVar("T")


class DBThreadPool:
    """Runs `thd(conn)` functions in a transaction on a named thread pool."""

    log = Logger()
    max_retries = 5

    def __init__(
        self,
        engine: Engine,
        reactor: IReactorThreads,
        clock: IReactorTime,
        min_threads: int = 1,
        max_threads: int = 5,
        threadpool: ThreadPool | None = None,
    ) -> None:
        self.engine = engine
        self.reactor = reactor
        self.clock = clock
        self._own_pool = threadpool is None
        self.threadpool = threadpool or ThreadPool(min_threads, max_threads, name="cloudd-db")
        self._started = False

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
        attempt = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    result = fn(conn)
            except Exception as exc:
                attempt += 1
                if attempt <= self.max_retries and should_retry(exc):
                    continue
                raise
            if isinstance(result, Result | Row):
                raise TypeError("do not return SQLAlchemy Result or Row objects from the DB pool")
            return result

    def do(self, fn: Callable[[Connection], T]) -> Deferred[T]:
        """Run `fn(conn)` in one transaction off the reactor thread."""
        return deferToThreadPool(self.reactor, self.threadpool, self._run, fn)

    def do_with_engine(self, fn: Callable[[Engine], T]) -> Deferred[T]:
        """Run `fn(engine)` off the reactor thread, outside any transaction (schema work)."""
        return deferToThreadPool(self.reactor, self.threadpool, fn, self.engine)

    def do_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` on the calling thread; for command-line tools and start-up, never the reactor."""
        return self._run(fn)
