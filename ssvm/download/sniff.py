"""Image-format detection from the first and last bytes, against the declared format (pure).

`check_head(declared, head)` runs as soon as `HEAD_SIZE` bytes have arrived (or at the end of a
shorter body) and raises `FormatRefused` early, before the rest is fetched. `inspect(declared,
head, tail, size)` runs on the complete file and returns the `ImageInfo` (virtual size).

Rules:

* compressed content (gzip, bzip2, xz, zstd, zip) is refused for every format: this appliance does
  not decompress (a decompression bomb is not bounded by the download size);
* qcow2: magic `QFI\\xfb`, version 2 or 3; refused with a backing file (offset at byte 8 non-zero,
  or a backing-format header extension), an external data file (v3 incompatible feature bit 2 or
  its header extension) or the "corrupt" bit; virtual size = big-endian u64 at byte 24;
* vhd: a dynamic disk has the `conectix` footer copy at byte 0, a fixed disk only the footer in
  the last 512 bytes; differencing disks (type 4) reference a parent and are refused; virtual size
  = the footer's current size;
* ova: a POSIX/GNU tar (`ustar` at byte 257);
* iso: `CD001` at byte 32769; virtual size = physical size;
* raw: refused if the content is any of the above container formats, VHDX or VMDK; virtual size =
  physical size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ssvm.download.errors import FormatRefused

FORMATS = ("qcow2", "raw", "vhd", "ova", "iso")
HEAD_SIZE = 64 * 1024
TAIL_SIZE = 512

QCOW2_MAGIC = b"QFI\xfb"
VHD_COOKIE = b"conectix"
ISO_OFFSET = 32769
ISO_MAGIC = b"CD001"
TAR_OFFSET = 257
TAR_MAGIC = b"ustar"

_QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
_QCOW2_EXT_DATA_FILE = 0x44415441
_QCOW2_INCOMPAT_CORRUPT = 1 << 1
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_VHD_FIXED, _VHD_DYNAMIC, _VHD_DIFFERENCING = 2, 3, 4


@dataclass(frozen=True)
class ImageInfo:
    format: str
    virtual_size: int


def compression(head: bytes) -> str | None:
    """The compression format the content starts with, if any."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def describe(head: bytes, tail: bytes = b"") -> str:
    """A short name for what the content looks like, for error messages."""
    packed = compression(head)
    if packed is not None:
        return f"{packed}-compressed data"
    if head.startswith(QCOW2_MAGIC):
        return "a qcow2 image"
    if head.startswith(VHD_COOKIE) or tail[-TAIL_SIZE:].startswith(VHD_COOKIE):
        return "a VHD image"
    if head.startswith(b"vhdxfile"):
        return "a VHDX image"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "a VMDK image"
    if head[TAR_OFFSET:TAR_OFFSET + 5] == TAR_MAGIC:
        return "a tar archive"
    if head[ISO_OFFSET:ISO_OFFSET + 5] == ISO_MAGIC:
        return "an ISO 9660 image"
    if not head:
        return "empty"
    return "unrecognised data"


def _mismatch(declared: str, head: bytes, tail: bytes = b"") -> FormatRefused:
    return FormatRefused(f"declared {declared} but the content is {describe(head, tail)}")


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from(">I", data, offset)[0]
    return value


