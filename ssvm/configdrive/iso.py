"""Mastering a drive's file tree into ISO bytes with pycdlib, deterministically.

The image matches what CloudStack gets from ``genisoimage -ldots -allow-lowercase -allow-multidot
-cache-inodes -l -J -r -V <label>`` as far as pycdlib allows: ISO 9660 at interchange level 4 (ISO
9660:1999, so lower-case, long and hyphenated names are kept in the primary tree too; files carry
the usual ``;1``), Rock Ridge 1.09 with ``-r``'s modes (files 0444, directories 0555, owner 0) and
Joliet level 3, all three naming every file with its real name. Identical files share one extent
(pycdlib hard links), so the ten OpenStack version folders cost a few directory records each.

Same input, same bytes: every timestamp on the image is the build's epoch (`DRIVE_EPOCH` unless
told otherwise) in UTC, whatever the wall clock and the TZ (see `_PinnedClock`). Mastered images
are kept per shape and refilled for the next drive of the same shape, which makes a typical
build about four times faster and changes no byte (see `_FrameCache`).
"""

from __future__ import annotations

import importlib
import io
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pycdlib

from ssvm.configdrive.content import DriveSpec, DriveTree, check_size, drive_files
from ssvm.configdrive.validation import MAX_DRIVE_SIZE, DriveError, DriveTooLarge

__all__ = ["DRIVE_EPOCH", "DriveError", "DriveTooLarge", "MAX_DRIVE_SIZE", "build_iso"]

DRIVE_EPOCH = 946684800.0
"""2000-01-01T00:00:00Z: the creation, modification and recording time of every drive."""

APPLICATION_ID = "SSVM CONFIG DRIVE (PYCDLIB)"
FILE_MODE = 0o100444
DIRECTORY_MODE = 0o040555
JOLIET_LABEL_LENGTH = 16
"""The Joliet volume identifier holds 16 UCS-2 characters; genisoimage truncates to that too."""


