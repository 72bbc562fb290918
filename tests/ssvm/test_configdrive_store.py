"""Tests for `ssvm.configdrive.store`: ISOs on the image store, built on a real thread pool."""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from appliance import files
from ssvm.configdrive.content import DriveSpec, parse_drive
from ssvm.configdrive.iso import build_iso
from ssvm.configdrive.store import ConfigDriveStore, build_and_write, validate_instance_name
from ssvm.configdrive.validation import MAX_DRIVE_SIZE, DriveError, DriveTooLarge
from tests.ssvm.configdrive_helpers import minimal, typical
from tests.util.reactor import FakeReactor

GOOD_NAMES = ["i-2-15-VM", "r-4-VM", "a", "VM_1.backup", "x" * 128, "9"]
BAD_NAMES = ["", ".", "..", "../x", "a/b", "-i-2-VM", ".hidden", "a..b", "x" * 129, "i 2", "i-2\n",
             "é", "a\\b"]


def deferred_test(method: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], Deferred[None]]:
    """Run an `async def` test as trial expects: by returning a Deferred."""

    @functools.wraps(method)
    def wrapper(self: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(method(self))

    return wrapper


def spec(**changes: Any) -> DriveSpec:
    return parse_drive({**typical(), **changes})


class NameTests(SynchronousTestCase):
    def test_names(self) -> None:
        """Instance names are safe base names: letters, digits, . _ - , at most 128, not starting
        with a dot or hyphen, never containing '..'."""
        for name in GOOD_NAMES:
            self.assertEqual(validate_instance_name(name), name)
        for name in BAD_NAMES:
            with self.subTest(name):
                exc = self.assertRaises(DriveError, validate_instance_name, name)
                self.assertIn("instance name", str(exc))


class StoreTests(TestCase):
    """The store on the real reactor with a real thread pool."""

    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.pool = ThreadPool(minthreads=1, maxthreads=3, name="configdrive-test")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.store = ConfigDriveStore(self.root, reactor, self.pool)

    def path(self, name: str) -> str:
        return os.path.join(self.root, "configdrive", f"{name}.iso")

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    @deferred_test
    async def test_put(self) -> None:
        """A put writes configdrive/<name>.iso, mode 0600, and answers its path, size and sha256."""
        drive = spec()
        answer = await self.store.put("i-2-15-VM", drive)
        image = build_iso(drive)
        self.assertEqual(answer, {"instance_name": "i-2-15-VM", "path": "configdrive/i-2-15-VM.iso",
                                  "size": len(image), "sha256": hashlib.sha256(image).hexdigest(),
                                  "location": "SECONDARY"})
        self.assertEqual(self.read("i-2-15-VM"), image)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("i-2-15-VM")).st_mode), 0o600)
        self.assertEqual(self.store.path_of("i-2-15-VM"), os.path.abspath(self.path("i-2-15-VM")))
        self.assertIsNone(self.store.path_of("i-2-16-VM"))

    @deferred_test
    async def test_replace(self) -> None:
        """A second put replaces the file by rename (a new inode, the old one untouched) and
        leaves no temporary behind."""
        await self.store.put("i-2-15-VM", spec())
        old_inode = os.stat(self.path("i-2-15-VM")).st_ino
        with open(self.path("i-2-15-VM"), "rb") as held:
            before = held.read()
            second = await self.store.put("i-2-15-VM", spec(hostname="web2"))
            held.seek(0)
            self.assertEqual(held.read(), before)
        after = self.read("i-2-15-VM")
        self.assertNotEqual(after, before)
        self.assertEqual(hashlib.sha256(after).hexdigest(), second["sha256"])
        self.assertNotEqual(os.stat(self.path("i-2-15-VM")).st_ino, old_inode)
        self.assertEqual(os.listdir(os.path.join(self.root, "configdrive")), ["i-2-15-VM.iso"])

    @deferred_test
    async def test_last_request_wins(self) -> None:
        """Puts and deletes of one instance made at once take effect in the order they were made."""
        drives = [spec(hostname=f"web{i}") for i in range(6)]
        await gatherResults([Deferred.fromCoroutine(self.store.put("i-2-15-VM", d)) for d in drives])
        self.assertEqual(self.read("i-2-15-VM"), build_iso(drives[-1]))
        put = Deferred.fromCoroutine(self.store.put("i-2-15-VM", drives[0]))
        deleted = Deferred.fromCoroutine(self.store.delete("i-2-15-VM"))
        await put
        self.assertTrue(await deleted)
        self.assertIsNone(self.store.path_of("i-2-15-VM"))
        self.assertEqual(self.store._locks, {})

    @deferred_test
    async def test_instances_in_parallel(self) -> None:
        """Drives of different instances are built side by side, each to its own file."""
        names = [f"i-2-{n}-VM" for n in range(8)]
        drives = {name: spec(hostname=f"web{n}") for n, name in enumerate(names)}
        await gatherResults([Deferred.fromCoroutine(self.store.put(name, drives[name])) for name in names])
        for name in names:
            self.assertEqual(self.read(name), build_iso(drives[name]))

    @deferred_test
    async def test_delete(self) -> None:
        """Delete removes the file and says so; a second delete finds nothing."""
        await self.store.put("i-2-15-VM", spec())
        self.assertTrue(await self.store.delete("i-2-15-VM"))
        self.assertFalse(os.path.exists(self.path("i-2-15-VM")))
        self.assertFalse(await self.store.delete("i-2-15-VM"))

    @deferred_test
    async def test_bad_names(self) -> None:
        """put, delete and path_of refuse unsafe names before touching the disk."""
        for name in ("..", "../../etc/passwd", "a/b"):
            with self.assertRaises(DriveError):
                await self.store.put(name, spec())
            with self.assertRaises(DriveError):
                await self.store.delete(name)
            self.assertRaises(DriveError, self.store.path_of, name)
        self.assertFalse(os.path.exists(os.path.join(self.root, "configdrive")))

    @deferred_test
    async def test_too_large(self) -> None:
        """A drive over 64 MiB fails with DriveTooLarge and leaves no file."""
        base = spec()
        huge = DriveSpec(**{**base.__dict__, "user_data": b"u" * MAX_DRIVE_SIZE})
        with self.assertRaises(DriveTooLarge) as caught:
            await self.store.put("i-2-15-VM", huge)
        self.assertIn("64 MiB", str(caught.exception))
        self.assertIsNone(self.store.path_of("i-2-15-VM"))
        self.assertEqual(os.listdir(os.path.join(self.root, "configdrive")), [])

    @deferred_test
    async def test_stale_temporaries(self) -> None:
        """Temporaries a crash left in configdrive/ are removed before the first write; other
        files stay."""
        directory = os.path.join(self.root, "configdrive")
        os.makedirs(directory)
        for name in (".i-2-15-VM.iso.0a1b2c3d4e5f.tmp", "i-9-9-VM.iso"):
            with open(os.path.join(directory, name), "wb") as f:
                f.write(b"x")
        await self.store.put("i-2-15-VM", parse_drive(minimal()))
        self.assertEqual(sorted(os.listdir(directory)), ["i-2-15-VM.iso", "i-9-9-VM.iso"])


