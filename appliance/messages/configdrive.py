"""The config drive message: the JSON description of one VM's drive (`PUT /v1/configdrives/{instance}`),
read into a `ConfigDrive` by `ConfigDrive.from_json` (`parse_drive`) and written back by `to_json`.

The storage appliance builds the ISO from a `ConfigDrive` (`ssvm.configdrive.content`, which
renders it); cloudd checks a description with the same code before it sends it.  Every error is a
`MessageError` naming the field by its JSON path (`network.nics[0].mac`); the password, the user
data and the vendor data are secrets and never appear in an error message or a repr.

Description::

    {"uuid": "<uuid>", "hostname": "web1", "label"?: "config-2",
     "metadata"?: {"<key>": "<text>", ...}, "public_keys"?: ["ssh-ed25519 AAAA... alice"],
     "user_data"?: "<base64>", "password"?: "...", "windows"?: false,
     "vendor_data"?: {...}, "password_in_vendor_data"?: false,
     "network"?: {"nics": [{"mac": "02:00:2e:8b:00:05", "device_id": 0, "mtu": 1500,
                            "network_id": "<uuid>",
                            "ipv4": {"address", "netmask", "gateway", "routes": [...]} | {"dhcp": true},
                            "ipv6": {"address", "prefix", "gateway"} | {"dhcp": true} | {"slaac": true}}],
                  "dns": ["10.1.1.1", "fd00::1"]}}

`to_json` gives the normalised description: the metadata with its defaults (`instance-id`,
`vm-id`, `local-hostname`) filled in, canonical addresses, NICs by device id; reading it back
gives an equal `ConfigDrive`.  An empty NIC list is refused: cloud-init would apply the resulting
empty configuration instead of its DHCP fallback and leave the VM offline (apache/cloudstack PR
#14020).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from appliance.messages.base import (
    MessageError,
    expect_bool,
    expect_int,
    expect_list,
    expect_object,
    expect_str,
    expect_true,
    fail,
    is_utf8,
    quote,
    type_name,
)

__all__ = [
    "DEFAULT_LABEL",
    "MAX_DRIVE_SIZE",
    "SAVED_PASSWORD",
    "ConfigDrive",
    "Dhcp",
    "DriveTooLarge",
    "IPv4Static",
    "IPv6Static",
    "Network",
    "Nic",
    "Route",
    "Slaac",
    "parse_drive",
    "parse_network",
]

MAX_DRIVE_SIZE = 64 * 1024 * 1024
"""The largest ISO a config drive may be (CloudStack's limit)."""


class DriveTooLarge(MessageError):
    """The drive would exceed `MAX_DRIVE_SIZE`."""


DEFAULT_LABEL = "config-2"
SAVED_PASSWORD = "saved_password"
"""What CloudStack sends instead of a password that was already delivered: no password file then."""

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
MAX_KEYS = 64
MAX_KEY_LENGTH = 16 * 1024

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
DEFAULT_MTU = 1500
MAX_NICS = 32
MAX_ROUTES = 64
MAX_DNS = 16


@dataclass(frozen=True)
class Dhcp:
    """Addresses come from DHCP (DHCPv4, or stateful DHCPv6)."""

    def to_json(self) -> dict[str, Any]:
        return {"dhcp": True}


@dataclass(frozen=True)
class Slaac:
    """IPv6 addresses come from router advertisements."""

    def to_json(self) -> dict[str, Any]:
        return {"slaac": True}


@dataclass(frozen=True)
class Route:
    network: str
    netmask: str
    gateway: str

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "netmask": self.netmask, "gateway": self.gateway}


@dataclass(frozen=True)
class IPv4Static:
    address: str
    netmask: str
    gateway: str | None
    routes: tuple[Route, ...]

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "netmask": self.netmask, "gateway": self.gateway,
                "routes": [route.to_json() for route in self.routes]}


@dataclass(frozen=True)
class IPv6Static:
    address: str
    prefix: int
    gateway: str | None

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "prefix": self.prefix, "gateway": self.gateway}


