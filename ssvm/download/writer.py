"""One partial download file: chunks written and hashed on a worker thread, with back-pressure.

`PartialFile.write(data)` is called on the reactor thread for each chunk of the body. It only
queues the chunk; one batch at a time (so writes and hash updates stay in order) goes to the
thread pool, where the chunks are hashed (hashlib releases the GIL for large buffers) and written
with `os.writev`. While a batch is in flight new chunks gather for the next one, so batches grow
with the load. When more than `high_water` bytes are queued the registered producer (the HTTP
transport) is paused, and resumed below `low_water`.

The first `HEAD_SIZE` bytes are also kept in memory (`head`) for format sniffing. `open(resume=True)`
re-hashes an existing partial file in the pool before appending to it. Every method that touches
the file descriptor runs in the pool; none blocks the reactor.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ssvm.download.checksum import new_hasher
from ssvm.download.errors import DownloadFailed, ResumeImpossible
from ssvm.download.sniff import HEAD_SIZE, TAIL_SIZE

HIGH_WATER = 32 * 1024 * 1024
LOW_WATER = 8 * 1024 * 1024
READ_BLOCK = 4 * 1024 * 1024
_IOV_MAX = 512


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """`os.writev` every chunk, in groups, continuing after partial writes."""
    views: list[Any] = list(chunks)
    index = 0
    while index < len(views):
        group = views[index:index + _IOV_MAX]
        written = os.writev(fd, group)
        while index < len(views) and written >= len(views[index]):
            written -= len(views[index])
            index += 1
        if written:
            views[index] = memoryview(views[index])[written:]


class WriteFailed(DownloadFailed):
    """Writing the partial file failed (disk full, I/O error)."""


class PartialFile:
    log = Logger()

    def __init__(self, reactor: Any, pool: ThreadPool, path: str, algorithm: str, *,
                 high_water: int = HIGH_WATER, low_water: int = LOW_WATER) -> None:
        self._reactor = reactor
        self._pool = pool
        self.path = path
        self.algorithm = algorithm
        self._hasher = new_hasher(algorithm)
        self._high_water = high_water
        self._low_water = low_water
        self._fd: int | None = None
        self._head = bytearray()
        self.received = 0  # bytes accepted: written or queued
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._inflight_bytes = 0
        self._busy = False
        self._idle_waiters: list[Deferred[None]] = []
        self._producer: IPushProducer | None = None
        self.paused = False  # whether we paused the producer for back-pressure
        self.error: BaseException | None = None
        self._stop_reading = threading.Event()
        self.batches = 0
        self.opened = False

    # -- on the reactor thread -------------------------------------------------------------

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    @property
    def queued(self) -> int:
        return self._pending_bytes + self._inflight_bytes

    def attach_producer(self, producer: IPushProducer | None) -> None:
        """The producer to pause under back-pressure (None to detach it)."""
        if producer is None and self._producer is not None and self.paused:
            self.paused = False
        self._producer = producer
        if producer is not None and self.queued > self._high_water:
            self.paused = True
            producer.pauseProducing()

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        if len(self._head) < HEAD_SIZE:
            self._head += data[:HEAD_SIZE - len(self._head)]
        self.received += len(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if not self._busy:
            self._dispatch()
        elif not self.paused and self._producer is not None and self.queued > self._high_water:
            self.paused = True
            self._producer.pauseProducing()

    def _dispatch(self) -> None:
        batch, self._pending = self._pending, []
        self._inflight_bytes, self._pending_bytes = self._pending_bytes, 0
        self._busy = True
        self.batches += 1
        d = deferToThreadPool(self._reactor, self._pool, self._write_batch, batch)
        d.addCallbacks(self._batch_done, self._batch_failed)

    def _batch_done(self, _: None) -> None:
        self._busy = False
        self._inflight_bytes = 0
        if self._pending and self.error is None:
            self._dispatch()
        if self.paused and self.queued < self._low_water and self._producer is not None:
            self.paused = False
            self._producer.resumeProducing()
        if not self._busy:
            self._fire_idle()

    def _batch_failed(self, failure: Any) -> None:
        self.error = failure.value
        self._pending, self._pending_bytes = [], 0
        self._busy = False
        self._inflight_bytes = 0
        self.log.error("writing {path} failed: {error}", path=self.path, error=str(failure.value))
        if self._producer is not None:
            self._producer.stopProducing()
        self._fire_idle()

    def _fire_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _idle(self) -> Deferred[None]:
        """Fires once nothing is queued or in flight (a fresh Deferred per caller)."""
        waiter: Deferred[None] = Deferred()
        if self._busy:
            self._idle_waiters.append(waiter)
        else:
            waiter.callback(None)
        return waiter

    def _raise_error(self) -> None:
        if self.error is not None:
            raise WriteFailed(f"writing the download failed: {self.error}")

    # -- in the pool ---------------------------------------------------------------------------

    def _write_batch(self, batch: list[bytes]) -> None:
        assert self._fd is not None
        update = self._hasher.update
        for chunk in batch:
            update(chunk)
        _write_all(self._fd, batch)

    def _open(self, resume: bool) -> tuple[int, bytes]:
        if not resume:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            return 0, b""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ResumeImpossible("the partial file is gone; cannot resume") from None
        head = bytearray()
        length = 0
        try:
            while not self._stop_reading.is_set():
                block = os.read(fd, READ_BLOCK)
                if not block:
                    break
                self._hasher.update(block)
                if len(head) < HEAD_SIZE:
                    head += block[:HEAD_SIZE - len(head)]
                length += len(block)
            if self._stop_reading.is_set():
                raise ResumeImpossible("stopped while re-reading the partial file")
            os.lseek(fd, length, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return length, bytes(head)

    def _reset(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)

    def _finish(self, durable: bool) -> tuple[int, str, bytes]:
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            if durable:
                os.fsync(fd)
            size = os.fstat(fd).st_size
            tail = os.pread(fd, TAIL_SIZE, max(0, size - TAIL_SIZE))
        finally:
            os.close(fd)
        return size, self._hasher.hexdigest(), tail

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    # -- the public coroutines -----------------------------------------------------------------

    def _in_pool(self, function: Any, *args: Any) -> Deferred[Any]:
        """Run `function` in the pool as the only job on this file; the file stays busy until the
        thread returns, even if the caller stops waiting (a cancelled wait does not end the job)."""
        self._busy = True
        result: Deferred[Any] = Deferred()

        def done(outcome: Any) -> None:
            self._busy = False
            if self._pending and self.error is None:
                self._dispatch()
            if not self._busy:
                self._fire_idle()
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        deferToThreadPool(self._reactor, self._pool, function, *args).addBoth(done)
        return result

    async def _exclusive(self, function: Any, *args: Any) -> Any:
        while self._busy:
            await self._idle()
        return await self._in_pool(function, *args)

    async def open(self, resume: bool) -> int:
        """Create the file (or, with `resume`, re-hash the existing one); return its length."""
        length, head = await self._exclusive(self._open, resume)
        self.opened = True
        self.received = length
        self._head = bytearray(head)
        return int(length)

    async def reset(self) -> None:
        """Start again from byte 0: empty file, fresh hash, empty head."""
        await self.drain()
        await self._exclusive(self._reset)
        self._hasher = new_hasher(self.algorithm)
        self._head = bytearray()
        self.received = 0

    async def drain(self) -> None:
        """Wait until every queued chunk is written; raise `WriteFailed` if one could not be."""
        while self._busy:
            await self._idle()
        self._raise_error()

    async def finish(self, *, durable: bool = True) -> tuple[int, str, bytes]:
        """Drain, (fsync,) close; return (size, hex digest, last `TAIL_SIZE` bytes)."""
        await self.drain()
        size, digest, tail = await self._exclusive(self._finish, durable)
        return int(size), str(digest), bytes(tail)

    async def close(self) -> None:
        """Stop: drop what is still queued, wait for the job in flight, close the descriptor."""
        self._stop_reading.set()
        self._pending, self._pending_bytes = [], 0
        self._producer = None
        await self._exclusive(self._close)

    async def close_keeping_data(self) -> int:
        """Stop after writing what is queued (for a later resume); return the bytes on disk."""
        self._stop_reading.set()  # a re-hash still running is abandoned: the next start redoes it
        self._producer = None
        while self._busy:
            await self._idle()
        await self._exclusive(self._close)
        return self.received if self.error is None else 0