class _PinnedClock:
    """Stands in for the `time` module inside pycdlib, pinning time for the threads that ask.

    pycdlib stamps the volume descriptors, every directory record and every Rock Ridge TF entry
    with `time.time()` (modules `pycdlib.pycdlib` and `pycdlib.headervd`, at creation and again
    when the volume descriptors are recorded) and converts with `time.localtime()` (module
    `pycdlib.dates`), so by default an image depends on the wall clock and on TZ. It has no
    parameter for this, but it reaches the clock only through its modules' global name `time`.

    `install()` points that name, in those three modules only, at this object, once per process.
    For a thread inside `pinned(epoch)` `time()` answers `epoch` and `localtime()` answers UTC (so
    the recorded GMT offset is 0); every other thread, and every other attribute, goes to the real
    `time` module unchanged. The pin is thread-local, so builds on several pool threads, and other
    pycdlib users in the process, never see each other's clock; nothing is swapped in and out
    around a build, so there is no window in which another thread could observe a half-patched
    module.
    """

    MODULES = ("pycdlib.pycdlib", "pycdlib.headervd", "pycdlib.dates")

    def __init__(self) -> None:
        self._local = threading.local()
        self._install_lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        with self._install_lock:
            if self._installed:
                return
            for name in self.MODULES:
                module: ModuleType = importlib.import_module(name)
                if getattr(module, "time", None) is not _time:
                    raise RuntimeError(f"{name} no longer reads the clock through `time`; "
                                       "re-check how ssvm.configdrive.iso pins pycdlib's timestamps")
                module.time = self  # type: ignore[attr-defined]
            self._installed = True

    @contextmanager
    def pinned(self, epoch: float) -> Iterator[None]:
        self.install()
        previous = getattr(self._local, "epoch", None)
        self._local.epoch = epoch
        try:
            yield
        finally:
            self._local.epoch = previous

    def time(self) -> float:
        epoch: float | None = getattr(self._local, "epoch", None)
        if epoch is None:
            # Not a config-drive build: behave as the real module for this thread.
            return _time.time()  # noqa: TID251
        return epoch

    def localtime(self, seconds: float | None = None) -> _time.struct_time:
        epoch: float | None = getattr(self._local, "epoch", None)
        if epoch is None:
            return _time.localtime(seconds)
        return _time.gmtime(epoch if seconds is None else seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


_CLOCK = _PinnedClock()


def _iso_path(path: str) -> str:
    return f"/{path};1"


Shape = tuple[object, ...]


def _shape(tree: DriveTree, epoch: float) -> Shape:
    """What a reusable image must share with `tree`: everything but the file contents."""
    return (tree.label, epoch, tree.directories, tuple((f.path, f.same_as) for f in tree.files))


class _Frame:
    """A pycdlib image of one shape, and the buffers it reads the file contents from."""

    def __init__(self, tree: DriveTree) -> None:
        self.buffers: list[io.BytesIO] = []
        iso = self.iso = pycdlib.PyCdlib()
        iso.new(interchange_level=4, sys_ident="LINUX", vol_ident=tree.label[:JOLIET_LABEL_LENGTH],
                app_ident_str=APPLICATION_ID, joliet=3, rock_ridge="1.09")
        if len(tree.label) > JOLIET_LABEL_LENGTH:
            # pycdlib gives the primary and the Joliet descriptor the same label and refuses one
            # that does not fit Joliet's 16 characters; genisoimage keeps all 32 in the primary (and
            # the ISO 9660:1999 enhanced) descriptor, which is the one blkid reads.
            full = tree.label.encode("ascii").ljust(32, b" ")
            for descriptor in (iso.pvd, iso.enhanced_vd):
                if descriptor is not None:
                    descriptor.volume_identifier = full
        for directory in tree.directories:
            iso.add_directory(iso_path=f"/{directory}", rr_name=directory.rpartition("/")[2],
                              joliet_path=f"/{directory}", file_mode=DIRECTORY_MODE)
        for drive_file in tree.files:
            iso_path = _iso_path(drive_file.path)
            rr_name = drive_file.path.rpartition("/")[2]
            if drive_file.same_as is None:
                buffer = io.BytesIO(drive_file.data)
                self.buffers.append(buffer)
                iso.add_fp(buffer, len(drive_file.data), iso_path=iso_path, rr_name=rr_name,
                           joliet_path=f"/{drive_file.path}", file_mode=FILE_MODE)
            else:
                first = _iso_path(drive_file.same_as)
                iso.add_hard_link(iso_old_path=first, iso_new_path=iso_path, rr_name=rr_name)
                iso.add_hard_link(iso_old_path=first, joliet_new_path=f"/{drive_file.path}")

    def refill(self, tree: DriveTree) -> None:
        """Point every file of this image (same shape as `tree`) at `tree`'s contents."""
        self.buffers = []
        for drive_file in tree.files:
            if drive_file.same_as is None:
                buffer = io.BytesIO(drive_file.data)
                self.buffers.append(buffer)
                self.iso.update_file_contents_fp(buffer, len(drive_file.data),
                                                 iso_path=_iso_path(drive_file.path))

    def write(self) -> bytes:
        out = io.BytesIO()
        self.iso.write_fp(out)
        return out.getvalue()

    def forget_contents(self) -> None:
        """Empty the buffers pycdlib holds, so a kept image retains no password or user data."""
        for buffer in self.buffers:
            buffer.seek(0)
            buffer.truncate()
        self.buffers = []


class _FrameCache:
    """Mastered images kept for reuse by shape, least recently used dropped first.

    Mastering spends most of its time creating the ~200 directory records (ISO 9660 + Rock Ridge,
    Joliet) of the fixed tree; drives of one cloud mostly share their shape (the same metadata
    keys, password and user data present or not), so a kept image only needs its file contents
    swapped (`update_file_contents_fp`, which pycdlib offers for this) before the next write. A
    frame is used by one thread at a time: `take` removes it from the cache, `give` returns it.
    A kept frame holds no file contents (`forget_contents`) and about 300 KiB of pycdlib
    objects; the epoch is part of the shape because the dates are fixed when records are made.
    """

    def __init__(self, max_frames: int = 16) -> None:
        self.max_frames = max_frames
        self._lock = threading.Lock()
        self._frames: OrderedDict[Shape, list[_Frame]] = OrderedDict()

    def take(self, shape: Shape) -> _Frame | None:
        with self._lock:
            frames = self._frames.get(shape)
            if not frames:
                return None
            self._frames.move_to_end(shape)
            frame = frames.pop()
            if not frames:
                del self._frames[shape]
            return frame

    def give(self, shape: Shape, frame: _Frame) -> None:
        with self._lock:
            self._frames.setdefault(shape, []).append(frame)
            self._frames.move_to_end(shape)
            while sum(len(frames) for frames in self._frames.values()) > self.max_frames:
                oldest = next(iter(self._frames))
                self._frames[oldest].pop(0)
                if not self._frames[oldest]:
                    del self._frames[oldest]

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


_FRAMES = _FrameCache()


def _master(tree: DriveTree, epoch: float, reuse: bool) -> bytes:
    shape = _shape(tree, epoch)
    frame = _FRAMES.take(shape) if reuse else None
    with _CLOCK.pinned(epoch):
        if frame is None:
            frame = _Frame(tree)
        else:
            frame.refill(tree)
        image = frame.write()
    # Only an image that was written without error goes back: a failure may leave it half-updated.
    frame.forget_contents()
    if reuse:
        _FRAMES.give(shape, frame)
    return image


def build_iso(source: DriveSpec | DriveTree, *, epoch: float = DRIVE_EPOCH, reuse: bool = True) -> bytes:
    """The ISO image of a drive, built in memory; raises `DriveTooLarge` beyond 64 MiB.

    CPU-bound (a few milliseconds for a typical drive): call it on a thread pool; it is safe on
    several threads at once. With `reuse` (the default) it masters into a kept image of the same
    shape when there is one (see `_FrameCache`); the bytes are the same either way.
    """
    tree = drive_files(source) if isinstance(source, DriveSpec) else source
    check_size(tree)
    image = _master(tree, epoch, reuse)
    if len(image) > MAX_DRIVE_SIZE:
        raise DriveTooLarge(f"the drive's image is {len(image)} bytes, more than the {MAX_DRIVE_SIZE} "
                            "bytes (64 MiB) a config drive may hold")
    return image