@dataclass(frozen=True)
class Nic:
    mac: str
    """Lower-case, as cloud-init compares it."""
    device_id: int
    mtu: int
    network_id: str | None
    ipv4: IPv4Static | Dhcp | None
    ipv6: IPv6Static | Dhcp | Slaac | None

    @property
    def name(self) -> str:
        return f"eth{self.device_id}"

    def to_json(self) -> dict[str, Any]:
        return {"mac": self.mac, "device_id": self.device_id, "mtu": self.mtu, "network_id": self.network_id,
                "ipv4": None if self.ipv4 is None else self.ipv4.to_json(),
                "ipv6": None if self.ipv6 is None else self.ipv6.to_json()}


@dataclass(frozen=True)
class Network:
    nics: tuple[Nic, ...]
    """Sorted by device id."""
    dns: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"nics": [nic.to_json() for nic in self.nics], "dns": list(self.dns)}


def uuid_value(value: object, where: str) -> str:
    """A canonical, hyphenated UUID, lower-cased."""
    text = expect_str(value, where)
    if not UUID_RE.fullmatch(text):
        fail(where, f"must be a UUID like 9f1c2b7e-1111-4222-8333-444455556666, not {quote(text)}")
    return text.lower()


def ipv4_address(value: object, where: str) -> ipaddress.IPv4Address:
    text = expect_str(value, where)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        fail(where, f"is not an IPv4 address: {quote(text)}")


def ipv6_address(value: object, where: str) -> ipaddress.IPv6Address:
    text = expect_str(value, where)
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        fail(where, f"is not an IPv6 address: {quote(text)}")
    if address.scope_id is not None:
        fail(where, f"must not carry a zone index: {quote(text)}")
    return address


def ip_address(value: object, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = expect_str(value, where)
    if ":" in text:
        return ipv6_address(text, where)
    return ipv4_address(text, where)


def _ipv4_netmask(value: object, where: str, allow_zero: bool) -> ipaddress.IPv4Address:
    mask = ipv4_address(value, where)
    bits = int(mask)
    inverted = ~bits & 0xFFFFFFFF
    if inverted & (inverted + 1):
        fail(where, f"is not a contiguous netmask like 255.255.255.0: {quote(value)}")
    if bits == 0 and not allow_zero:
        fail(where, "must not be 0.0.0.0")
    return mask


def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address, where: str) -> None:
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        fail(where, f"must be a unicast address, not {address}")


def _parse_route(value: object, where: str, subnet: ipaddress.IPv4Network) -> Route:
    route = expect_object(value, where, ("network", "netmask", "gateway"), ("network", "netmask", "gateway"))
    network = ipv4_address(route["network"], f"{where}.network")
    netmask = _ipv4_netmask(route["netmask"], f"{where}.netmask", allow_zero=True)
    gateway = ipv4_address(route["gateway"], f"{where}.gateway")
    destination = ipaddress.IPv4Network(f"{network}/{netmask}", strict=False)
    if destination.network_address != network:
        fail(f"{where}.network", f"{network} has host bits set for netmask {netmask}")
    if destination.prefixlen == 0:
        fail(where, "the default route comes from ipv4.gateway; do not list it in routes")
    if gateway not in subnet:
        fail(f"{where}.gateway", f"{gateway} is not on the NIC's subnet {subnet}")
    return Route(str(network), str(netmask), str(gateway))


