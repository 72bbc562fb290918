"""What a config drive holds: the JSON description the control API receives, validated into a
`DriveSpec`, and the exact file tree of the ISO (`drive_files`). Pure: no I/O, no clock.

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

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from ssvm.configdrive.network import Network, network_data, parse_network, uuid_value
from ssvm.configdrive.validation import (
    MAX_DRIVE_SIZE,
    DriveError,
    DriveTooLarge,
    expect_bool,
    expect_list,
    expect_object,
    expect_str,
    fail,
    is_utf8,
    quote,
    type_name,
)
from ssvm.configdrive.vendor import (
    CONTROL_RE,
    json_text,
    parse_password,
    parse_vendor_data,
    password_cloud_config,
    password_md5,
    vendor_document,
    yaml_quoted,
)

__all__ = [
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

DEFAULT_LABEL = "config-2"
SAVED_PASSWORD = "saved_password"
"""What CloudStack sends instead of a password that was already delivered: no password file then."""

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
# `meta_data.json` names that a custom key would overwrite or that guest agents act on.
RESERVED_CUSTOM_KEYS = frozenset({
    "uuid", "hostname", "name", "availability_zone", "keys", "public_keys", "admin_pass", "meta",
    "files", "random_seed", "devices", "launch_index", "network_config", "project_id",
    "dedicated_cpus", "vendor_data", "network_data",
})

TOP_LEVEL_KEYS = ("uuid", "hostname", "label", "metadata", "public_keys", "user_data", "password",
                  "windows", "vendor_data", "password_in_vendor_data", "network")
LABEL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
HOSTNAME_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"{HOSTNAME_LABEL}(?:\.{HOSTNAME_LABEL})*")
METADATA_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}")  # `<key>.txt` fits Joliet's 64
BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
USER_DATA_PATH = "cloudstack/userdata/user_data.txt"
MAX_KEYS = 64
MAX_KEY_LENGTH = 16 * 1024


@dataclass(frozen=True)
class DriveSpec:
    """One VM's drive, validated. Secret fields are left out of the repr."""

    uuid: str
    hostname: str
    label: str
    metadata: tuple[tuple[str, str], ...]
    """CloudStack metadata by key (sorted), defaults filled in, without `public-keys`."""
    public_keys: tuple[str, ...]
    user_data: bytes | None = field(repr=False)
    password: str | None = field(repr=False)
    windows: bool
    vendor_data: str | None = field(repr=False)
    """The operator's additions to `vendor_data.json`, as canonical JSON text."""
    password_in_vendor_data: bool
    network: Network | None

    @property
    def new_password(self) -> str | None:
        """The password to put on the drive: None when there is none or it is `saved_password`."""
        if self.password is None or self.password == SAVED_PASSWORD:
            return None
        return self.password

    def metadata_value(self, key: str) -> str | None:
        return dict(self.metadata).get(key)


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


# -- parsing ---------------------------------------------------------------------------------------


def _parse_label(value: object) -> str:
    label = expect_str(value, "label")
    if not LABEL_RE.fullmatch(label):
        fail("label", "must be 1 to 32 characters A-Z a-z 0-9 _ . - (not starting with . or -), "
                      f"not {quote(label)}")
    return label


def _parse_hostname(value: object) -> str:
    hostname = expect_str(value, "hostname")
    if len(hostname) > 253 or not HOSTNAME_RE.fullmatch(hostname):
        fail("hostname", f"must be a host name (letters, digits and inner hyphens, dot-separated "
                         f"labels of at most 63), not {quote(hostname)}")
    return hostname


def _parse_metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail("metadata", f"must be an object of strings, not {type_name(value)}")
    metadata: dict[str, str] = {}
    for key, item in value.items():
        where = f"metadata[{quote(key)}]"
        if not isinstance(key, str) or not METADATA_KEY_RE.fullmatch(key):
            fail(where, "keys must be 1 to 60 characters A-Z a-z 0-9 _ . - starting with a letter "
                        "or digit")
        if key == "public-keys":
            fail(where, "is derived from public_keys; send the keys there")
        if key in RESERVED_CUSTOM_KEYS:
            fail(where, "is a meta_data.json name that guest agents interpret; choose another key")
        text = expect_str(item, where)
        if "\x00" in text or not is_utf8(text):
            fail(where, "must be text without NUL characters")
        if key in ("local-ipv4", "public-ipv4") and text.strip():
            _check_ip_text(text, where)
        metadata[key] = text
    return metadata


