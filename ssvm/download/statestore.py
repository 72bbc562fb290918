"""The state directory: one JSON file per download (`<id>.json`), written atomically, in order,
off the reactor thread.

`save(id, value)` and `remove(id)` queue the latest wish for an id and return a Deferred that
fires once that wish (or a later one for the same id) is on disk. One writer at a time runs in
the thread pool, so an older state can never overwrite a newer one, and a burst of progress
updates collapses into one write. `load()` reads the directory (at start, before any writer).
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from appliance.files import atomic_write_json, remove_stale_temporaries

_REMOVE = object()


class StateStore:
    log = Logger()

    def __init__(self, reactor: Any, pool: ThreadPool, directory: str) -> None:
        self._reactor = reactor
        self._pool = pool
        self.directory = directory
        self._queue: dict[str, tuple[object, list[Deferred[None]]]] = {}
        self._busy = False

    def path(self, download_id: str) -> str:
        return os.path.join(self.directory, f"{download_id}.json")

    def load(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every readable record, and the names of files that could not be read. Blocking: call
        it at start, before the store is used."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        remove_stale_temporaries(self.directory)
        records, broken = [], []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                with open(os.path.join(self.directory, name), encoding="utf-8") as handle:
                    value = json.load(handle)
            except (OSError, ValueError):
                broken.append(name)
                continue
            if isinstance(value, dict):
                records.append(value)
            else:
                broken.append(name)
        return records, broken

    def save(self, download_id: str, value: dict[str, Any]) -> Deferred[None]:
        return self._enqueue(download_id, value)

    def remove(self, download_id: str) -> Deferred[None]:
        return self._enqueue(download_id, _REMOVE)

    def _enqueue(self, download_id: str, value: object) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        _, waiters = self._queue.get(download_id, (None, []))
        waiters.append(waiter)
        self._queue[download_id] = (value, waiters)
        if not self._busy:
            self._next()
        return waiter

    def _next(self) -> None:
        if not self._queue:
            self._busy = False
            return
        self._busy = True
        download_id = next(iter(self._queue))
        value, waiters = self._queue.pop(download_id)
        d = deferToThreadPool(self._reactor, self._pool, self._write, download_id, value)

        def done(outcome: object) -> None:
            if isinstance(outcome, Failure):
                self.log.failure("writing the state of download {id} failed", outcome, id=download_id)
            self._busy = False
            for waiter in waiters:
                waiter.callback(None)
            if not self._busy:
                self._next()

        d.addBoth(done)

    def _write(self, download_id: str, value: object) -> None:
        if value is _REMOVE:
            try:
                os.unlink(self.path(download_id))
            except FileNotFoundError:
                pass
        else:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            atomic_write_json(self.path(download_id), value)

    def idle(self) -> bool:
        return not self._busy