def _parse_ipv4(value: object, where: str) -> IPv4Static | Dhcp:
    if isinstance(value, dict) and "dhcp" in value:
        expect_object(value, where, ("dhcp",))
        expect_true(value["dhcp"], f"{where}.dhcp")
        return Dhcp()
    config = expect_object(value, where, ("address", "netmask", "gateway", "routes"), ("address", "netmask"))
    address = ipv4_address(config["address"], f"{where}.address")
    _usable(address, f"{where}.address")
    netmask = _ipv4_netmask(config["netmask"], f"{where}.netmask", allow_zero=False)
    subnet = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
    gateway = None
    if config.get("gateway") is not None:
        gateway_address = ipv4_address(config["gateway"], f"{where}.gateway")
        if gateway_address not in subnet or gateway_address == address:
            fail(f"{where}.gateway", f"{gateway_address} must be another address on {subnet}")
        gateway = str(gateway_address)
    routes: list[Route] = []
    raw_routes = expect_list(config.get("routes", []), f"{where}.routes")
    if len(raw_routes) > MAX_ROUTES:
        fail(f"{where}.routes", f"at most {MAX_ROUTES} routes, not {len(raw_routes)}")
    for index, raw in enumerate(raw_routes):
        route = _parse_route(raw, f"{where}.routes[{index}]", subnet)
        if route not in routes:
            routes.append(route)
    return IPv4Static(str(address), str(netmask), gateway, tuple(routes))


def _parse_ipv6(value: object, where: str) -> IPv6Static | Dhcp | Slaac:
    if isinstance(value, dict) and ("dhcp" in value or "slaac" in value):
        flag = "dhcp" if "dhcp" in value else "slaac"
        expect_object(value, where, (flag,))
        expect_true(value[flag], f"{where}.{flag}")
        return Dhcp() if flag == "dhcp" else Slaac()
    config = expect_object(value, where, ("address", "prefix", "gateway"), ("address", "prefix"))
    address = ipv6_address(config["address"], f"{where}.address")
    _usable(address, f"{where}.address")
    if address.is_link_local:
        fail(f"{where}.address", f"must not be link-local: {address}")
    prefix = expect_int(config["prefix"], f"{where}.prefix", 1, 128)
    subnet = ipaddress.IPv6Network(f"{address}/{prefix}", strict=False)
    gateway = None
    if config.get("gateway") is not None:
        gateway_address = ipv6_address(config["gateway"], f"{where}.gateway")
        _usable(gateway_address, f"{where}.gateway")
        if gateway_address == address or not (gateway_address in subnet or gateway_address.is_link_local):
            fail(f"{where}.gateway", f"{gateway_address} must be another address on {subnet} or link-local")
        gateway = str(gateway_address)
    return IPv6Static(str(address), prefix, gateway)


def _parse_nic(value: object, where: str) -> Nic:
    config = expect_object(value, where, ("mac", "device_id", "mtu", "network_id", "ipv4", "ipv6"),
                           ("mac", "device_id"))
    mac = expect_str(config["mac"], f"{where}.mac")
    if not MAC_RE.fullmatch(mac):
        fail(f"{where}.mac", f"must be a MAC address like 02:00:2e:8b:00:05, not {quote(mac)}")
    mac = mac.lower()
    if int(mac[:2], 16) & 1:
        fail(f"{where}.mac", f"must be a unicast MAC address, not {mac}")
    device_id = expect_int(config["device_id"], f"{where}.device_id", 0, 255)
    mtu = expect_int(config.get("mtu", DEFAULT_MTU), f"{where}.mtu", 68, 65535)
    network_id = None
    if config.get("network_id") is not None:
        network_id = uuid_value(config["network_id"], f"{where}.network_id")
    ipv4 = None if config.get("ipv4") is None else _parse_ipv4(config["ipv4"], f"{where}.ipv4")
    ipv6 = None if config.get("ipv6") is None else _parse_ipv6(config["ipv6"], f"{where}.ipv6")
    if ipv6 is not None and mtu < 1280:
        fail(f"{where}.mtu", f"IPv6 needs an MTU of at least 1280, not {mtu}")
    return Nic(mac, device_id, mtu, network_id, ipv4, ipv6)


