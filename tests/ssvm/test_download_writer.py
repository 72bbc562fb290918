"""PartialFile (worker-thread writes, hashing, back-pressure, resume) and StateStore (ordered,
coalesced atomic writes), on a real thread pool and file system."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from ssvm.download.errors import ResumeImpossible
from ssvm.download.sniff import HEAD_SIZE
from ssvm.download.statestore import StateStore
from ssvm.download.writer import PartialFile, WriteFailed


@implementer(IPushProducer)
class RecordingProducer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:  # noqa: N802
        self.calls.append("pause")

    def resumeProducing(self) -> None:  # noqa: N802
        self.calls.append("resume")

    def stopProducing(self) -> None:  # noqa: N802
        self.calls.append("stop")


class GatedFile(PartialFile):
    """A PartialFile whose worker waits for `gate` before each batch (a slow disk)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def _write_batch(self, batch: list[bytes]) -> None:
        self.gate.wait(10)
        super()._write_batch(batch)


def later(seconds: float = 0.01) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    cast(Any, reactor).callLater(seconds, d.callback, None)
    return d


class PartialFileTests(TestCase):
    def setUp(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=2, name="test-writer")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "dnld00tmp_")

    async def test_writes_hashes_and_keeps_the_head(self) -> None:
        chunks = [os.urandom(size) for size in (10, 70000, 1, 300000, 5)]
        data = b"".join(chunks)
        writer = PartialFile(reactor, self.pool, self.path, "SHA-256")
        self.assertEqual(await writer.open(resume=False), 0)
        for chunk in chunks:
            writer.write(chunk)
        self.assertEqual(writer.received, len(data))
        self.assertEqual(writer.head, data[:HEAD_SIZE])
        size, digest, tail = await writer.finish()
        self.assertEqual((size, digest, tail), (len(data), hashlib.sha256(data).hexdigest(), data[-512:]))
        with open(self.path, "rb") as handle:
            self.assertEqual(handle.read(), data)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        self.assertLess(writer.batches, len(chunks) + 1)

    async def test_back_pressure(self) -> None:
        """Above the high-water mark the producer is paused, below the low-water mark resumed."""
        writer = GatedFile(reactor, self.pool, self.path, "MD5", high_water=100_000, low_water=50_000)
        await writer.open(resume=False)
        producer = RecordingProducer()
        writer.attach_producer(producer)
        for _ in range(8):
            writer.write(b"x" * 20_000)
        self.assertEqual(producer.calls, ["pause"])
        self.assertTrue(writer.paused)
        writer.gate.set()
        await writer.drain()
        self.assertEqual(producer.calls, ["pause", "resume"])
        self.assertFalse(writer.paused)
        size, digest, _ = await writer.finish()
        self.assertEqual((size, digest), (160_000, hashlib.md5(b"x" * 160_000).hexdigest()))

    async def test_resume_rehashes_the_partial_file(self) -> None:
        first, second = os.urandom(3 * 2**20 + 7), os.urandom(100_000)
        with open(self.path, "wb") as handle:
            handle.write(first)
        writer = PartialFile(reactor, self.pool, self.path, "SHA-1")
        self.assertEqual(await writer.open(resume=True), len(first))
        self.assertEqual(writer.head, first[:HEAD_SIZE])
        writer.write(second)
        size, digest, _ = await writer.finish()
        self.assertEqual((size, digest), (len(first) + len(second), hashlib.sha1(first + second).hexdigest()))

    async def test_resume_without_the_file(self) -> None:
        writer = PartialFile(reactor, self.pool, self.path, "SHA-1")
        with self.assertRaises(ResumeImpossible):
            await writer.open(resume=True)

    async def test_reset(self) -> None:
        writer = PartialFile(reactor, self.pool, self.path, "SHA-256")
        await writer.open(resume=False)
        writer.write(b"old" * 1000)
        await writer.reset()
        self.assertEqual((writer.received, writer.head), (0, b""))
        writer.write(b"new")
        size, digest, _ = await writer.finish()
        self.assertEqual((size, digest), (3, hashlib.sha256(b"new").hexdigest()))

    async def test_close_keeping_data(self) -> None:
        """A shutdown writes what is queued before closing, so a resume starts at the right byte."""
        writer = GatedFile(reactor, self.pool, self.path, "SHA-256")
        await writer.open(resume=False)
        writer.write(b"a" * 1000)
        writer.write(b"b" * 1000)
        stopping = Deferred.fromCoroutine(writer.close_keeping_data())
        await later()
        self.assertNoResult(stopping)
        writer.gate.set()
        self.assertEqual(await stopping, 2000)
        self.assertEqual(os.path.getsize(self.path), 2000)

    async def test_close_drops_the_queue(self) -> None:
        writer = GatedFile(reactor, self.pool, self.path, "SHA-256")
        await writer.open(resume=False)
        writer.write(b"a" * 1000)
        writer.write(b"b" * 1000)
        closing = Deferred.fromCoroutine(writer.close())
        writer.gate.set()
        await closing
        self.assertEqual(os.path.getsize(self.path), 1000)

    async def test_write_failure(self) -> None:
        """A failing write stops the producer and is reported by drain/finish."""
        writer = PartialFile(reactor, self.pool, self.path, "SHA-256")
        await writer.open(resume=False)
        producer = RecordingProducer()
        writer.attach_producer(producer)
        assert writer._fd is not None
        os.close(writer._fd)  # every later write fails with EBADF
        writer._fd = os.open(os.devnull, os.O_RDONLY)
        writer.write(b"data")
        with self.assertRaises(WriteFailed) as caught:
            await writer.drain()
        self.assertIn("writing the download failed", str(caught.exception))
        self.assertEqual(producer.calls, ["stop"])
        self.flushLoggedErrors()
        await writer.close()


class StateStoreTests(TestCase):
    def setUp(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=2, name="test-state")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.directory = os.path.abspath(self.mktemp())

    async def test_ordered_and_coalesced(self) -> None:
        store = StateStore(reactor, self.pool, self.directory)
        waits = [store.save("a", {"n": n}) for n in range(50)]
        waits.append(store.save("b", {"n": "b"}))
        for wait in waits:
            await wait
        with open(os.path.join(self.directory, "a.json")) as handle:
            self.assertEqual(json.load(handle), {"n": 49})
        await store.remove("b")
        self.assertEqual(sorted(os.listdir(self.directory)), ["a.json"])
        records, broken = StateStore(reactor, self.pool, self.directory).load()
        self.assertEqual((records, broken), ([{"n": 49}], []))
        self.assertTrue(store.idle())

    def test_load_skips_broken_files_and_temporaries(self) -> None:
        os.makedirs(self.directory)
        for name, text in [("good.json", '{"id": "good"}'), ("bad.json", "{"), ("list.json", "[1]"),
                           (".x.json.abc.tmp", "{}"), ("other.txt", "{}")]:
            with open(os.path.join(self.directory, name), "w") as handle:
                handle.write(text)
        records, broken = StateStore(reactor, self.pool, self.directory).load()
        self.assertEqual(records, [{"id": "good"}])
        self.assertEqual(broken, ["bad.json", "list.json"])
        self.assertNotIn(".x.json.abc.tmp", os.listdir(self.directory))