def _u64(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from(">Q", data, offset)[0]
    return value


def qcow2_virtual_size(head: bytes) -> int:
    """Check a qcow2 header (see the module docstring) and return its virtual size."""
    if len(head) < 72:
        raise FormatRefused("qcow2 header is truncated")
    version = _u32(head, 4)
    if version not in (2, 3):
        raise FormatRefused(f"qcow2 version {version} is not supported")
    if _u64(head, 8) != 0:
        raise FormatRefused("qcow2 image has a backing file (it would reference a file on the host)")
    cluster_bits = _u32(head, 20)
    if not 9 <= cluster_bits <= 21:
        raise FormatRefused(f"qcow2 header is corrupt (cluster bits {cluster_bits})")
    size = _u64(head, 24)
    extensions_at = 72
    if version == 3:
        if len(head) < 104:
            raise FormatRefused("qcow2 header is truncated")
        incompatible = _u64(head, 72)
        if incompatible & _QCOW2_INCOMPAT_DATA_FILE:
            raise FormatRefused("qcow2 image uses an external data file (it would reference a file on the host)")
        if incompatible & _QCOW2_INCOMPAT_CORRUPT:
            raise FormatRefused("qcow2 image is marked corrupt")
        extensions_at = _u32(head, 100)
        if extensions_at < 104:
            raise FormatRefused("qcow2 header is corrupt (header length)")
    _check_qcow2_extensions(head, extensions_at, min(len(head), 1 << cluster_bits))
    if size <= 0:
        raise FormatRefused("qcow2 image has a virtual size of 0")
    return size


def _check_qcow2_extensions(head: bytes, offset: int, end: int) -> None:
    while offset + 8 <= end:
        kind, length = _u32(head, offset), _u32(head, offset + 4)
        if kind == 0:
            return
        if kind == _QCOW2_EXT_BACKING_FORMAT:
            raise FormatRefused("qcow2 image has a backing file format extension")
        if kind == _QCOW2_EXT_DATA_FILE:
            raise FormatRefused("qcow2 image names an external data file")
        offset += 8 + (length + 7) // 8 * 8


def _vhd_footer(block: bytes) -> tuple[int, int] | None:
    """(disk type, current size) of a VHD footer, or None if `block` is not one."""
    if len(block) < 512 or not block.startswith(VHD_COOKIE):
        return None
    return _u32(block, 60), _u64(block, 48)


def _vhd_check_type(disk_type: int) -> None:
    if disk_type == _VHD_DIFFERENCING:
        raise FormatRefused("differencing VHD refused (it references a parent disk)")
    if disk_type not in (_VHD_FIXED, _VHD_DYNAMIC):
        raise FormatRefused(f"VHD disk type {disk_type} is not supported")


def check_head(declared: str, head: bytes, *, complete: bool = False) -> None:
    """Refuse early what the first bytes already show to be wrong; `complete` = no more data."""
    packed = compression(head)
    if packed is not None:
        raise FormatRefused(f"declared {declared} but the content is {packed}-compressed; "
                            f"compressed downloads are not supported, register the uncompressed image")
    enough = complete or len(head) >= HEAD_SIZE
    if declared == "qcow2":
        if len(head) >= 4 or complete:
            if not head.startswith(QCOW2_MAGIC):
                raise _mismatch(declared, head)
            if len(head) >= 104 or complete:
                qcow2_virtual_size(head)
    elif declared == "vhd":
        footer = _vhd_footer(head)
        if footer is not None:
            _vhd_check_type(footer[0])
        elif enough and describe(head) not in ("unrecognised data",):
            raise _mismatch(declared, head)
    elif declared == "ova":
        if (len(head) >= TAR_OFFSET + 5 or complete) and head[TAR_OFFSET:TAR_OFFSET + 5] != TAR_MAGIC:
            raise _mismatch(declared, head)
    elif declared == "iso":
        if (len(head) >= ISO_OFFSET + 5 or complete) and head[ISO_OFFSET:ISO_OFFSET + 5] != ISO_MAGIC:
            raise _mismatch(declared, head)
    elif declared == "raw":
        if enough and describe(head) not in ("unrecognised data", "an ISO 9660 image", "empty"):
            raise FormatRefused(f"declared raw but the content is {describe(head)}")
    else:
        raise FormatRefused(f"format {declared!r} is not supported")


def inspect(declared: str, head: bytes, tail: bytes, size: int) -> ImageInfo:
    """Final check of a complete file of `size` bytes; returns its virtual size."""
    if size <= 0:
        raise FormatRefused(f"declared {declared} but the download is empty")
    check_head(declared, head, complete=True)
    trailer = _vhd_footer(tail[-TAIL_SIZE:]) if size >= TAIL_SIZE else None
    if declared == "qcow2":
        return ImageInfo(declared, qcow2_virtual_size(head))
    if declared == "vhd":
        front = _vhd_footer(head)
        if front is None:
            if trailer is None:
                raise _mismatch(declared, head, tail)
            if trailer[0] != _VHD_FIXED:
                raise FormatRefused("VHD footer says a dynamic disk but the header copy is missing")
            return ImageInfo(declared, trailer[1])
        _vhd_check_type(front[0])
        if trailer is not None:
            _vhd_check_type(trailer[0])
        return ImageInfo(declared, front[1])
    if declared == "raw" and trailer is not None:
        raise FormatRefused("declared raw but the content is a VHD image (footer at the end)")
    return ImageInfo(declared, size)
