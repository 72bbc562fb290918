"""Mastering a drive's file tree into ISO bytes with pycdlib, deterministically.

The image matches what CloudStack gets from ``genisoimage -ldots -allow-lowercase -allow-multidot
-cache-inodes -l -J -r -V <label>`` as far as pycdlib allows: ISO 9660 at interchange level 4 (ISO
9660:1999, so lower-case, long and hyphenated names are kept in the primary tree too; files carry
the usual ``;1``), Rock Ridge 1.09 with ``-r``'s modes (files 0444, directories 0555, owner 0) and
Joliet level 3, all three naming every file with its real name. Identical files share one extent
(pycdlib hard links), so the ten OpenStack version folders cost a few directory records each.

Same input, same bytes: every timestamp on the image is the build's epoch (`DRIVE_EPOCH` unless
told otherwise) in UTC, whatever the wall clock and the TZ (see `_PinnedClock`).

Reuse changes no byte. Mastered images are kept per shape (the files present, not their contents)
and refilled for the next drive of the same shape, which makes pycdlib's work about four times
faster (see `_FrameCache`). Beyond that, the bytes of a mastered image are kept per layout (shape
plus the number of sectors of every file) without its file sectors; a drive of a known layout is
then written by copying them and putting in its files and lengths, about a hundred times faster
than pycdlib (see `_Template`). In a realistic mix nearly every drive has a layout and even a
shape of its own (its metadata keys, its user data size, which values happen to be equal), so
mastered images are also taken apart into their directories, the records in them and what lies
outside them (see `_PartsCache`); a drive of a new shape whose directories, or records, were all
seen before is composed from those parts with its files laid out as pycdlib lays them out,
about twenty times faster than pycdlib.
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


SECTOR = 2048
_FIRST_DESCRIPTOR = 16
_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
_LENGTH_FIELD = 10
"""Offset of a directory record's data length: 32 bits little-endian, then the same big-endian."""

Sizes = tuple[int, ...]


