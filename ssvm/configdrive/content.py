"""What a config drive holds: the JSON description the control API receives, validated into a
`DriveSpec` (the config drive message, `appliance.messages.configdrive.ConfigDrive`, which reads
it), and the exact file tree of the ISO (`drive_files`). Pure: no I/O, no clock.

The tree is CloudStack's (spec §3) plus the dated OpenStack versions Nova writes::

    cloudstack/metadata/<key>.txt            every non-blank metadata value, UTF-8, no newline added
    cloudstack/password/vm_password.txt      a newly set password (never the literal saved_password)
    cloudstack/password/vm-password-md5checksum.txt   Windows only: md5 hex, leading zeros dropped
    cloudstack/userdata/user_data.txt        the base64-decoded user data, if any
    openstack/<version>/meta_data.json       every version
    openstack/<version>/user_data            every version, the same bytes as user_data.txt
    openstack/<version>/vendor_data.json     2013-10-17 and later
    openstack/<version>/network_data.json    2015-10-15 and later, only when the network is known

Files with identical bytes are marked (`DriveFile.same_as`) so the ISO stores them once. The
password, the user data and the vendor data are secrets: they never appear in an error message or
a repr.

Decisions beyond the reference:

* Several SSH keys get one `keys` / `public_keys` entry each with distinct names (`key`, `key-1`, …
  in list order; a name taken from the key's comment keeps its own spelling when it is free).
* Spec §3 says CloudStack writes only `openstack/latest`; the dated folders are added because
  cloud-init reads the newest dated version it knows (2018-08-27) before `latest`, so every
  copy is the same file (one extent on the ISO).
* Vendor data and the password's cloud-config: see `vendor`.
* The password stays on the drive for as long as the drive exists, as in CloudStack; sending
  `saved_password` on a later rebuild (after the guest has it) takes it off.
* Custom metadata keys may not use a name that `meta_data.json` readers interpret (`meta`, `files`,
  `random_seed`, …): cloud-init would act on it or fail on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.messages.configdrive import (
    DEFAULT_LABEL,
    MAX_DRIVE_SIZE,
    SAVED_PASSWORD,
    ConfigDrive,
    DriveTooLarge,
    parse_drive,
)
from ssvm.configdrive.network import network_data
from ssvm.configdrive.validation import DriveError
from ssvm.configdrive.vendor import (
    json_text,
    password_cloud_config,
    password_md5,
    vendor_document,
    yaml_quoted,
)

DriveSpec = ConfigDrive
"""The drive description as the builder calls it."""

__all__ = [
    "DEFAULT_LABEL",
    "SAVED_PASSWORD",
    "ConfigDrive",
    "DriveError",
    "DriveFile",
    "DriveSpec",
    "DriveTooLarge",
    "DriveTree",
    "MAX_DRIVE_SIZE",
    "check_size",
    "drive_files",
    "meta_data",
    "parse_drive",
    "password_cloud_config",
    "password_md5",
    "vendor_data",
    "yaml_quoted",
]

OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                      "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest")
VENDOR_DATA_SINCE = "2013-10-17"
NETWORK_DATA_SINCE = "2015-10-15"

CLOUDSTACK_METADATA_KEYS = frozenset({
    "service-offering", "availability-zone", "local-hostname", "local-ipv4", "public-ipv4",
    "public-hostname", "instance-id", "vm-id", "public-keys", "cloud-identifier",
    "hypervisor-host-name", "cloud-domain", "cloud-domain-id", "cloud-name",
})
# CloudStack metadata key → its `meta_data.json` name; the other CloudStack keys are not copied
# there (`local-hostname` becomes `hostname`, `public-keys` becomes `keys` and `public_keys`).
META_DATA_JSON_NAMES = {
    "public-hostname": "name",
    "availability-zone": "availability_zone",
    "hypervisor-host-name": "hypervisor-host-name",
    "cloud-domain": "cloud-domain",
    "cloud-domain-id": "cloud-domain-id",
    "cloud-name": "cloud-name",
}
USER_DATA_PATH = "cloudstack/userdata/user_data.txt"


@dataclass(frozen=True)
class DriveFile:
    path: str
    """Relative to the ISO root, `/`-separated, e.g. `openstack/latest/meta_data.json`."""
    data: bytes = field(repr=False)
    same_as: str | None
    """An earlier file of the tree with the same bytes (a hard link to it), or None."""


@dataclass(frozen=True)
class DriveTree:
    label: str
    directories: tuple[str, ...]
    """Every directory, parents before children."""
    files: tuple[DriveFile, ...]

    def content_size(self) -> int:
        """Bytes of file content, counting identical files once."""
        return sum(len(f.data) for f in self.files if f.same_as is None)

    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def read(self, path: str) -> bytes:
        for drive_file in self.files:
            if drive_file.path == path:
                return drive_file.data
        raise KeyError(path)


# -- content ---------------------------------------------------------------------------------------


def key_names(public_keys: tuple[str, ...]) -> list[str]:
    """A distinct name per key, stable for a given list.

    CloudStack's rule names a key after its third space-separated token when it has more than
    three (`ssh-rsa AAAA… alice@laptop extra` → `alice@laptop`), else `key`; a name already taken
    gets the first free `-1`, `-2`, … suffix.
    """
    names: list[str] = []
    for key in public_keys:
        tokens = key.split(" ")
        base = tokens[2] if len(tokens) > 3 and tokens[2] else "key"
        name, counter = base, 0
        while name in names:
            counter += 1
            name = f"{base}-{counter}"
        names.append(name)
    return names


def meta_data(spec: DriveSpec) -> dict[str, Any]:
    """The `meta_data.json` document (spec §4)."""
    document: dict[str, Any] = {"uuid": spec.uuid}
    local_hostname = spec.metadata_value("local-hostname") or ""
    document["hostname"] = local_hostname if local_hostname.strip() else spec.hostname
    for key, value in spec.metadata:
        if not value.strip():
            continue
        if key in META_DATA_JSON_NAMES:
            document[META_DATA_JSON_NAMES[key]] = value
        elif key not in CLOUDSTACK_METADATA_KEYS:
            document[key] = value
    if spec.public_keys:
        names = key_names(spec.public_keys)
        document["keys"] = [{"type": "ssh", "data": key, "name": name}
                            for name, key in zip(names, spec.public_keys, strict=True)]
        document["public_keys"] = dict(zip(names, spec.public_keys, strict=True))
    return document


def vendor_data(spec: DriveSpec) -> dict[str, Any]:
    """The `vendor_data.json` document: `{}`, the operator's additions, and/or the password."""
    password = spec.new_password if spec.password_in_vendor_data else None
    return vendor_document(spec.vendor_data, password)


