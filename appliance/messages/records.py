"""The router's per-VM record, the control message cloudd pushes, and the guest-identity index
built from records (`routervm.records` re-exports both).

A `VmRecord` is the full desired state of one VM as seen by one router (DESIGN.md §4): its NICs on
the router's guest networks, the metadata values of router.md §3.3, its user data and its SSH public
keys.  Everything a guest can fetch is derived from the record alone.

`RecordIndex` answers "which VM owns this (guest interface, source MAC, source IP) triple?" in O(1);
the metadata and password services answer only that owner (DESIGN.md §5, security.md 19–20).

JSON shape (`VmRecord.from_json` / `VmRecord.to_json`)::

    {"uuid": "9f1c2b7e-...", "instance_name": "i-2-5-VM", "hostname": "web1",
     "nics": [{"mac": "02:00:4c:5e:00:02", "ip": "10.1.1.50", "default": true, "interface": "eth0"}],
     "service_offering": "Small Instance", "availability_zone": "zone1", "local_hostname": null,
     "public_ipv4": "203.0.113.10", "public_hostname": "203.0.113.10", "vm_id": null,
     "instance_id": null, "cloud_identifier": "0c3e9b36-...", "hypervisor_host_name": null,
     "cloud_domain": null, "cloud_domain_id": null, "cloud_name": null,
     "extra": {"key": "value"}, "user_data": "<base64>" | null, "public_keys": ["ssh-ed25519 ..."]}

Only `uuid`, `instance_name`, `hostname` and `nics` are required; every other member may be left out
(meaning null, or empty for `extra` and `public_keys`).  Unknown members are rejected.

Memory: a router holds one record per VM for as long as it runs (10,000 and more), so records are
slotted, and the values many VMs have in common (interface names, offering, zone, public address,
cloud identifier, domain, key names and values, SSH keys) are interned strings held once.
`VmRecord.from_json` also takes a `shared` dict, one per full state, through which equal user
data, key lists and custom-key tuples are held once too.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.messages.base import MessageError
from appliance.messages.names import is_interface_name

__all__ = [
    "MAX_USER_DATA_BYTES",
    "RESERVED_KEYS",
    "IdentityKey",
    "Nic",
    "RecordError",
    "RecordIndex",
    "VmRecord",
    "decode_user_data",
    "identity_key",
]

#: Largest decoded user data accepted (CloudStack's `vm.userdata.max.length` tops out at 1 MB).
MAX_USER_DATA_BYTES = 1024 * 1024

#: Metadata key names a custom ("extra") key may not take, compared case-insensitively.  These are
#: the standard keys of router.md §3.3 plus the names the URL mapping of §3.2 already uses.
RESERVED_KEYS = frozenset(
    {
        "service-offering",
        "availability-zone",
        "local-ipv4",
        "local-hostname",
        "public-ipv4",
        "public-hostname",
        "instance-id",
        "vm-id",
        "public-keys",
        "cloud-identifier",
        "hypervisor-host-name",
        "cloud-domain",
        "cloud-domain-id",
        "cloud-name",
        "user-data",
        "meta-data",
    }
)

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# A metadata key becomes a URL path segment and a manifest line: no "/", no "=" (cloud-init reads
# "N=name" lines EC2-style), no whitespace or control characters, not "." or "..".
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_OPTIONAL_TEXT_FIELDS = (
    "service_offering",
    "availability_zone",
    "local_hostname",
    "public_ipv4",
    "public_hostname",
    "vm_id",
    "instance_id",
    "cloud_identifier",
    "hypervisor_host_name",
    "cloud_domain",
    "cloud_domain_id",
    "cloud_name",
)
# The optional members that many VMs have in common (one offering, zone, public address, cloud).
_SHARED_TEXT_FIELDS = (
    "service_offering",
    "availability_zone",
    "public_ipv4",
    "public_hostname",
    "cloud_identifier",
    "hypervisor_host_name",
    "cloud_domain",
    "cloud_domain_id",
    "cloud_name",
)
_KNOWN_MEMBERS = frozenset(
    {"uuid", "instance_name", "hostname", "nics", "extra", "user_data", "public_keys", *_OPTIONAL_TEXT_FIELDS}
)
_NIC_MEMBERS = frozenset({"mac", "ip", "default", "interface"})

#: (guest interface, lower-case MAC, canonical IP text)
IdentityKey = tuple[str, str, str]


class RecordError(MessageError):
    """A VM record (or an identity triple) is malformed.  The message names the offending member but
    never repeats user data or other values that may be secret."""


def _normalise_mac(mac: object) -> str:
    if not isinstance(mac, str):
        raise RecordError("mac must be a string")
    lowered = mac.lower()
    if not _MAC_RE.match(lowered):
        raise RecordError(f"mac {mac!r} is not of the form aa:bb:cc:dd:ee:ff")
    return mac if lowered == mac else lowered  # no second copy of a MAC already in lower case


def _intern(value: str | None) -> str | None:
    """`value`, held once per process (for the values many VMs share)."""
    return sys.intern(value) if type(value) is str else value


def _share(shared: dict[Any, Any] | None, value: Any) -> Any:
    """The first value equal to `value` seen through `shared` (None: `value` itself)."""
    if shared is None:
        return value
    try:
        return shared.setdefault(value, value)
    except TypeError:  # unhashable, so malformed: the record's checks say what is wrong
        return value


# An IPv4 address already in canonical dotted-quad form (no leading zeros): `_normalise_ip` returns
# it as it is, without building an `ipaddress` object (the start-up load parses one per NIC).
_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def _normalise_ip(ip: object) -> str:
    if not isinstance(ip, str):
        raise RecordError("ip must be a string")
    if _CANONICAL_IPV4.fullmatch(ip):
        return ip
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise RecordError(f"ip {ip!r} is not an IP address") from None


def _check_interface(interface: object) -> str:
    if not is_interface_name(interface):
        raise RecordError("interface must be a non-empty device name")
    return interface


def identity_key(interface: str, mac: str, ip: str) -> IdentityKey:
    """The normalised (interface, MAC, IP) triple that identifies one guest NIC.

    MACs compare case-insensitively and IPs by value, so ``02:00:4C:5E:00:02`` and
    ``02:00:4c:5e:00:02`` give the same key.  Raises `RecordError` for a malformed part.
    """
    return (_check_interface(interface), _normalise_mac(mac), _normalise_ip(ip))


@dataclass(frozen=True, slots=True)
class Nic:
    """One NIC of a VM on a network this router serves."""

    mac: str
    ip: str
    default: bool
    interface: str

    def __post_init__(self) -> None:
        key = identity_key(self.interface, self.mac, self.ip)
        if not isinstance(self.default, bool):
            raise RecordError("nic default must be true or false")
        # Store the canonical forms so equality and the index agree.
        object.__setattr__(self, "mac", key[1])
        object.__setattr__(self, "ip", key[2])
        object.__setattr__(self, "interface", _intern(self.interface))

    @property
    def key(self) -> IdentityKey:
        return (self.interface, self.mac, self.ip)

    @classmethod
    def from_json(cls, obj: object) -> Nic:
        if not isinstance(obj, Mapping):
            raise RecordError("each nic must be an object")
        unknown = set(obj) - _NIC_MEMBERS
        if unknown:
            raise RecordError(f"unknown nic member(s): {', '.join(sorted(map(str, unknown)))}")
        missing = _NIC_MEMBERS - set(obj)
        if missing:
            raise RecordError(f"nic lacks member(s): {', '.join(sorted(missing))}")
        return cls(mac=obj["mac"], ip=obj["ip"], default=obj["default"], interface=obj["interface"])

    def to_json(self) -> dict[str, Any]:
        return {"mac": self.mac, "ip": self.ip, "default": self.default, "interface": self.interface}


def _check_text(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise RecordError(f"{name} must be a string" + (" or null" if optional else ""))


def decode_user_data(text: object) -> bytes | None:
    """Decode base64 user data as the reference router does: whitespace ignored, missing ``=``
    padding added, anything else outside the base64 alphabet rejected."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise RecordError("user_data must be a base64 string or null")
    compact = "".join(text.split())
    if len(compact) % 4:
        compact += "=" * (-len(compact) % 4)
    if len(compact) // 4 * 3 > MAX_USER_DATA_BYTES + 2:
        raise RecordError(f"user_data is larger than {MAX_USER_DATA_BYTES} bytes")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise RecordError("user_data is not valid base64") from None
    if len(data) > MAX_USER_DATA_BYTES:
        raise RecordError(f"user_data is larger than {MAX_USER_DATA_BYTES} bytes")
    return data


