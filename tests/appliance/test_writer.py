"""`appliance.writer`: ordered atomic writes on one worker thread, and the tracker that tells a
caller when its write (or a newer one) has landed."""

from __future__ import annotations

import os
import threading

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from appliance.writer import InlineWriter, SerialWriter, WriteTracker


class SerialWriterTests(TestCase):
    def setUp(self) -> None:
        # the modes asked for are checked: do not inherit a umask another test of this process left
        self.addCleanup(os.umask, os.umask(0o022))
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.writer = SerialWriter(reactor, name="test-writer")
        self.writer.startService()
        self.addCleanup(self.writer.stopService)

    def test_order_and_thread(self) -> Deferred[None]:
        """Many writes of one file land in the order asked; the content is produced on the worker
        thread, never on the reactor's; the file mode is the one asked for."""
        path = os.path.join(self.directory, "state.json")
        threads: list[int] = []

        def content(n: int) -> bytes:
            threads.append(threading.get_ident())
            return b"version %d" % n

        async def go() -> None:
            writes = [self.writer.write(path, lambda n=n: content(n), 0o640) for n in range(50)]
            for written in writes:
                await written
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"version 49")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)
            self.assertEqual(len(set(threads)), 1)
            self.assertNotEqual(threads[0], threading.get_ident())
            self.assertEqual(sorted(os.listdir(self.directory)), ["state.json"])
        return ensureDeferred(go())

    def test_failure(self) -> Deferred[None]:
        """A write into a missing folder fails with the OSError; the next write still works."""
        async def go() -> None:
            with self.assertRaises(FileNotFoundError):
                await self.writer.write(os.path.join(self.directory, "missing", "x"), b"x")
            await self.writer.write(os.path.join(self.directory, "x"), b"y")
            with open(os.path.join(self.directory, "x"), "rb") as f:
                self.assertEqual(f.read(), b"y")
        return ensureDeferred(go())

    def test_stop_waits_for_queued_writes(self) -> None:
        path = os.path.join(self.directory, "last")
        for n in range(20):
            self.writer.write(path, b"%d" % n)
        self.writer.stopService()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"19")


class InlineWriterTests(SynchronousTestCase):
    def test_writes_before_returning(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        written = InlineWriter().write(os.path.join(directory, "f"), lambda: b"now")
        self.assertIsNone(self.successResultOf(written))
        with open(os.path.join(directory, "f"), "rb") as f:
            self.assertEqual(f.read(), b"now")
        self.failureResultOf(InlineWriter().write(os.path.join(directory, "no", "f"), b""), FileNotFoundError)


class WriteTrackerTests(SynchronousTestCase):
    def test_waits_for_every_write_issued(self) -> None:
        tracker = WriteTracker()
        self.successResultOf(tracker.wait())
        first: Deferred[None] = Deferred()
        second: Deferred[None] = Deferred()
        tracker.track(first)
        early = tracker.wait()
        tracker.track(second)
        late = tracker.wait()
        first.callback(None)
        self.successResultOf(early)
        self.assertNoResult(late)
        second.callback(None)
        self.successResultOf(late)
        self.assertFalse(tracker.failed)

    def test_failure_then_success(self) -> None:
        """The newest write's failure is what `wait` reports; a later success clears it."""
        tracker = WriteTracker()
        tracker.track(fail(OSError(28, "No space left on device")))
        self.assertTrue(tracker.failed)
        self.assertEqual(self.failureResultOf(tracker.wait(), OSError).value.errno, 28)
        tracker.track(succeed(None))
        self.assertFalse(tracker.failed)
        self.successResultOf(tracker.wait())

    def test_failure_reaches_waiters_of_that_write(self) -> None:
        tracker = WriteTracker()
        pending: Deferred[None] = Deferred()
        tracker.track(pending)
        waiter = tracker.wait()
        self.assertFalse(tracker.failed)  # not landed yet
        pending.errback(Failure(PermissionError(13, "Permission denied")))
        self.failureResultOf(waiter, PermissionError)