def _json_bytes(value: object) -> bytes:
    return json_text(value).encode("ascii")


def _version_at_least(version: str, since: str) -> bool:
    return version == "latest" or version >= since


def drive_files(spec: DriveSpec) -> DriveTree:
    """The drive's exact file tree, in a fixed order, identical files linked to their first copy."""
    entries: list[tuple[str, bytes]] = []
    for key, value in _cloudstack_metadata(spec):
        if value.strip():
            entries.append((f"cloudstack/metadata/{key}.txt", value.encode("utf-8")))
    password = spec.new_password
    if password is not None:
        entries.append(("cloudstack/password/vm_password.txt", password.encode("utf-8")))
        if spec.windows:
            entries.append(("cloudstack/password/vm-password-md5checksum.txt",
                            password_md5(password).encode("ascii")))
    if spec.user_data is not None:
        entries.append((USER_DATA_PATH, spec.user_data))

    meta = _json_bytes(meta_data(spec))
    vendor = _json_bytes(vendor_data(spec))
    network = _json_bytes(network_data(spec.network)) if spec.network is not None else None
    for version in OPENSTACK_VERSIONS:
        base = f"openstack/{version}"
        entries.append((f"{base}/meta_data.json", meta))
        if network is not None and _version_at_least(version, NETWORK_DATA_SINCE):
            entries.append((f"{base}/network_data.json", network))
        if spec.user_data is not None:
            entries.append((f"{base}/user_data", spec.user_data))
        if _version_at_least(version, VENDOR_DATA_SINCE):
            entries.append((f"{base}/vendor_data.json", vendor))

    first_with: dict[bytes, str] = {}
    files = []
    for path, data in entries:
        files.append(DriveFile(path, data, first_with.get(data)))
        first_with.setdefault(data, path)
    directories = ("cloudstack", "cloudstack/metadata", "cloudstack/password", "cloudstack/userdata",
                   "openstack", *(f"openstack/{version}" for version in OPENSTACK_VERSIONS))
    return DriveTree(spec.label, directories, tuple(files))


def _cloudstack_metadata(spec: DriveSpec) -> list[tuple[str, str]]:
    """The CloudStack metadata files' keys and values, sorted, `public-keys` included."""
    items = dict(spec.metadata)
    if spec.public_keys:
        items["public-keys"] = "\n".join(spec.public_keys)
    return sorted(items.items())


def check_size(tree: DriveTree) -> None:
    """Refuse a tree whose content alone cannot fit in `MAX_DRIVE_SIZE` (before mastering it)."""
    # Each distinct file takes whole 2 KiB blocks; the volume descriptors and directories need at
    # least the 32 KiB system area plus a few blocks more.
    blocks = sum(-(-len(f.data) // 2048) for f in tree.files if f.same_as is None)
    estimate = blocks * 2048 + 40 * 1024
    if estimate > MAX_DRIVE_SIZE:
        user_data = sum(len(f.data) for f in tree.files if f.path == USER_DATA_PATH)
        raise DriveTooLarge(f"the drive needs at least {estimate} bytes, more than the {MAX_DRIVE_SIZE} "
                            f"bytes (64 MiB) a config drive may hold (user data: {user_data} bytes)")
