"""The config-drive ISOs on the image store: `<store>/configdrive/<instance>.iso`.

Building (pycdlib) and every file operation run on the appliance's thread pool, never on the
reactor thread. Each ISO is replaced atomically (`appliance.files.atomic_write`: temporary sibling,
fsync, rename; see `write_drive`), mode 0600 because it may carry the VM's password. Requests
for one instance are served one at a time in arrival order, so the last request wins and a delete
is never undone by an earlier, slower put. Temporaries left by a crash are removed before the first
write. Nothing here logs the password, the user data or the vendor data.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from twisted.internet.defer import DeferredLock
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from appliance.files import atomic_write, remove_stale_temporaries
from ssvm.configdrive.content import DriveSpec
from ssvm.configdrive.iso import build_iso
from ssvm.configdrive.validation import DriveError, quote

DIRECTORY = "configdrive"
INSTANCE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_instance_name(name: str) -> str:
    """`name` if it is a safe ISO base name (CloudStack's `i-2-15-VM` and the like), else DriveError."""
    if not isinstance(name, str) or not INSTANCE_NAME_RE.fullmatch(name) or ".." in name:
        raise DriveError(f"instance name {quote(name)} must be 1 to 128 characters A-Z a-z 0-9 . _ - "
                         "starting with a letter or digit, without '..'")
    return name


def write_drive(path: str, image: bytes) -> tuple[int, str]:
    """Store `image` at `path` (new file, fsync, rename; mode 0600); answer its size and sha256.

    The directory is not fsynced after the rename (`sync_directory=False`): the file is complete
    on disk before it gets its name, so after a crash the name holds this drive or the previous
    complete one, never a torn file, and a drive is rebuilt at every VM start anyway. That saves
    a second fsync on every put.
    """
    atomic_write(path, image, mode=0o600, sync_directory=False)
    return len(image), hashlib.sha256(image).hexdigest()


def build_and_write(path: str, spec: DriveSpec) -> tuple[int, str]:
    """Build `spec` and store it at `path` (`write_drive`): all a put does on the thread pool."""
    return write_drive(path, build_iso(spec))


class ConfigDriveStore:
    """Builds, keeps and removes the config drives under one image-store mount point."""

    log = Logger()

    def __init__(self, root: str, reactor: Any, pool: ThreadPool) -> None:
        self.root = os.path.abspath(root)
        self.directory = os.path.join(self.root, DIRECTORY)
        self._reactor = reactor
        self._pool = pool
        self._ready = False
        self._ready_lock = DeferredLock()
        self._locks: dict[str, DeferredLock] = {}

    def _relative(self, instance_name: str) -> str:
        return f"{DIRECTORY}/{instance_name}.iso"

    def _absolute(self, instance_name: str) -> str:
        return os.path.join(self.directory, f"{instance_name}.iso")

    async def _in_pool(self, function: Any, *args: Any) -> Any:
        return await deferToThreadPool(self._reactor, self._pool, function, *args)

    async def _prepare(self) -> None:
        """Create the directory and clear stale temporaries, once, before any write."""
        if self._ready:
            return
        await self._ready_lock.acquire()
        try:
            if not self._ready:
                removed = await self._in_pool(self._prepare_directory)
                for name in removed:
                    self.log.info("removed the stale temporary {name} from {directory}",
                                  name=name, directory=self.directory)
                self._ready = True
        finally:
            self._ready_lock.release()

    def _prepare_directory(self) -> list[str]:
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        return remove_stale_temporaries(self.directory)

    async def _serialised(self, instance_name: str, function: Any, *args: Any) -> Any:
        """Run `function(*args)` on the pool after earlier requests for the same instance.

        The instance's lock is taken before anything else is awaited, so requests queue in the
        order they were made (DeferredLock is FIFO).
        """
        lock = self._locks.setdefault(instance_name, DeferredLock())
        await lock.acquire()
        try:
            await self._prepare()
            return await self._in_pool(function, *args)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting and self._locks.get(instance_name) is lock:
                del self._locks[instance_name]

    async def put(self, instance_name: str, spec: DriveSpec) -> dict[str, Any]:
        """Build `spec` and store it as the instance's drive, replacing any previous one."""
        validate_instance_name(instance_name)
        size, sha256 = await self._serialised(instance_name, build_and_write,
                                              self._absolute(instance_name), spec)
        self.log.info("stored the config drive of {instance}: {size} bytes, sha256 {sha256}",
                      instance=instance_name, size=size, sha256=sha256)
        return {"instance_name": instance_name, "path": self._relative(instance_name), "size": size,
                "sha256": sha256, "location": "SECONDARY"}

    def path_of(self, instance_name: str) -> str | None:
        """The absolute path of the instance's drive, or None when it has none."""
        path = self._absolute(validate_instance_name(instance_name))
        return path if os.path.isfile(path) else None

    @staticmethod
    def _remove(path: str) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    async def delete(self, instance_name: str) -> bool:
        """Remove the instance's drive; False when there was none."""
        validate_instance_name(instance_name)
        deleted: bool = await self._serialised(instance_name, self._remove, self._absolute(instance_name))
        if deleted:
            self.log.info("deleted the config drive of {instance}", instance=instance_name)
        return deleted
