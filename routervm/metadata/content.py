"""The bytes the metadata service answers for one VM (router.md §3.2–3.3), computed from its record.

`MetadataView(record)` precomputes one dict from canonical request path to response body, so a
lookup is a normalisation plus one dict access.  ``None`` from `lookup` means 404.  Pure code: the
twisted.web resource that picks the record (by the requester's interface, MAC and IP) and writes
the answer lives elsewhere.

Paths served (matched case-insensitively, query string ignored, as the reference's ``[NC,QSA]``
rewrite rules do):

* ``/latest/meta-data/`` — the manifest: the served key names, one per line, each ``\\n``-terminated,
  in the order of router.md §3.2 (then ``cloud-domain``, ``cloud-domain-id``, ``cloud-name`` and the
  custom keys).  Only keys that answer 200 are listed; user data never is.
* ``/latest/meta-data/<key>`` and the legacy ``/latest/<key>`` — the raw value, no newline added.
* ``/latest/user-data`` — the decoded user data; 404 when the VM has none.
* ``/latest/meta-data/public-keys/`` (EC2-style ``N=key-N`` lines),
  ``/latest/meta-data/public-keys/N/`` (``openssh-key``) and
  ``/latest/meta-data/public-keys/N/openssh-key`` (key N).  A VM without keys gets an empty
  ``public-keys`` value (listed, 200) and no ``N`` entries.

A view is built for every VM that asks and kept until the records change, so a router whose VMs
have all booted holds one per VM: its path strings are interned (one per key name for every VM),
and the bodies of values many VMs share (zone, offering, public address, keys...) and the
manifests come from small bounded caches, so equal bodies are one object.

``/latest/meta-data`` without the slash is not mapped (404), as in the reference.  A leaf requested
with a trailing slash (``/latest/user-data/``) is served like the leaf: harmless, and one
documented client uses it.  Repeated slashes collapse; a ``.`` or ``..`` segment gives 404.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from urllib.parse import unquote

from routervm.records import Nic, VmRecord

__all__ = ["MetadataView", "cloud_identifier", "normalise_path", "unicode_escape"]

_LATEST = "/latest/"
_META = "/latest/meta-data/"
_USER_DATA = "/latest/user-data"
#: Keys whose values differ from VM to VM (the others go through `_shared_body`).
_PER_VM = frozenset({"local-ipv4", "local-hostname", "instance-id", "vm-id"})


def unicode_escape(text: str) -> str:
    """CloudStack's ``StringUtils.unicodeEscape``: every UTF-16 code unit above 0x7F becomes
    ``\\uXXXX`` (upper-case hex; characters outside the BMP become two escaped surrogates)."""
    if text.isascii():
        return text
    out: list[str] = []
    for char in text:
        code = ord(char)
        if code < 0x80:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
    return "".join(out)


def cloud_identifier(identifier: str) -> str:
    """The ``cloud-identifier`` value: ``CloudStack-{<global cloud.identifier>}``."""
    return f"CloudStack-{{{identifier}}}"


@lru_cache(maxsize=1024)
def _shared_body(text: str) -> bytes:
    """The UTF-8 body of a value that many VMs may have in common (bounded, so a value seen once
    costs nothing lasting)."""
    return text.encode("utf-8")


@lru_cache(maxsize=256)
def _manifest(names: tuple[str, ...]) -> tuple[tuple[str, ...], bytes]:
    """The key names and the manifest body for one set of names, shared by the views that list
    the same keys."""
    return names, "".join(name + "\n" for name in names).encode("utf-8")


def normalise_path(path: str) -> str | None:
    """The canonical form of a request path, or ``None`` if it can never be served.

    Drops the query string and fragment, percent-decodes, lower-cases, collapses repeated slashes
    and keeps one trailing slash if there was one.  ``.``/``..`` segments and control characters
    are refused rather than resolved.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    if "%" in path:
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            return None
    if not path.startswith("/") or not path.isprintable() or "\\" in path:
        return None
    segments = [s for s in path.lower().split("/") if s]
    if any(s in (".", "..") for s in segments):
        return None
    if not segments:
        return "/"
    trailing = "/" if path.endswith("/") else ""
    return "/" + "/".join(segments) + trailing


