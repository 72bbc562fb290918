"""Storage pool definitions: the libvirt XML of the pools cloudd creates, and whether a pool that
already exists on a host is the one asked for. Pure code; the libvirt calls are in `connection`.

Two kinds are made: `dir`, a directory on the host, and `netfs`, an NFS export mounted on the host at
the target path. Pools are persistent (defined), started and marked autostart, so they come back when
the host's libvirtd restarts.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from cloudd.hypervisor.errors import HypervisorError

KINDS = ("dir", "netfs")
MAX_NAME = 255


@dataclass(frozen=True)
class PoolSpec:
    """One pool as asked for."""

    name: str
    kind: str
    path: str
    nfs_server: str | None = None
    nfs_export: str | None = None

    def to_xml(self) -> str:
        pool = ET.Element("pool", type=self.kind)
        ET.SubElement(pool, "name").text = self.name
        if self.kind == "netfs":
            source = ET.SubElement(pool, "source")
            ET.SubElement(source, "host", name=self.nfs_server or "")
            ET.SubElement(source, "dir", path=self.nfs_export or "")
            ET.SubElement(source, "format", type="nfs")
        target = ET.SubElement(pool, "target")
        ET.SubElement(target, "path").text = self.path
        return ET.tostring(pool, encoding="unicode")


def _clean_path(value: str, what: str) -> str:
    if not value.startswith("/") or "\x00" in value or any(ord(ch) < 32 for ch in value):
        raise HypervisorError(f"the {what} must be an absolute path, not {value!r}")
    cleaned = posixpath.normpath(value)
    return "/" + cleaned.lstrip("/")  # normpath keeps a leading "//"


def pool_spec(name: str, kind: str, path: str, nfs_server: str | None = None,
              nfs_export: str | None = None) -> PoolSpec:
    """Check a pool request and normalise its paths, or raise HypervisorError saying what is wrong."""
    if not name or len(name) > MAX_NAME or "/" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise HypervisorError(f"invalid storage pool name {name!r}")
    if kind not in KINDS:
        raise HypervisorError(f"unsupported storage pool type {kind!r}; supported: {', '.join(KINDS)}")
    target = _clean_path(path, "pool's path")
    if kind == "dir":
        if nfs_server is not None or nfs_export is not None:
            raise HypervisorError("a dir pool takes no NFS server or export")
        return PoolSpec(name, kind, target)
    server = (nfs_server or "").strip()
    if not server or any(ch.isspace() or ch in "/'\"<>&" for ch in server):
        raise HypervisorError(f"an NFS pool needs a valid NFS server name, not {nfs_server!r}")
    export = _clean_path(nfs_export or "", "NFS export")
    return PoolSpec(name, kind, target, server, export)


def _text(node: ET.Element | None) -> str | None:
    return None if node is None or node.text is None else node.text.strip()


def _attr(node: ET.Element | None, name: str) -> str | None:
    return None if node is None else node.get(name)


def differences(spec: PoolSpec, xml_desc: str) -> list[str]:
    """What differs between the pool asked for and a defined pool's XML (empty when they agree)."""
    root = ET.fromstring(xml_desc)
    found: list[str] = []
    kind = root.get("type")
    if kind != spec.kind:
        found.append(f"type {kind} (asked {spec.kind})")
    path = _text(root.find("target/path"))
    if path is None or posixpath.normpath(path) != spec.path:
        found.append(f"path {path} (asked {spec.path})")
    if spec.kind == "netfs":
        server = _attr(root.find("source/host"), "name")
        if server != spec.nfs_server:
            found.append(f"NFS server {server} (asked {spec.nfs_server})")
        export = _attr(root.find("source/dir"), "path")
        if export is None or posixpath.normpath(export) != spec.nfs_export:
            found.append(f"NFS export {export} (asked {spec.nfs_export})")
    return found
