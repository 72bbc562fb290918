"""Simulated hosts: node files for libvirt's in-process test driver (`test:///<file>`).

A node file describes one host: its CPUs (`<cpu>`: count, MHz, model, topology) and memory (`<memory>`
in KiB), both honoured by the test driver, a preloaded storage pool, and no domains. The test driver
ignores `<hostname>`; cloudd's driver reads it from the file itself, so each simulated host has its
own name. Each file opened gives a host with its own state in this process.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from urllib.parse import quote

DEFAULT_POOL = "default"


def simulated_host_xml(name: str, cpus: int, mhz: int, memory_mib: int, sockets: int = 1) -> str:
    """The node file of a simulated host with `cpus` CPUs at `mhz` and `memory_mib` MiB of memory."""
    if not name or any(ord(ch) < 32 for ch in name):
        raise ValueError(f"invalid host name {name!r}")
    for what, value in (("cpus", cpus), ("mhz", mhz), ("memory_mib", memory_mib), ("sockets", sockets)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a positive integer, not {value!r}")
    if cpus % sockets:
        raise ValueError(f"{cpus} CPUs do not divide into {sockets} sockets")
    node = ET.Element("node")
    ET.SubElement(node, "hostname").text = name
    cpu = ET.SubElement(node, "cpu")
    for tag, text in (("mhz", mhz), ("model", "x86_64"), ("active", cpus), ("nodes", 1),
                      ("sockets", sockets), ("cores", cpus // sockets), ("threads", 1)):
        ET.SubElement(cpu, tag).text = str(text)
    ET.SubElement(node, "memory").text = str(memory_mib * 1024)
    pool = ET.SubElement(node, "pool", type="dir")
    ET.SubElement(pool, "name").text = DEFAULT_POOL
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = "/var/lib/libvirt/images"
    ET.indent(node)
    return ET.tostring(node, encoding="unicode") + "\n"


def write_simulated_host(path: str, name: str, cpus: int, mhz: int, memory_mib: int) -> str:
    """Write a simulated host's node file at `path` (mode 0600, replaced atomically) and return its
    test:/// URI. Blocking file I/O: call it at start-up or on a thread."""
    text = simulated_host_xml(name, cpus, mhz, memory_mib)
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".node-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return "test://" + quote(path)