class WriteTests(SynchronousTestCase):
    def test_file_synced_directory_not(self) -> None:
        """build_and_write fsyncs the new file before renaming it into place, and (for speed) not
        the directory: a crash may bring back the previous complete drive, never a torn one."""
        directory = self.mktemp()
        os.makedirs(directory)
        synced: list[str] = []
        renamed: list[str] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
            real_fsync(fd)

        def replace(source: str, target: str) -> None:
            renamed.append(f"after {len(synced)} fsync(s)")
            real_replace(source, target)

        self.patch(files.os, "fsync", fsync)
        self.patch(files.os, "replace", replace)
        drive = spec()
        path = os.path.join(directory, "i-2-15-VM.iso")
        size, sha256 = build_and_write(path, drive)
        image = build_iso(drive)
        self.assertEqual((size, sha256), (len(image), hashlib.sha256(image).hexdigest()))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), image)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(synced, ["file"])
        self.assertEqual(renamed, ["after 1 fsync(s)"])
        self.assertEqual(os.listdir(directory), ["i-2-15-VM.iso"])


class SynchronousPoolTests(SynchronousTestCase):
    """The store with a pool that runs work at once, as the daemon's unit tests use it."""

    def test_put_and_delete(self) -> None:
        """With a synchronous pool a put completes before it returns."""
        fake = FakeReactor()
        store = ConfigDriveStore(self.mktemp(), fake, fake.pool)  # type: ignore[arg-type]
        answer = self.successResultOf(Deferred.fromCoroutine(store.put("i-2-15-VM", spec())))
        self.assertEqual(answer["path"], "configdrive/i-2-15-VM.iso")
        self.assertTrue(self.successResultOf(Deferred.fromCoroutine(store.delete("i-2-15-VM"))))
