"""Small image files for download tests: qcow2 headers, VHD footers, ISO 9660 and tar bytes."""

from __future__ import annotations

import io
import os
import struct
import tarfile

QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
QCOW2_EXT_DATA_FILE = 0x44415441


def qcow2(virtual_size: int, *, version: int = 3, backing: bytes | None = None, incompatible: int = 0,
          extensions: list[tuple[int, bytes]] | None = None, padding: int = 192 * 1024) -> bytes:
    """A qcow2 header (cluster size 64 KiB) followed by `padding` bytes of pseudo-random data."""
    header_length = 104 if version == 3 else 72
    backing_offset = 0
    ext = b""
    for kind, data in extensions or []:
        ext += struct.pack(">II", kind, len(data)) + data + b"\0" * (-len(data) % 8)
    ext += struct.pack(">II", 0, 0)
    if backing is not None:
        backing_offset = header_length + len(ext)
    header = struct.pack(">4sIQIIQIIQQIIQ", b"QFI\xfb", version, backing_offset,
                         len(backing or b""), 16, virtual_size, 0, 1, 0x30000, 0x10000, 1, 0, 0)
    if version == 3:
        header += struct.pack(">QQQII", incompatible, 0, 0, 4, header_length)
    body = header + ext + (backing or b"")
    return body + os.urandom(padding) if padding else body


def vhd_footer(disk_type: int, current_size: int) -> bytes:
    """A 512-byte VHD footer (checksum not computed: sniffing does not check it)."""
    footer = bytearray(512)
    footer[0:8] = b"conectix"
    struct.pack_into(">I", footer, 8, 2)  # features
    struct.pack_into(">I", footer, 12, 0x00010000)  # version
    struct.pack_into(">Q", footer, 16, 512 if disk_type != 2 else 0xFFFFFFFFFFFFFFFF)
    struct.pack_into(">Q", footer, 40, current_size)  # original size
    struct.pack_into(">Q", footer, 48, current_size)  # current size
    struct.pack_into(">I", footer, 60, disk_type)
    return bytes(footer)


def vhd_fixed(size: int) -> bytes:
    return os.urandom(size) + vhd_footer(2, size)


def vhd_dynamic(virtual_size: int, disk_type: int = 3) -> bytes:
    footer = vhd_footer(disk_type, virtual_size)
    return footer + b"cxsparse" + os.urandom(4096) + footer


def iso(size: int = 64 * 1024) -> bytes:
    data = bytearray(os.urandom(size))
    data[32768:32774] = b"\x01CD001"
    return bytes(data)


def tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def raw(size: int) -> bytes:
    data = bytearray(os.urandom(size))
    data[0:3] = b"\xeb\x63\x90"  # a boot sector's jump
    return bytes(data)