def _check_ip_text(text: str, where: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        fail(where, f"is not an IP address: {quote(text)}")


def _parse_public_keys(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    raw_keys = expect_list(value, "public_keys")
    if len(raw_keys) > MAX_KEYS:
        fail("public_keys", f"at most {MAX_KEYS} keys, not {len(raw_keys)}")
    keys: list[str] = []
    for index, raw in enumerate(raw_keys):
        where = f"public_keys[{index}]"
        # CloudStack strips literal "\n" sequences that an escaped key may carry.
        key = expect_str(raw, where).replace("\\n", "").strip()
        if not key:
            fail(where, "is empty")
        if CONTROL_RE.search(key) or not is_utf8(key):
            fail(where, "must be one line of text (no line breaks or control characters)")
        if len(key) > MAX_KEY_LENGTH:
            fail(where, f"is longer than {MAX_KEY_LENGTH} characters")
        if len(key.split()) < 2:
            fail(where, "must look like '<type> <base64 key> [comment]'")
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def _parse_user_data(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        fail("user_data", f"must be a base64 string, not {type_name(value)}")
    if len(value) // 4 * 3 > MAX_DRIVE_SIZE * 2:  # even with generous whitespace: refuse unread
        raise DriveTooLarge(f"user_data: {len(value)} characters of base64 decode to more than the "
                            f"{MAX_DRIVE_SIZE} bytes a config drive may hold")
    if value and len(value) % 4 == 0:
        # The usual case, canonical padded base64 in one line, decoded in one strict pass.
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
        else:
            return _user_data_size(data)
    text = re.sub(r"[ \t\r\n]", "", value)
    if not BASE64_RE.fullmatch(text):
        fail("user_data", "is not base64 (standard alphabet A-Z a-z 0-9 + / with optional = padding)")
    text = text.rstrip("=")
    if not text:
        fail("user_data", "is empty; leave user_data out when there is none")
    if len(text) % 4 == 1:
        fail("user_data", "is not valid base64 (its length is impossible; is it truncated?)")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        fail("user_data", "is not valid base64")
    return _user_data_size(data)


def _user_data_size(data: bytes) -> bytes:
    if not data:
        fail("user_data", "is empty; leave user_data out when there is none")
    if len(data) > MAX_DRIVE_SIZE:
        raise DriveTooLarge(f"user_data: decodes to {len(data)} bytes, more than the "
                            f"{MAX_DRIVE_SIZE} bytes a config drive may hold")
    return data


def parse_drive(obj: object) -> DriveSpec:
    """Validate one drive description (the JSON body of PUT /v1/configdrives/<instance>)."""
    top = expect_object(obj, "drive", TOP_LEVEL_KEYS, ("uuid", "hostname"))
    uuid = uuid_value(top["uuid"], "uuid")
    hostname = _parse_hostname(top["hostname"])
    label = _parse_label(top["label"]) if top.get("label") is not None else DEFAULT_LABEL
    metadata = {"instance-id": uuid, "vm-id": uuid, "local-hostname": hostname,
                **_parse_metadata(top.get("metadata"))}
    public_keys = _parse_public_keys(top.get("public_keys"))
    folded: dict[str, str] = {}
    for key in [*metadata, "public-keys"]:
        other = folded.setdefault(key.lower(), key)
        if other != key:
            fail("metadata", f"keys {other!r} and {key!r} differ only in case; they would name "
                             "the same file on Windows (Joliet)")
    windows = expect_bool(top.get("windows", False), "windows")
    password_in_vendor_data = expect_bool(top.get("password_in_vendor_data", False),
                                          "password_in_vendor_data")
    return DriveSpec(
        uuid=uuid,
        hostname=hostname,
        label=label,
        metadata=tuple(sorted(metadata.items())),
        public_keys=public_keys,
        user_data=_parse_user_data(top.get("user_data")),
        password=parse_password(top.get("password")),
        windows=windows,
        vendor_data=parse_vendor_data(top.get("vendor_data")),
        password_in_vendor_data=password_in_vendor_data,
        network=parse_network(top.get("network")),
    )


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