def _sectors(length: int) -> int:
    return -(-length // SECTOR)


def _sizes(tree: DriveTree) -> Sizes:
    """The number of sectors of each distinct file, in tree order: with the shape, the layout."""
    return tuple(_sectors(len(f.data)) for f in tree.files if f.same_as is None)


def _file_records(image: bytes) -> Iterator[tuple[str, int, int]]:
    """(path, record offset, extent) of every file's directory record, in every directory tree the
    volume descriptors point at (the primary one, shared by the ISO 9660:1999 descriptor, and
    Joliet's), each tree once."""
    roots: dict[int, tuple[int, bool]] = {}
    sector = _FIRST_DESCRIPTOR
    while (sector + 1) * SECTOR <= len(image):
        descriptor = image[sector * SECTOR: (sector + 1) * SECTOR]
        if descriptor[1:6] != b"CD001" or descriptor[0] == 255:
            break
        if descriptor[0] in (1, 2):
            extent = int.from_bytes(descriptor[158:162], "little")
            size = int.from_bytes(descriptor[166:170], "little")
            joliet = descriptor[0] == 2 and descriptor[88:91] in _JOLIET_ESCAPES
            roots.setdefault(extent, (size, joliet))
        sector += 1
    for extent, (size, joliet) in roots.items():
        yield from _directory_records(image, "", extent, size, joliet, 0)


def _record_offsets(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The offset and length of each directory record in `data[start:end]` (`start` on a sector
    boundary), stepping over the zero padding that ends a sector. `data` is read as the walk goes,
    so a caller may change a record's other bytes while walking."""
    position = start
    while position < end:
        length = data[position]
        if length == 0:  # the rest of this sector is padding
            position = (position // SECTOR + 1) * SECTOR
            continue
        yield position, length
        position += length


def _directory_records(image: bytes, parent: str, extent: int, size: int, joliet: bool,
                       depth: int) -> Iterator[tuple[str, int, int]]:
    if depth > 8:
        raise ValueError("directory tree too deep")
    start = extent * SECTOR
    end = start + size
    if end > len(image):
        raise ValueError("directory beyond the image")
    for record, _length in _record_offsets(image, start, end):
        name_length = image[record + 32]
        identifier = image[record + 33: record + 33 + name_length]
        if identifier in (b"\x00", b"\x01"):  # the directory itself, its parent
            continue
        name = identifier.decode("utf-16-be" if joliet else "ascii").removesuffix(";1")
        path = f"{parent}/{name}" if parent else name
        child = int.from_bytes(image[record + 2: record + 6], "little")
        if image[record + 25] & 0x02:
            child_size = int.from_bytes(image[record + 10: record + 14], "little")
            yield from _directory_records(image, path, child, child_size, joliet, depth + 1)
        else:
            yield path, record, child


class _Template:
    """A mastered image of one layout (shape and sector count of every distinct file) with every
    file's sectors left out and every file length zeroed, ready to take another drive's contents.

    When only the file contents differ and each distinct file still needs the same number of
    sectors, pycdlib lays out and writes exactly the same bytes except in two places: the file
    data (zero-padded to its last sector) and the data length in each directory record of the
    file (primary and Joliet trees, hard links included). `fill` writes those two into a copy of
    the kept bytes, in a fraction of the time pycdlib takes to write the image again; the result
    is byte for byte a fresh build (tests compare them on randomised drives). The kept bytes are
    the image outside the file sectors, so a template holds no drive's contents.
    """

    def __init__(self, size: int, chunks: list[tuple[int, bytes]], extents: list[int],
                 length_fields: list[list[int]]) -> None:
        self.size = size
        self.chunks = chunks
        self.extents = extents
        self.length_fields = length_fields

    @property
    def kept_bytes(self) -> int:
        return sum(len(chunk) for _, chunk in self.chunks)

    @classmethod
    def from_image(cls, tree: DriveTree, image: bytes) -> _Template | None:
        """The template of `image`, just mastered from `tree`; None if the image is not laid out as
        expected (then drives of its layout are always mastered by pycdlib)."""
        distinct: dict[str, int] = {}
        contents: list[bytes] = []
        for drive_file in tree.files:
            if drive_file.same_as is None:
                distinct[drive_file.path] = len(contents)
                contents.append(drive_file.data)
        owner = {f.path: distinct[f.path if f.same_as is None else f.same_as] for f in tree.files}
        extents: list[int | None] = [None] * len(contents)
        length_fields: list[list[int]] = [[] for _ in contents]
        seen: dict[str, int] = {}
        try:
            for path, record, extent in _file_records(image):
                index = owner.get(path)
                if index is None or int.from_bytes(image[record + 10: record + 14], "little") != len(
                        contents[index]):
                    return None
                if contents[index]:
                    if extents[index] not in (None, extent):
                        return None
                    extents[index] = extent
                seen[path] = seen.get(path, 0) + 1
                length_fields[index].append(record + _LENGTH_FIELD)
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        # Every file once in each of the two trees (primary and Joliet), nothing else.
        if set(seen) != set(owner) or set(seen.values()) != {2}:
            return None
        regions = []
        for index, data in enumerate(contents):
            if data:
                location = extents[index]
                if location is None:
                    return None
                start, end = location * SECTOR, (location + _sectors(len(data))) * SECTOR
                if end > len(image) or image[start: start + len(data)] != data or any(
                        image[start + len(data): end]):
                    return None
                regions.append((start, end))
        regions.sort()
        chunks: list[tuple[int, bytes]] = []
        position = 0
        for start, end in regions:
            if start < position:
                return None  # overlapping extents: not a layout this class understands
            if start > position:
                chunks.append((position, image[position:start]))
            position = end
        if position < len(image):
            chunks.append((position, image[position:]))
        # Zero the lengths too: the template keeps nothing of the drive it was made from.
        kept: list[tuple[int, bytes]] = []
        offsets = sorted(offset for fields in length_fields for offset in fields)
        for chunk_start, chunk in chunks:
            inside = [o - chunk_start for o in offsets if chunk_start <= o < chunk_start + len(chunk)]
            if inside:
                mutable = bytearray(chunk)
                for offset in inside:
                    mutable[offset: offset + 8] = bytes(8)
                chunk = bytes(mutable)
            kept.append((chunk_start, chunk))
        return cls(len(image), kept, [e if e is not None else 0 for e in extents], length_fields)

    def fill(self, tree: DriveTree) -> bytes:
        """The image of `tree`, which has this template's layout."""
        image = bytearray(self.size)
        for start, chunk in self.chunks:
            image[start: start + len(chunk)] = chunk
        index = 0
        for drive_file in tree.files:
            if drive_file.same_as is not None:
                continue
            data = drive_file.data
            start = self.extents[index] * SECTOR
            image[start: start + len(data)] = data
            length = len(data)
            field = length.to_bytes(4, "little") + length.to_bytes(4, "big")
            for offset in self.length_fields[index]:
                image[offset: offset + 8] = field
            index += 1
        return bytes(image)


class _TemplateCache:
    """Templates by layout, least recently used dropped first, at most `max_templates` of them and
    `max_bytes` kept in all (a template keeps the image's directories and descriptors, about
    120 KiB for a typical drive). Templates never change once made, so threads share them."""

    def __init__(self, max_templates: int = 32, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_templates = max_templates
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._templates: OrderedDict[tuple[Shape, Sizes], _Template] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[Shape, Sizes]) -> _Template | None:
        with self._lock:
            template = self._templates.get(key)
            if template is not None:
                self._templates.move_to_end(key)
            return template

    def put(self, key: tuple[Shape, Sizes], template: _Template) -> None:
        if template.kept_bytes > self.max_bytes:
            return
        with self._lock:
            previous = self._templates.pop(key, None)
            if previous is not None:
                self._bytes -= previous.kept_bytes
            self._templates[key] = template
            self._bytes += template.kept_bytes
            while len(self._templates) > self.max_templates or self._bytes > self.max_bytes:
                _, dropped = self._templates.popitem(last=False)
                self._bytes -= dropped.kept_bytes

    def clear(self) -> None:
        with self._lock:
            self._templates.clear()
            self._bytes = 0


_TEMPLATES = _TemplateCache()


_VD_SPACE_SIZE = 80
"""Offset in a volume descriptor of the volume space size (32 bits little-endian, then big-endian)."""
_EXTENT_FIELD = 2
"""Offset of a directory record's extent; its data length follows at `_LENGTH_FIELD`."""

Node = tuple[bool, str]
"""A directory of one tree: (Joliet?, path; "" for the root)."""
Patch = tuple[int, bool, str]
"""A directory record to fill in: (offset in its directory, names a directory?, path named)."""


def _both(value: int) -> bytes:
    return value.to_bytes(4, "little") + value.to_bytes(4, "big")


class _Piece:
    """One directory's sectors as pycdlib writes them, with the extent and length of every record
    zeroed (`patches` says which directory or file each one names) and, in the primary root's `.`,
    the location of the Rock Ridge ER continuation area zeroed too (`ce`)."""

    __slots__ = ("data", "patches", "ce")

    def __init__(self, data: bytes, patches: tuple[Patch, ...], ce: int | None) -> None:
        self.data = data
        self.patches = patches
        self.ce = ce


class _Skeleton:
    """What the image holds outside the directories and the files, for one label, epoch, directory
    set and size of every directory: the system area, the volume descriptors (volume space size
    zeroed), the path tables and the ER sector (`head`, directory sectors zeroed), where each
    directory goes, and the first sector of file data."""

    __slots__ = ("head", "directories", "primary_order", "er_extent", "files_start")

    def __init__(self, head: bytes, directories: dict[Node, tuple[int, int]], er_extent: int,
                 files_start: int) -> None:
        self.head = head
        self.directories = directories
        self.primary_order = tuple(sorted((node for node in directories if not node[0]),
                                          key=lambda node: directories[node][0]))
        self.er_extent = er_extent
        self.files_start = files_start


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


Member = tuple[Shape, bool, str]
"""A record of a directory: (its `_Record` key, names a directory?, path named)."""


def _members(tree: DriveTree, epoch: float) -> dict[Node, tuple[Shape, tuple[Member, ...]]]:
    """Every directory's `_Piece` key and its records (`.` and `..` first, then the children in
    tree order). A piece's bytes depend, besides extents and lengths, on its children's names and
    kinds, on how many names each file's content has, on the directory set (Rock Ridge link
    counts) and on the epoch (the dates); a record's on the same for its one name."""
    groups: dict[str, int] = {}
    for drive_file in tree.files:
        owner = drive_file.path if drive_file.same_as is None else drive_file.same_as
        groups[owner] = groups.get(owner, 0) + 1
    directories = tree.directories
    children: dict[str, list[tuple[str, object]]] = {"": []}
    for directory in directories:
        children[directory] = []
        children.setdefault(_parent(directory), []).append((directory, None))
    for drive_file in tree.files:
        owner = drive_file.path if drive_file.same_as is None else drive_file.same_as
        children.setdefault(_parent(drive_file.path), []).append(
            (drive_file.path, (drive_file.same_as is None, groups[owner])))
    members: dict[Node, tuple[Shape, tuple[Member, ...]]] = {}
    for path, entries in children.items():
        for joliet in (False, True):
            records: list[Member] = [((epoch, joliet, ".", path, directories), True, path),
                                     ((epoch, joliet, "..", path, directories), True, _parent(path))]
            for child, link in entries:
                if link is None:
                    records.append(((epoch, joliet, "/", child, directories), True, child))
                else:
                    records.append(((epoch, joliet, child.rpartition("/")[2], link), False, child))
            key = (epoch, joliet, path, directories, tuple(entries))
            members[(joliet, path)] = (key, tuple(records))
    return members


def _piece_keys(tree: DriveTree, epoch: float) -> dict[Node, Shape]:
    return {node: key for node, (key, _) in _members(tree, epoch).items()}


class _Record:
    """One directory record as pycdlib writes it, extent, length and continuation zeroed."""

    __slots__ = ("data", "identifier", "ce")

    def __init__(self, data: bytes, identifier: bytes, ce: int | None) -> None:
        self.data = data
        self.identifier = identifier
        self.ce = ce


def _assemble(records: list[tuple[_Record, bool, str]]) -> _Piece:
    """A directory from its records, as pycdlib orders and packs them: `.`, `..`, then the
    children by identifier, byte for byte; a record never crosses a sector; at least one sector."""
    ordered = records[:2] + sorted(records[2:], key=lambda member: member[0].identifier)
    data = bytearray()
    patches: list[Patch] = []
    ce: int | None = None
    for record, is_directory, target in ordered:
        used = len(data) % SECTOR
        if used and used + len(record.data) > SECTOR:
            data += bytes(SECTOR - used)
        if record.ce is not None:
            ce = len(data) + record.ce
        patches.append((len(data), is_directory, target))
        data += record.data
    data += bytes(-len(data) % SECTOR)
    return _Piece(bytes(data), tuple(patches), ce)


def _skeleton_key(tree: DriveTree, epoch: float, pieces: dict[Node, _Piece]) -> Shape:
    return (tree.label, epoch, tree.directories,
            tuple(sorted((node, len(piece.data)) for node, piece in pieces.items())))


def _compose(tree: DriveTree, pieces: dict[Node, _Piece], skeleton: _Skeleton) -> bytes:
    """The image of `tree` from its directories' pieces and its skeleton: files are laid out after
    the directories as pycdlib does, each distinct non-empty file once, in the order the primary
    tree names them breadth first (directories by extent, records in directory order); an empty
    file has extent 0."""
    data: dict[str, bytes] = {}
    owner: dict[str, str] = {}
    for drive_file in tree.files:
        if drive_file.same_as is None:
            data[drive_file.path] = drive_file.data
            owner[drive_file.path] = drive_file.path
        else:
            owner[drive_file.path] = drive_file.same_as
    extents: dict[str, int] = {}
    extent = skeleton.files_start
    for node in skeleton.primary_order:
        for _, is_directory, path in pieces[node].patches:
            if is_directory:
                continue
            first = owner[path]
            if first not in extents and data[first]:
                extents[first] = extent
                extent += _sectors(len(data[first]))
    image = bytearray(extent * SECTOR)
    image[: len(skeleton.head)] = skeleton.head
    space = _both(extent)
    sector = _FIRST_DESCRIPTOR
    while image[sector * SECTOR] in (1, 2):
        offset = sector * SECTOR + _VD_SPACE_SIZE
        image[offset: offset + 8] = space
        sector += 1
    directories = skeleton.directories
    for node, (location, size) in directories.items():
        piece = pieces[node]
        base = location * SECTOR
        image[base: base + size] = piece.data
        joliet = node[0]
        for offset, is_directory, path in piece.patches:
            if is_directory:
                target, length = directories[(joliet, path)]
            else:
                first = owner[path]
                target, length = extents.get(first, 0), len(data[first])
            field = base + offset + _EXTENT_FIELD
            image[field: field + 16] = _both(target) + _both(length)
        if piece.ce is not None:
            image[base + piece.ce: base + piece.ce + 8] = _both(skeleton.er_extent)
    for first, location in extents.items():
        content = data[first]
        image[location * SECTOR: location * SECTOR + len(content)] = content
    return bytes(image)


Parts = tuple[dict[Node, _Piece], _Skeleton, dict[Shape, _Record]]


def _learn(tree: DriveTree, epoch: float, image: bytes) -> Parts | None:
    """The pieces, the skeleton and the records of `image`, just mastered by pycdlib from `tree`;
    None unless composing them again gives exactly `image` (then such drives are always mastered
    by pycdlib). The records are left out unless `_assemble` gives every piece back from them."""
    try:
        return _learn_checked(tree, epoch, image)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError):
        return None


def _learn_checked(tree: DriveTree, epoch: float, image: bytes) -> Parts | None:
    roots: dict[bool, tuple[int, int]] = {}
    sector = _FIRST_DESCRIPTOR
    while True:
        descriptor = image[sector * SECTOR: (sector + 1) * SECTOR]
        if len(descriptor) < SECTOR or descriptor[1:6] != b"CD001":
            return None
        if descriptor[0] == 255:
            break
        if descriptor[0] not in (1, 2):
            return None
        root = (int.from_bytes(descriptor[158:162], "little"), int.from_bytes(descriptor[166:170], "little"))
        joliet = descriptor[0] == 2 and descriptor[88:91] in _JOLIET_ESCAPES
        if roots.setdefault(joliet, root) != root:
            return None
        if int.from_bytes(descriptor[_VD_SPACE_SIZE: _VD_SPACE_SIZE + 4], "little") * SECTOR != len(image):
            return None
        sector += 1
    if set(roots) != {False, True}:
        return None
    members = _members(tree, epoch)
    keys = {node: key for node, (key, _) in members.items()}
    pieces: dict[Node, _Piece] = {}
    records: dict[Node, dict[tuple[bool, str, int], _Record]] = {}
    directories: dict[Node, tuple[int, int]] = {}
    file_extents: list[int] = []
    er_extent: int | None = None
    for joliet, (root_extent, root_size) in roots.items():
        queue = [("", root_extent, root_size)]
        while queue:
            path, location, size = queue.pop(0)
            node = (joliet, path)
            if node in directories or node not in keys or size % SECTOR:
                return None
            directories[node] = (location, size)
            start = location * SECTOR
            raw = bytearray(image[start: start + size])
            if len(raw) != size:
                return None
            patches: list[Patch] = []
            ce: int | None = None
            found = records[node] = {}
            for position, length in _record_offsets(raw, 0, size):
                name_length = raw[position + 32]
                identifier = bytes(raw[position + 33: position + 33 + name_length])
                child = int.from_bytes(raw[position + 2: position + 6], "little")
                child_size = int.from_bytes(raw[position + 10: position + 14], "little")
                is_directory = bool(raw[position + 25] & 0x02)
                kind = 0 if identifier == b"\x00" else 1 if identifier == b"\x01" else 2
                if kind == 0:
                    target = path
                elif kind == 1:
                    target = _parent(path)
                else:
                    name = identifier.decode("utf-16-be" if joliet else "ascii").removesuffix(";1")
                    target = f"{path}/{name}" if path else name
                    if is_directory:
                        queue.append((target, child, child_size))
                    elif child_size:
                        file_extents.append(child)
                # Rock Ridge: only the primary root's `.` may continue elsewhere (the ER entry).
                use = 33 + name_length + (1 - name_length % 2)
                while use + 4 <= length:
                    signature = bytes(raw[position + use: position + use + 2])
                    entry_length = raw[position + use + 2]
                    if entry_length < 4:
                        break
                    if signature == b"CE":
                        if joliet or path or identifier != b"\x00" or ce is not None:
                            return None
                        ce = position + use + 4
                        er_extent = int.from_bytes(raw[ce: ce + 4], "little")
                        raw[ce: ce + 8] = bytes(8)
                    use += entry_length
                patches.append((position, is_directory, target))
                raw[position + _EXTENT_FIELD: position + _EXTENT_FIELD + 16] = bytes(16)
                found[(is_directory, target, kind)] = _Record(
                    bytes(raw[position: position + length]), identifier,
                    None if ce is None or not position < ce < position + length else ce - position)
            pieces[node] = _Piece(bytes(raw), tuple(patches), ce)
    if set(pieces) != set(keys) or er_extent is None:
        return None
    end_of_directories = max(location * SECTOR + size for location, size in directories.values())
    files_start = min(file_extents, default=len(image) // SECTOR)
    if not end_of_directories <= er_extent * SECTOR < files_start * SECTOR:
        return None
    head = bytearray(image[: files_start * SECTOR])
    for location, size in directories.values():
        head[location * SECTOR: location * SECTOR + size] = bytes(size)
    sector = _FIRST_DESCRIPTOR
    while head[sector * SECTOR] in (1, 2):
        head[sector * SECTOR + _VD_SPACE_SIZE: sector * SECTOR + _VD_SPACE_SIZE + 8] = bytes(8)
        sector += 1
    skeleton = _Skeleton(bytes(head), directories, er_extent, files_start)
    if _compose(tree, pieces, skeleton) != image:
        return None
    learned: dict[Shape, _Record] = {}
    for node, (_, node_members) in members.items():
        found = records[node]
        chosen = []
        for index, (record_key, is_directory, target) in enumerate(node_members):
            record = found.get((is_directory, target, min(index, 2)))
            if record is None:
                return pieces, skeleton, {}
            chosen.append((record, is_directory, target))
            learned[record_key] = record
        piece, assembled = pieces[node], _assemble(chosen)
        if (assembled.data, assembled.patches, assembled.ce) != (piece.data, piece.patches, piece.ce):
            return pieces, skeleton, {}
    return pieces, skeleton, learned


class _PartsCache:
    """Directory pieces by `_piece_keys`, directory records by their `_members` key and skeletons
    by `_skeleton_key`, least recently used dropped first, at most `max_bytes` kept in all (a
    piece or a record holds names and dates, no file contents or lengths; a skeleton the
    descriptors, path tables and ER sector, about 120 KiB mostly zero).

    A drive whose every directory is known, as a piece or as records (ordered and packed as
    pycdlib does, see `_assemble`), and whose skeleton is known, is composed from them without
    pycdlib (see `_compose`), whatever its file sizes and contents. Parts are learnt from each
    image pycdlib masters, and only when they give that image back byte for byte (records only
    when they give every directory back). Parts never change once made; threads share them."""

    def __init__(self, max_pieces: int = 1024, max_skeletons: int = 32, max_records: int = 4096,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_pieces = max_pieces
        self.max_records = max_records
        self.max_skeletons = max_skeletons
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pieces: OrderedDict[Shape, _Piece] = OrderedDict()
        self._skeletons: OrderedDict[Shape, _Skeleton] = OrderedDict()
        self._records: OrderedDict[Shape, _Record] = OrderedDict()
        self._bytes = 0

    def compose(self, tree: DriveTree, epoch: float) -> bytes | None:
        """The image of `tree` composed from known parts, or None when one is missing."""
        members = _members(tree, epoch)
        pieces: dict[Node, _Piece] = {}
        with self._lock:
            for node, (key, node_members) in members.items():
                piece = self._pieces.get(key)
                if piece is None:
                    piece = self._assemble(node_members)
                    if piece is None:
                        self._trim()
                        return None
                    self._put_piece(key, piece)
                else:
                    self._pieces.move_to_end(key)
                pieces[node] = piece
            self._trim()
            skeleton_key = _skeleton_key(tree, epoch, pieces)
            skeleton = self._skeletons.get(skeleton_key)
            if skeleton is None:
                return None
            self._skeletons.move_to_end(skeleton_key)
        return _compose(tree, pieces, skeleton)

    def _assemble(self, node_members: tuple[Member, ...]) -> _Piece | None:
        """A directory never seen as a whole, from records seen in other directories."""
        chosen = []
        for record_key, is_directory, target in node_members:
            record = self._records.get(record_key)
            if record is None:
                return None
            self._records.move_to_end(record_key)
            chosen.append((record, is_directory, target))
        return _assemble(chosen)

    def _put_piece(self, key: Shape, piece: _Piece) -> None:
        previous = self._pieces.pop(key, None)
        if previous is not None:
            self._bytes -= len(previous.data)
        self._pieces[key] = piece
        self._bytes += len(piece.data)

    def learn(self, tree: DriveTree, epoch: float, image: bytes) -> None:
        parts = _learn(tree, epoch, image)
        if parts is None:
            return
        pieces, skeleton, records = parts
        keys = _piece_keys(tree, epoch)
        skeleton_key = _skeleton_key(tree, epoch, pieces)
        with self._lock:
            for node, piece in pieces.items():
                self._put_piece(keys[node], piece)
            for record_key, record in records.items():
                previous_record = self._records.pop(record_key, None)
                if previous_record is not None:
                    self._bytes -= len(previous_record.data)
                self._records[record_key] = record
                self._bytes += len(record.data)
            previous_skeleton = self._skeletons.pop(skeleton_key, None)
            if previous_skeleton is not None:
                self._bytes -= len(previous_skeleton.head)
            self._skeletons[skeleton_key] = skeleton
            self._bytes += len(skeleton.head)
            self._trim()

    def _trim(self) -> None:
        while len(self._records) > self.max_records or (self._bytes > self.max_bytes and self._records):
            _, dropped_record = self._records.popitem(last=False)
            self._bytes -= len(dropped_record.data)
        while len(self._pieces) > self.max_pieces or (self._bytes > self.max_bytes and self._pieces):
            _, dropped = self._pieces.popitem(last=False)
            self._bytes -= len(dropped.data)
        while len(self._skeletons) > self.max_skeletons or (self._bytes > self.max_bytes and self._skeletons):
            _, dropped_skeleton = self._skeletons.popitem(last=False)
            self._bytes -= len(dropped_skeleton.head)

    def clear(self) -> None:
        with self._lock:
            self._pieces.clear()
            self._skeletons.clear()
            self._records.clear()
            self._bytes = 0


_PARTS = _PartsCache()


def _master(tree: DriveTree, epoch: float, reuse: bool) -> bytes:
    shape = _shape(tree, epoch)
    if not reuse:
        return _master_with_pycdlib(tree, epoch, shape, reuse)
    key = (shape, _sizes(tree))
    template = _TEMPLATES.get(key)
    if template is not None:
        return template.fill(tree)
    image = _PARTS.compose(tree, epoch)
    if image is not None:
        return image
    image = _master_with_pycdlib(tree, epoch, shape, reuse)
    _PARTS.learn(tree, epoch, image)
    template = _Template.from_image(tree, image)
    if template is not None:
        _TEMPLATES.put(key, template)
    return image


def _master_with_pycdlib(tree: DriveTree, epoch: float, shape: Shape, reuse: bool) -> bytes:
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

    CPU-bound (about ten milliseconds for a typical drive mastered by pycdlib, a tenth of one for
    a drive of a known layout, a few tenths composed from known parts): call it on a thread
    pool; it is safe on several threads at once. With `reuse` (the default) it fills the kept
    bytes of a drive of the same layout when there are some (see `_Template`), else composes the
    drive from known directories and records (see `_PartsCache`), else masters into a kept image
    of the same shape when there is one (see `_FrameCache`); the bytes are the same either way.
    Without `reuse` pycdlib masters the drive from scratch.
    """
    tree = drive_files(source) if isinstance(source, DriveSpec) else source
    check_size(tree)
    image = _master(tree, epoch, reuse)
    if len(image) > MAX_DRIVE_SIZE:
        raise DriveTooLarge(f"the drive's image is {len(image)} bytes, more than the {MAX_DRIVE_SIZE} "
                            "bytes (64 MiB) a config drive may hold")
    return image