class MetadataView:
    """All metadata answers for one VM, as seen from one of its NICs.

    ``nic`` selects the ``local-ipv4`` value; it defaults to the record's default NIC.  The paths
    held are the ``/latest/meta-data/...`` ones and ``/latest/user-data``; a legacy
    ``/latest/<key>`` is looked up as ``/latest/meta-data/<key>``.
    """

    __slots__ = ("record", "nic", "keys", "manifest", "_paths")

    def __init__(self, record: VmRecord, nic: Nic | None = None) -> None:
        self.record = record
        self.nic = record.default_nic if nic is None else nic
        if self.nic not in record.nics:
            raise ValueError("nic does not belong to the record")
        values = self._values()
        keys, manifest = _manifest(tuple(sys.intern(name) for name, _ in values))
        self.keys: tuple[str, ...] = keys
        self.manifest: bytes = manifest

        paths: dict[str, bytes] = {_META: self.manifest}
        for name, value in values:
            paths[sys.intern(_META + name.lower())] = value
        if record.user_data is not None:
            paths[_USER_DATA] = record.user_data
        if record.public_keys:
            keys_dir = _META + "public-keys/"
            paths[keys_dir] = _shared_body("\n".join(f"{i}=key-{i}" for i in range(len(record.public_keys))))
            for i, key in enumerate(record.public_keys):
                paths[sys.intern(f"{keys_dir}{i}")] = b"openssh-key"
                paths[sys.intern(f"{keys_dir}{i}/")] = b"openssh-key"
                paths[sys.intern(f"{keys_dir}{i}/openssh-key")] = _shared_body(key)
        self._paths = paths

    def _values(self) -> list[tuple[str, bytes]]:
        """(key name, value) in manifest order; a key whose value is unknown is left out."""
        r = self.record
        cloud_id = cloud_identifier(r.cloud_identifier) if r.cloud_identifier else None
        local_hostname = r.hostname if r.local_hostname is None else r.local_hostname
        ordered: list[tuple[str, str | None]] = [
            ("service-offering", None if r.service_offering is None else unicode_escape(r.service_offering)),
            # Always listed: cloud-init's CloudStack datasource reads it unconditionally (a
            # missing key is a KeyError there), so an unknown zone is an empty value.
            ("availability-zone", unicode_escape(r.availability_zone or "")),
            ("local-ipv4", self.nic.ip),
            ("local-hostname", unicode_escape(local_hostname)),
            ("public-ipv4", r.public_ipv4),
            ("public-hostname", r.public_hostname),
            ("instance-id", r.uuid if r.instance_id is None else r.instance_id),
            ("vm-id", r.uuid if r.vm_id is None else r.vm_id),
            ("public-keys", "\n".join(r.public_keys)),
            ("cloud-identifier", cloud_id),
            ("hypervisor-host-name", r.hypervisor_host_name),
            ("cloud-domain", r.cloud_domain),
            ("cloud-domain-id", r.cloud_domain_id),
            ("cloud-name", r.cloud_name),
            *r.extra,
        ]
        return [(name, value.encode("utf-8") if name in _PER_VM else _shared_body(value))
                for name, value in ordered if value is not None]

    def __repr__(self) -> str:
        return f"<MetadataView vm={self.record.uuid} keys={len(self.keys)}>"

    def lookup(self, path: str) -> bytes | None:
        """The response body for a request path, or ``None`` for 404."""
        found = self._paths.get(path)
        if found is not None:
            return found
        canonical = normalise_path(path)
        if canonical is None:
            return None
        found = self._get(canonical)
        if found is None and canonical.endswith("/") and canonical != _META:
            # A leaf asked for with a trailing slash; directories without one stay unmapped.
            found = self._get(canonical[:-1])
        return found

    def _get(self, canonical: str) -> bytes | None:
        found = self._paths.get(canonical)
        if found is None and canonical.startswith(_LATEST):
            # The legacy ``/latest/<key>``: one segment naming a key (``/latest/`` itself and
            # ``/latest/meta-data`` name none; user data is held under its own path).
            name = canonical[len(_LATEST):]
            if name and "/" not in name:
                found = self._paths.get(_META + name)
        return found