def parse_network(value: object, where: str = "network") -> Network | None:
    """The `network` key: None (unknown network, no `network_data.json`) or a `Network`."""
    if value is None:
        return None
    config = expect_object(value, where, ("nics", "dns"), ("nics",))
    raw_nics = expect_list(config["nics"], f"{where}.nics")
    if not raw_nics:
        fail(f"{where}.nics", "must list at least one NIC; send \"network\": null when the network is "
                              "unknown (an empty network_data.json leaves the guest offline)")
    if len(raw_nics) > MAX_NICS:
        fail(f"{where}.nics", f"at most {MAX_NICS} NICs, not {len(raw_nics)}")
    nics: list[Nic] = []
    for index, raw in enumerate(raw_nics):
        nic = _parse_nic(raw, f"{where}.nics[{index}]")
        for other in nics:
            if other.mac == nic.mac:
                fail(f"{where}.nics[{index}].mac", f"{nic.mac} is used by another NIC")
            if other.device_id == nic.device_id:
                fail(f"{where}.nics[{index}].device_id", f"{nic.device_id} is used by another NIC")
        nics.append(nic)
    dns: list[str] = []
    raw_dns = expect_list(config.get("dns", []), f"{where}.dns")
    if len(raw_dns) > MAX_DNS:
        fail(f"{where}.dns", f"at most {MAX_DNS} servers, not {len(raw_dns)}")
    for index, raw in enumerate(raw_dns):
        server = ip_address(raw, f"{where}.dns[{index}]")
        _usable(server, f"{where}.dns[{index}]")
        if str(server) not in dns:
            dns.append(str(server))
    return Network(tuple(sorted(nics, key=lambda nic: nic.device_id)), tuple(dns))


# -- the secret parts ------------------------------------------------------------------------------

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_PASSWORD_LENGTH = 512


def json_text(value: object) -> str:
    """Compact, key-sorted, ASCII-only JSON: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def parse_password(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        fail("password", f"must be a string, not {type_name(value)}")
    if not value:
        fail("password", "is empty; leave password out when there is none")
    if len(value) > MAX_PASSWORD_LENGTH:
        fail("password", f"is longer than {MAX_PASSWORD_LENGTH} characters")
    if CONTROL_RE.search(value) or not is_utf8(value):
        fail("password", "must not contain control characters or invalid Unicode")
    return value


def _check_json(value: object, where: str) -> None:
    """Raise unless `value` is plain JSON data whose strings are valid Unicode (names the key
    path, never a value)."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            fail(where, "must not hold NaN or infinite numbers")
        return
    if isinstance(value, str):
        if not is_utf8(value):
            fail(where, "holds invalid Unicode")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not is_utf8(key):
                fail(where, "keys must be strings")
            _check_json(item, f"{where}[{quote(key)}]")
        return
    fail(where, f"must be JSON data, not {type_name(value)}")


def parse_vendor_data(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        fail("vendor_data", f"must be an object, not {type_name(value)}")
    _check_json(value, "vendor_data")
    if "cloud-init" in value:
        part = value["cloud-init"]
        parts = part if isinstance(part, list) else [part]
        if not parts or not all(isinstance(p, str) and p.strip() for p in parts):
            fail("vendor_data['cloud-init']", "must be a non-empty string or a list of them "
                                              "(cloud-config, scripts or MIME parts)")
    return json_text(value)

@dataclass(frozen=True)
class ConfigDrive:
    """One VM's drive, validated (the storage appliance calls it `DriveSpec`). Secret fields are
    left out of the repr."""

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

    @classmethod
    def from_json(cls, obj: Any) -> ConfigDrive:
        """`parse_drive`: the description checked and normalised."""
        return parse_drive(obj)

    def to_json(self) -> dict[str, Any]:
        """The normalised description; `from_json` reads it back into an equal drive."""
        return {"uuid": self.uuid, "hostname": self.hostname, "label": self.label,
                "metadata": dict(self.metadata), "public_keys": list(self.public_keys),
                "user_data": None if self.user_data is None else base64.b64encode(self.user_data).decode("ascii"),
                "password": self.password, "windows": self.windows,
                "vendor_data": None if self.vendor_data is None else json.loads(self.vendor_data),
                "password_in_vendor_data": self.password_in_vendor_data,
                "network": None if self.network is None else self.network.to_json()}


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


def parse_drive(obj: object) -> ConfigDrive:
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
    return ConfigDrive(
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