@dataclass(frozen=True, slots=True)
class VmRecord:
    """Everything the router knows about one VM.

    Metadata members are the raw values cloudd computed (router.md §3.3); ``None`` means the key
    is not served at all (for example `hypervisor_host_name` when the exposure settings forbid it).
    `vm_id` and `instance_id` default to the uuid and `local_hostname` to `hostname` when ``None``.
    `cloud_identifier` is the bare global ``cloud.identifier``; the metadata view formats it as
    ``CloudStack-{...}``.  `extra` holds the custom ("user data details") keys in order.
    `user_data` is the decoded bytes, or ``None`` when the VM has none.
    """

    uuid: str
    instance_name: str
    hostname: str
    nics: tuple[Nic, ...]
    service_offering: str | None = None
    availability_zone: str | None = None
    local_hostname: str | None = None
    public_ipv4: str | None = None
    public_hostname: str | None = None
    vm_id: str | None = None
    instance_id: str | None = None
    cloud_identifier: str | None = None
    hypervisor_host_name: str | None = None
    cloud_domain: str | None = None
    cloud_domain_id: str | None = None
    cloud_name: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    user_data: bytes | None = field(default=None, repr=False)
    public_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("uuid", "instance_name", "hostname"):
            value = getattr(self, name)
            _check_text(name, value, optional=False)
            if not value:
                raise RecordError(f"{name} must not be empty")
        for name in _OPTIONAL_TEXT_FIELDS:
            _check_text(name, getattr(self, name), optional=True)
        for name in _SHARED_TEXT_FIELDS:
            object.__setattr__(self, name, _intern(getattr(self, name)))
        if not isinstance(self.nics, tuple) or not all(isinstance(n, Nic) for n in self.nics):
            raise RecordError("nics must be a tuple of Nic")
        if not self.nics:
            raise RecordError("a record needs at least one nic")
        if sum(1 for n in self.nics if n.default) > 1:
            raise RecordError("at most one nic may be the default")
        if len({n.key for n in self.nics}) != len(self.nics):
            raise RecordError("two nics share one (interface, mac, ip)")
        if self.user_data is not None and not isinstance(self.user_data, bytes):
            raise RecordError("user_data must be bytes or None")
        if self.user_data is not None and len(self.user_data) > MAX_USER_DATA_BYTES:
            raise RecordError(f"user_data is larger than {MAX_USER_DATA_BYTES} bytes")
        if not isinstance(self.public_keys, tuple):
            raise RecordError("public_keys must be a tuple")
        for index, key in enumerate(self.public_keys):
            if not isinstance(key, str) or not key.strip():
                raise RecordError(f"public_keys[{index}] must be a non-empty string")
            if "\n" in key or "\r" in key:
                raise RecordError(f"public_keys[{index}] must be a single line")
        if any(type(key) is str and key is not sys.intern(key) for key in self.public_keys):
            object.__setattr__(self, "public_keys", tuple(map(_intern, self.public_keys)))
        self._check_extra()

    def _check_extra(self) -> None:
        if not isinstance(self.extra, tuple):
            raise RecordError("extra must be a tuple of (key, value) pairs")
        seen: set[str] = set()
        for item in self.extra:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise RecordError("extra must be a tuple of (key, value) pairs")
            key, value = item
            if not isinstance(key, str) or not _KEY_RE.match(key) or key in (".", ".."):
                raise RecordError(f"extra key {key!r} is not a valid metadata key name")
            folded = key.lower()
            if folded in RESERVED_KEYS:
                raise RecordError(f"extra key {key!r} clashes with a standard metadata key")
            if folded in seen:
                raise RecordError(f"extra key {key!r} is given twice (keys are case-insensitive)")
            seen.add(folded)
            if not isinstance(value, str):
                raise RecordError(f"extra value for {key!r} must be a string")
        if any(type(k) is str and type(v) is str and (k is not sys.intern(k) or v is not sys.intern(v))
               for k, v in self.extra):
            object.__setattr__(self, "extra", tuple((_intern(k), _intern(v)) for k, v in self.extra))

    @property
    def default_nic(self) -> Nic:
        """The default NIC, or the first one when none is marked default."""
        for nic in self.nics:
            if nic.default:
                return nic
        return self.nics[0]

    @classmethod
    def from_json(cls, obj: object, shared: dict[Any, Any] | None = None) -> VmRecord:
        """Build a record from its decoded JSON form; raises `RecordError` on any defect.

        `shared`, when given, is a dict kept across the records of one state: equal user data,
        key lists and custom-key tuples are then one object for all the records."""
        if not isinstance(obj, Mapping):
            raise RecordError("a VM record must be an object")
        unknown = set(obj) - _KNOWN_MEMBERS
        if unknown:
            raise RecordError(f"unknown member(s): {', '.join(sorted(map(str, unknown)))}")
        for name in ("uuid", "instance_name", "hostname", "nics"):
            if name not in obj:
                raise RecordError(f"record lacks {name}")
        nics = obj["nics"]
        if not isinstance(nics, list):
            raise RecordError("nics must be a list")
        extra = obj.get("extra")
        extra = {} if extra is None else extra
        if not isinstance(extra, Mapping):
            raise RecordError("extra must be an object")
        keys = obj.get("public_keys")
        keys = [] if keys is None else keys
        if not isinstance(keys, list):
            raise RecordError("public_keys must be a list")
        return cls(
            uuid=obj["uuid"],
            instance_name=obj["instance_name"],
            hostname=obj["hostname"],
            nics=tuple(Nic.from_json(n) for n in nics),
            extra=_share(shared, tuple((_intern(k), _intern(v)) for k, v in extra.items())) if extra else (),
            user_data=_share(shared, decode_user_data(obj.get("user_data"))),
            public_keys=_share(shared, tuple(map(_intern, keys))) if keys else (),
            **{name: obj.get(name) for name in _OPTIONAL_TEXT_FIELDS},
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form `from_json` accepts; `from_json(r.to_json()) == r`."""
        result: dict[str, Any] = {
            "uuid": self.uuid,
            "instance_name": self.instance_name,
            "hostname": self.hostname,
            "nics": [n.to_json() for n in self.nics],
        }
        for name in _OPTIONAL_TEXT_FIELDS:
            result[name] = getattr(self, name)
        result["extra"] = dict(self.extra)
        result["user_data"] = (
            None if self.user_data is None else base64.b64encode(self.user_data).decode("ascii")
        )
        result["public_keys"] = list(self.public_keys)
        return result


class RecordIndex:
    """Owner lookup: (guest interface, source MAC, source IP) → the `VmRecord` holding that NIC.

    Built once per applied state; lookups are one dict access (and a scan of the owner's few NICs,
    which saves holding a (record, NIC) pair per NIC).  Duplicate uuids or a triple claimed by two
    records raise `RecordError` when building, so an ambiguous state is never applied.
    """

    __slots__ = ("_by_key", "_by_uuid")

    def __init__(self, records: Iterable[VmRecord] = ()) -> None:
        by_uuid: dict[str, VmRecord] = {}
        by_key: dict[IdentityKey, VmRecord] = {}
        for record in records:
            if record.uuid in by_uuid:
                raise RecordError(f"two records have uuid {record.uuid!r}")
            by_uuid[record.uuid] = record
            for nic in record.nics:
                key = nic.key
                if key in by_key:
                    raise RecordError(f"records {by_key[key].uuid!r} and {record.uuid!r} share one nic")
                by_key[key] = record
        self._by_uuid = by_uuid
        self._by_key = by_key

    def __len__(self) -> int:
        return len(self._by_uuid)

    def __repr__(self) -> str:
        return f"<RecordIndex records={len(self._by_uuid)} nics={len(self._by_key)}>"

    def records(self) -> tuple[VmRecord, ...]:
        return tuple(self._by_uuid.values())

    def by_uuid(self, uuid: str) -> VmRecord | None:
        return self._by_uuid.get(uuid)

    def owner(self, interface: str, mac: str, ip: str) -> tuple[VmRecord, Nic] | None:
        """The owning record and the matching NIC, or ``None`` (also for a malformed triple: the
        parts come from guest traffic and must never raise)."""
        try:
            key = identity_key(interface, mac, ip)
        except RecordError:
            return None
        record = self._by_key.get(key)
        if record is None:
            return None
        for nic in record.nics:
            if nic.interface == key[0] and nic.mac == key[1] and nic.ip == key[2]:
                return record, nic
        return None  # not reached: the index holds a record under its NICs' keys only

    def lookup(self, interface: str, mac: str, ip: str) -> VmRecord | None:
        """The record owning the triple, or ``None``."""
        try:
            key = identity_key(interface, mac, ip)
        except RecordError:
            return None
        return self._by_key.get(key)
