"""Tests for `ssvm.configdrive.content`: validating drive descriptions and the exact file tree."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ssvm.configdrive.content import (
    OPENSTACK_VERSIONS,
    DriveError,
    DriveSpec,
    DriveTooLarge,
    drive_files,
    key_names,
    parse_drive,
    password_cloud_config,
    password_md5,
    yaml_quoted,
)
from ssvm.configdrive.validation import MAX_DRIVE_SIZE
from tests.ssvm.configdrive_helpers import (
    KEY_ALICE,
    KEY_BOB,
    MAC,
    MAC2,
    NETWORK_UUID,
    PASSWORD,
    USER_DATA,
    UUID,
    b64,
    minimal,
    typical,
)

DELETE = object()
SECRET_VENDOR_VALUE = "vendor-secret-token-417"


def changed(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the item at `path` replaced by `value` (or removed: DELETE)."""
    result = copy.deepcopy(base)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


def nic(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"mac": MAC, "device_id": 0}
    base.update(overrides)
    return base


def with_network(*nics: dict[str, Any], dns: list[str] | None = None) -> dict[str, Any]:
    description = minimal()
    description["network"] = {"nics": list(nics)}
    if dns is not None:
        description["network"]["dns"] = dns
    return description


def tree_of(description: dict[str, Any]) -> dict[str, bytes]:
    return {f.path: f.data for f in drive_files(parse_drive(description)).files}


def json_file(description: dict[str, Any], name: str, version: str = "latest") -> Any:
    return json.loads(tree_of(description)[f"openstack/{version}/{name}"])


BASE = typical()
BASE["vendor_data"] = {"motd": SECRET_VENDOR_VALUE}
SECRETS = (PASSWORD, BASE["user_data"], SECRET_VENDOR_VALUE)

# (what is wrong, the description, a fragment the message must contain)
BAD: list[tuple[str, object, str]] = [
    ("not an object", ["uuid"], "must be an object"),
    ("unknown top-level key", changed(BASE, ("colour",), "red"), "unknown key(s) 'colour'"),
    ("missing uuid", changed(BASE, ("uuid",), DELETE), "missing required key(s) 'uuid'"),
    ("missing hostname", changed(BASE, ("hostname",), DELETE), "'hostname'"),
    ("uuid not a string", changed(BASE, ("uuid",), 42), "uuid: must be a string"),
    ("uuid malformed", changed(BASE, ("uuid",), "9f1c2b7e-1111-4222-8333"), "uuid: must be a UUID"),
    ("uuid with braces", changed(BASE, ("uuid",), "{" + UUID + "}"), "uuid: must be a UUID"),
    ("hostname with underscore", changed(BASE, ("hostname",), "web_1"), "hostname: must be a host name"),
    ("hostname empty", changed(BASE, ("hostname",), ""), "hostname: must be a host name"),
    ("hostname label too long", changed(BASE, ("hostname",), "a" * 64), "hostname"),
    ("label too long", changed(BASE, ("label",), "A" * 33), "label: must be 1 to 32"),
    ("label with space", changed(BASE, ("label",), "config 2"), "label"),
    ("metadata not an object", changed(BASE, ("metadata",), ["a"]), "metadata: must be an object"),
    ("metadata value not a string", changed(BASE, ("metadata", "service-offering"), 3),
     "must be a string"),
    ("metadata key with slash", changed(BASE, ("metadata", "a/b"), "x"), "keys must be 1 to 60"),
    ("metadata key too long", changed(BASE, ("metadata", "k" * 61), "x"), "keys must be 1 to 60"),
    ("public-keys in metadata", changed(BASE, ("metadata", "public-keys"), KEY_ALICE),
     "derived from public_keys"),
    ("reserved custom key", changed(BASE, ("metadata", "meta"), "x"), "guest agents interpret"),
    ("metadata keys differing in case", changed(BASE, ("metadata", "Instance-ID"), "x"),
     "differ only in case"),
    ("metadata NUL", changed(BASE, ("metadata", "role"), "a\x00b"), "without NUL"),
    ("local-ipv4 not an address", changed(BASE, ("metadata", "local-ipv4"), "10.1.1"),
     "is not an IP address"),
    ("public_keys not a list", changed(BASE, ("public_keys",), KEY_ALICE), "public_keys: must be a list"),
    ("public key not a string", changed(BASE, ("public_keys",), [1]), "public_keys[0]: must be a string"),
    ("public key empty", changed(BASE, ("public_keys",), ["  "]), "public_keys[0]: is empty"),
    ("public key with newline", changed(BASE, ("public_keys",), [KEY_ALICE + "\n" + KEY_BOB]),
     "one line of text"),
    ("public key of one word", changed(BASE, ("public_keys",), ["AAAAC3Nza"]), "must look like"),
    ("user_data not a string", changed(BASE, ("user_data",), 7), "user_data: must be a base64 string"),
    ("user_data not base64", changed(BASE, ("user_data",), "#cloud-config\nruncmd: []"),
     "user_data: is not base64"),
    ("user_data impossible length", changed(BASE, ("user_data",), "QUJDR"), "impossible"),
    ("user_data empty", changed(BASE, ("user_data",), ""), "user_data: is empty"),
    ("user_data only padding", changed(BASE, ("user_data",), "=="), "user_data: is empty"),
    ("user_data url-safe alphabet", changed(BASE, ("user_data",), "ab-_"), "user_data: is not base64"),
    ("password not a string", changed(BASE, ("password",), 1234), "password: must be a string"),
    ("password empty", changed(BASE, ("password",), ""), "password: is empty"),
    ("password with newline", changed(BASE, ("password",), PASSWORD + "\n"), "control characters"),
    ("password lone surrogate", changed(BASE, ("password",), PASSWORD + "\ud800"), "invalid Unicode"),
    ("windows not a boolean", changed(BASE, ("windows",), "yes"), "windows: must be true or false"),
    ("password_in_vendor_data not a boolean", changed(BASE, ("password_in_vendor_data",), 1),
     "password_in_vendor_data: must be true or false"),
    ("vendor_data not an object", changed(BASE, ("vendor_data",), [SECRET_VENDOR_VALUE]),
     "vendor_data: must be an object"),
    ("vendor_data cloud-init a dict", changed(BASE, ("vendor_data", "cloud-init"), {"a": SECRET_VENDOR_VALUE}),
     "vendor_data['cloud-init']"),
    ("vendor_data cloud-init empty", changed(BASE, ("vendor_data", "cloud-init"), []),
     "vendor_data['cloud-init']"),
    ("vendor_data lone surrogate", changed(BASE, ("vendor_data", "x"), SECRET_VENDOR_VALUE + "\udc00"),
     "invalid Unicode"),
    ("network not an object", changed(BASE, ("network",), []), "network: must be an object"),
    ("network without nics", changed(BASE, ("network", "nics"), DELETE), "missing required key(s) 'nics'"),
    ("network with no NIC", changed(BASE, ("network", "nics"), []), "at least one NIC"),
    ("nic unknown key", changed(BASE, ("network", "nics", 0, "vlan"), 5), "network.nics[0]: unknown key"),
    ("mac malformed", changed(BASE, ("network", "nics", 0, "mac"), "02:00:2e:8b:00"),
     "network.nics[0].mac: must be a MAC address"),
    ("mac with dashes", changed(BASE, ("network", "nics", 0, "mac"), "02-00-2e-8b-00-05"), "MAC address"),
    ("mac multicast", changed(BASE, ("network", "nics", 0, "mac"), "01:00:5e:00:00:01"), "unicast"),
    ("device_id negative", changed(BASE, ("network", "nics", 0, "device_id"), -1), "between 0 and 255"),
    ("device_id boolean", changed(BASE, ("network", "nics", 0, "device_id"), True), "must be an integer"),
    ("mtu too small for IPv6", changed(BASE, ("network", "nics", 0, "mtu"), 1000), "at least 1280"),
    ("mtu not a number", changed(BASE, ("network", "nics", 0, "mtu"), "1500"), "must be an integer"),
    ("network_id not a uuid", changed(BASE, ("network", "nics", 0, "network_id"), "net1"), "must be a UUID"),
    ("ipv4 address malformed", changed(BASE, ("network", "nics", 0, "ipv4", "address"), "10.1.1.300"),
     "network.nics[0].ipv4.address: is not an IPv4 address"),
    ("ipv4 address with leading zero", changed(BASE, ("network", "nics", 0, "ipv4", "address"), "10.1.1.050"),
     "is not an IPv4 address"),
    ("ipv4 address is IPv6", changed(BASE, ("network", "nics", 0, "ipv4", "address"), "fd00::50"),
     "is not an IPv4 address"),
    ("ipv4 netmask not contiguous", changed(BASE, ("network", "nics", 0, "ipv4", "netmask"), "255.0.255.0"),
     "contiguous netmask"),
    ("ipv4 netmask as prefix", changed(BASE, ("network", "nics", 0, "ipv4", "netmask"), "24"),
     "is not an IPv4 address"),
    ("ipv4 gateway off the subnet", changed(BASE, ("network", "nics", 0, "ipv4", "gateway"), "10.2.0.1"),
     "must be another address on 10.1.1.0/24"),
    ("ipv4 gateway is the address", changed(BASE, ("network", "nics", 0, "ipv4", "gateway"), "10.1.1.50"),
     "must be another address"),
    ("ipv4 without netmask", changed(BASE, ("network", "nics", 0, "ipv4", "netmask"), DELETE),
     "missing required key(s) 'netmask'"),
    ("ipv4 dhcp false", changed(BASE, ("network", "nics", 0, "ipv4"), {"dhcp": False}), "must be true"),
    ("ipv4 dhcp with address", changed(BASE, ("network", "nics", 0, "ipv4"), {"dhcp": True, "address": "10.1.1.5"}),
     "unknown key(s) 'address'"),
    ("route host bits", changed(BASE, ("network", "nics", 0, "ipv4", "routes", 0, "network"), "192.168.1.0"),
     "has host bits set"),
    ("route gateway off-link", changed(BASE, ("network", "nics", 0, "ipv4", "routes", 0, "gateway"), "10.9.9.9"),
     "is not on the NIC's subnet"),
    ("route default", changed(BASE, ("network", "nics", 0, "ipv4", "routes", 0),
                              {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.1.254"}),
     "default route comes from ipv4.gateway"),
    ("ipv6 zone index", changed(BASE, ("network", "nics", 0, "ipv6", "address"), "fd00::50%eth0"),
     "zone index"),
    ("ipv6 link-local address", changed(BASE, ("network", "nics", 0, "ipv6", "address"), "fe80::50"),
     "link-local"),
    ("ipv6 prefix out of range", changed(BASE, ("network", "nics", 0, "ipv6", "prefix"), 129),
     "between 1 and 128"),
    ("ipv6 gateway off-prefix", changed(BASE, ("network", "nics", 0, "ipv6", "gateway"), "fd01::1"),
     "or link-local"),
    ("ipv6 slaac and dhcp", changed(BASE, ("network", "nics", 0, "ipv6"), {"slaac": True, "dhcp": True}),
     "unknown key(s)"),
    ("duplicate mac", changed(BASE, ("network", "nics"), [nic(), nic(mac=MAC.upper(), device_id=1)]),
     "is used by another NIC"),
    ("duplicate device id", changed(BASE, ("network", "nics"), [nic(), nic(mac=MAC2)]),
     "is used by another NIC"),
    ("dns not an address", changed(BASE, ("network", "dns"), ["dns.example.org"]),
     "network.dns[0]: is not an IPv4 address"),
    ("dns multicast", changed(BASE, ("network", "dns"), ["ff02::1"]), "must be a unicast address"),
]


class ParseDriveTests(SynchronousTestCase):
    def test_rejections(self) -> None:
        """Every malformed description raises DriveError with a message that says what is wrong,
        and no message ever contains the password, the user data or a vendor-data value."""
        for reason, description, fragment in BAD:
            with self.subTest(reason):
                exc = self.assertRaises(DriveError, parse_drive, description)
                message = str(exc)
                self.assertIn(fragment, message)
                for secret in SECRETS:
                    self.assertNotIn(secret, message)

    def test_typical(self) -> None:
        """A complete description parses; defaults are filled in and secrets stay out of the repr."""
        spec = parse_drive(BASE)
        self.assertEqual(spec.uuid, UUID)
        self.assertEqual(spec.label, "config-2")
        self.assertEqual(spec.user_data, USER_DATA)
        self.assertEqual(spec.new_password, PASSWORD)
        self.assertEqual(spec.public_keys, (KEY_ALICE, KEY_BOB))
        self.assertEqual(spec.metadata_value("instance-id"), UUID)
        self.assertEqual(spec.metadata_value("vm-id"), UUID)
        self.assertEqual(spec.metadata_value("local-hostname"), "web1")
        self.assertIsNone(spec.metadata_value("public-keys"))
        for secret in SECRETS:
            self.assertNotIn(secret, repr(spec))

    def test_normalisation(self) -> None:
        """UUIDs and MACs are lower-cased; base64 may lack padding or be wrapped over lines;
        identical keys are kept once and literal "\\n" sequences leave keys."""
        description = changed(typical(), ("uuid",), UUID.upper())
        description["network"]["nics"][0]["mac"] = MAC.upper()
        encoded = b64(b"hello, world!")
        self.assertTrue(encoded.endswith("="))
        description["user_data"] = encoded.rstrip("=")[:8] + "\r\n" + encoded.rstrip("=")[8:]
        description["public_keys"] = [KEY_ALICE, KEY_ALICE + "\\n", " " + KEY_BOB + " "]
        spec = parse_drive(description)
        self.assertEqual(spec.uuid, UUID)
        assert spec.network is not None
        self.assertEqual(spec.network.nics[0].mac, MAC)
        self.assertEqual(spec.user_data, b"hello, world!")
        self.assertEqual(spec.public_keys, (KEY_ALICE, KEY_BOB))

    def test_given_metadata_wins_over_defaults(self) -> None:
        """Legacy instance-id / vm-id values sent by the caller are kept as given."""
        description = changed(minimal(), ("metadata",), {"instance-id": "i-2-15-VM", "vm-id": "15"})
        files = tree_of(description)
        self.assertEqual(files["cloudstack/metadata/instance-id.txt"], b"i-2-15-VM")
        self.assertEqual(files["cloudstack/metadata/vm-id.txt"], b"15")
        self.assertEqual(json_file(description, "meta_data.json")["uuid"], UUID)

    def test_optional_nulls(self) -> None:
        """null means absent for every optional key."""
        description = minimal()
        description.update({key: None for key in ("label", "metadata", "public_keys", "user_data",
                                                  "password", "vendor_data", "network")})
        spec = parse_drive(description)
        self.assertEqual((spec.user_data, spec.password, spec.network, spec.vendor_data),
                         (None, None, None, None))

    def test_label(self) -> None:
        """Labels of up to 32 characters, upper and lower case, are accepted as given."""
        for label in ("config-2", "CONFIG-2", "config", "A" * 32, "cfg_drive.v2"):
            with self.subTest(label):
                self.assertEqual(parse_drive(changed(minimal(), ("label",), label)).label, label)

    def test_user_data_too_large(self) -> None:
        """User data that cannot fit in 64 MiB is refused before it is decoded."""
        description = changed(minimal(), ("user_data",), "A" * (MAX_DRIVE_SIZE // 3 * 4 + 8))
        exc = self.assertRaises(DriveTooLarge, parse_drive, description)
        self.assertIn(str(MAX_DRIVE_SIZE), str(exc))


class TreeTests(SynchronousTestCase):
    def test_minimal_layout(self) -> None:
        """A bare drive: the three metadata defaults, the three cloudstack directories, and every
        OpenStack version with meta_data.json (vendor_data.json `{}` from 2013-10-17); no user
        data, password or network files."""
        tree = drive_files(parse_drive(minimal()))
        self.assertEqual(tree.label, "config-2")
        self.assertEqual(tree.directories[:5], ("cloudstack", "cloudstack/metadata", "cloudstack/password",
                                                "cloudstack/userdata", "openstack"))
        self.assertEqual(tree.directories[5:], tuple(f"openstack/{v}" for v in OPENSTACK_VERSIONS))
        expected = ["cloudstack/metadata/instance-id.txt", "cloudstack/metadata/local-hostname.txt",
                    "cloudstack/metadata/vm-id.txt"]
        for version in OPENSTACK_VERSIONS:
            expected.append(f"openstack/{version}/meta_data.json")
            if version == "latest" or version >= "2013-10-17":
                expected.append(f"openstack/{version}/vendor_data.json")
        self.assertEqual(tree.paths(), expected)
        self.assertEqual(tree.read("openstack/latest/vendor_data.json"), b"{}")
        self.assertEqual(json.loads(tree.read("openstack/latest/meta_data.json")),
                         {"uuid": UUID, "hostname": "web1"})

    def test_typical_layout(self) -> None:
        """Every file of a complete drive, in order, and which ones are stored once."""
        tree = drive_files(parse_drive(typical()))
        metadata = ["availability-zone", "cloud-identifier", "cloud-name", "hypervisor-host-name",
                    "instance-id", "local-hostname", "local-ipv4", "public-hostname", "public-ipv4",
                    "public-keys", "role", "service-offering", "vm-id"]
        expected = [f"cloudstack/metadata/{key}.txt" for key in metadata]
        expected += ["cloudstack/password/vm_password.txt", "cloudstack/userdata/user_data.txt"]
        for version in OPENSTACK_VERSIONS:
            expected.append(f"openstack/{version}/meta_data.json")
            if version == "latest" or version >= "2015-10-15":
                expected.append(f"openstack/{version}/network_data.json")
            expected.append(f"openstack/{version}/user_data")
            if version == "latest" or version >= "2013-10-17":
                expected.append(f"openstack/{version}/vendor_data.json")
        self.assertEqual(tree.paths(), expected)
        links = {f.path: f.same_as for f in tree.files}
        self.assertEqual(links["openstack/latest/user_data"], "cloudstack/userdata/user_data.txt")
        self.assertEqual(links["openstack/latest/meta_data.json"], "openstack/2012-08-10/meta_data.json")
        self.assertEqual(links["openstack/latest/network_data.json"], "openstack/2015-10-15/network_data.json")
        self.assertEqual(links["cloudstack/metadata/vm-id.txt"], "cloudstack/metadata/instance-id.txt")
        self.assertIsNone(links["cloudstack/userdata/user_data.txt"])
        for drive_file in tree.files:
            if drive_file.same_as is not None:
                self.assertEqual(drive_file.data, tree.read(drive_file.same_as))
        self.assertEqual(tree.content_size(), sum(len(f.data) for f in tree.files if f.same_as is None))

    def test_metadata_files(self) -> None:
        """Values are written as UTF-8 without a newline; blank values get no file; public-keys
        joins the keys with newlines."""
        description = typical()
        description["metadata"].update({"public-ipv4": "", "cloud-domain": "  ", "motto": "grüß dich"})
        files = tree_of(description)
        self.assertEqual(files["cloudstack/metadata/service-offering.txt"], b"Small")
        self.assertEqual(files["cloudstack/metadata/motto.txt"], "grüß dich".encode())
        self.assertEqual(files["cloudstack/metadata/public-keys.txt"], f"{KEY_ALICE}\n{KEY_BOB}".encode())
        self.assertEqual(files["cloudstack/metadata/instance-id.txt"], UUID.encode())
        self.assertNotIn("cloudstack/metadata/public-ipv4.txt", files)
        self.assertNotIn("cloudstack/metadata/cloud-domain.txt", files)

    def test_meta_data_json(self) -> None:
        """meta_data.json maps the CloudStack keys as spec §4 says, copies custom keys, and is
        compact, key-sorted JSON identical in every version."""
        tree = drive_files(parse_drive(typical()))
        raw = tree.read("openstack/latest/meta_data.json")
        document = json.loads(raw)
        self.assertEqual(raw, json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
        self.assertEqual(document, {
            "uuid": UUID, "hostname": "web1", "name": "web1.example.org", "availability_zone": "zone1",
            "hypervisor-host-name": "kvm01", "cloud-name": "acme", "role": "frontend",
            "keys": [{"type": "ssh", "data": KEY_ALICE, "name": "key"},
                     {"type": "ssh", "data": KEY_BOB, "name": "key-1"}],
            "public_keys": {"key": KEY_ALICE, "key-1": KEY_BOB},
        })
        for version in OPENSTACK_VERSIONS:
            self.assertEqual(tree.read(f"openstack/{version}/meta_data.json"), raw)

    def test_key_names(self) -> None:
        """Each key gets its own name: the comment when the key has more than three tokens
        (CloudStack's rule), else `key`; repeats get the first free numbered suffix."""
        keys = ("ssh-ed25519 AAAA1 alice@laptop",
                "ssh-rsa AAAA2 bob@desk",
                "ssh-rsa AAAA3 carol extra words",
                "ssh-rsa AAAA4 carol again here",
                "ssh-rsa AAAA5 key-1 x",
                "ecdsa-sha2-nistp256 AAAA6")
        self.assertEqual(key_names(keys), ["key", "key-1", "carol", "carol-1", "key-1-1", "key-2"])
        self.assertEqual(key_names(keys), key_names(keys))
        description = changed(minimal(), ("public_keys",), list(keys))
        document = json_file(description, "meta_data.json")
        self.assertEqual(len(document["public_keys"]), len(keys))
        self.assertEqual(sorted(document["public_keys"].values()), sorted(keys))
        self.assertEqual([entry["data"] for entry in document["keys"]], list(keys))

    def test_password_files(self) -> None:
        """vm_password.txt holds the password; Windows guests also get the md5 with leading zeros
        dropped (Java BigInteger.toString(16)); saved_password writes neither."""
        password = "pw443"
        digest = hashlib.md5(password.encode()).hexdigest()
        self.assertTrue(digest.startswith("00000"))
        description = changed(minimal(), ("password",), password)
        description["windows"] = True
        files = tree_of(description)
        self.assertEqual(files["cloudstack/password/vm_password.txt"], b"pw443")
        self.assertEqual(files["cloudstack/password/vm-password-md5checksum.txt"], digest.lstrip("0").encode())
        self.assertEqual(password_md5(password), "fe1006c8ce47a15e096f1e3de66")
        self.assertNotIn("cloudstack/password/vm-password-md5checksum.txt",
                         tree_of(changed(description, ("windows",), False)))
        saved = changed(description, ("password",), "saved_password")
        saved["password_in_vendor_data"] = True
        files = tree_of(saved)
        self.assertFalse([path for path in files if path.startswith("cloudstack/password/")])
        self.assertEqual(files["openstack/latest/vendor_data.json"], b"{}")

    def test_user_data_files(self) -> None:
        """user_data.txt and every version's user_data hold the decoded bytes, unchanged."""
        data = bytes(range(256)) * 3
        files = tree_of(changed(minimal(), ("user_data",), b64(data)))
        self.assertEqual(files["cloudstack/userdata/user_data.txt"], data)
        for version in OPENSTACK_VERSIONS:
            self.assertEqual(files[f"openstack/{version}/user_data"], data)

    def test_vendor_data(self) -> None:
        """vendor_data.json is `{}` without additions; with password_in_vendor_data the password
        arrives as a cloud-config string under `cloud-init`."""
        self.assertEqual(json_file(typical(), "vendor_data.json"), {})
        description = changed(typical(), ("password_in_vendor_data",), True)
        document = json_file(description, "vendor_data.json")
        self.assertEqual(document, {"cloud-init": password_cloud_config(PASSWORD)})
        self.assertEqual(document["cloud-init"],
                         '#cloud-config\npassword: "Vx8gkq2Lr"\nchpasswd: {expire: false}\nssh_pwauth: true\n')

    def test_vendor_data_operator_additions(self) -> None:
        """Operator keys merge at the top level; the operator's `cloud-init` and the password's
        cloud-config become one list of parts, the password part last."""
        additions = {"motd": "hello", "cloud-init": "#cloud-config\npackages: [htop]\n"}
        description = changed(typical(), ("vendor_data",), additions)
        self.assertEqual(json_file(description, "vendor_data.json"), additions)
        description["password_in_vendor_data"] = True
        self.assertEqual(json_file(description, "vendor_data.json"), {
            "motd": "hello",
            "cloud-init": [additions["cloud-init"], password_cloud_config(PASSWORD)],
        })
        description["vendor_data"]["cloud-init"] = ["#cloud-config\na: 1\n", "#!/bin/sh\ntrue\n"]
        self.assertEqual(json_file(description, "vendor_data.json")["cloud-init"],
                         ["#cloud-config\na: 1\n", "#!/bin/sh\ntrue\n", password_cloud_config(PASSWORD)])

    def test_yaml_quoting(self) -> None:
        """Passwords become one printable-ASCII double-quoted YAML scalar whatever they contain."""
        self.assertEqual(yaml_quoted('a"b\\c: #d'), '"a\\"b\\\\c: #d"')
        self.assertEqual(yaml_quoted("é€😀"), '"\\xe9\\u20ac\\U0001f600"')
        for password in ("plain", "it's: a #comment", "ünïcødé €", "😀", "- [x]", "&anchor *alias"):
            config = password_cloud_config(password)
            self.assertTrue(config.isascii())
            self.assertEqual(config.count("\n"), 4)

    def test_network_static(self) -> None:
        """IPv4 + IPv6 static: one phy link, two networks with their default routes (IPv4 route
        list keeps the extra route), DNS services; only from 2015-10-15 on."""
        tree = drive_files(parse_drive(typical()))
        document = json.loads(tree.read("openstack/latest/network_data.json"))
        self.assertEqual(document, {
            "links": [{"ethernet_mac_address": MAC, "id": "eth0", "mtu": 1500, "type": "phy"}],
            "networks": [
                {"id": "eth0", "link": "eth0", "network_id": NETWORK_UUID, "type": "ipv4",
                 "ip_address": "10.1.1.50", "netmask": "255.255.255.0",
                 "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.1.1"},
                            {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.1.1.254"}]},
                {"id": "eth0", "link": "eth0", "network_id": NETWORK_UUID, "type": "ipv6",
                 "ip_address": "fd00::50", "netmask": "ffff:ffff:ffff:ffff::",
                 "routes": [{"network": "::", "netmask": "0", "gateway": "fd00::1"}]},
            ],
            "services": [{"address": "10.1.1.1", "type": "dns"}, {"address": "8.8.8.8", "type": "dns"},
                         {"address": "fd00::1", "type": "dns"}],
        })
        paths = tree.paths()
        self.assertNotIn("openstack/2013-10-17/network_data.json", paths)
        self.assertIn("openstack/2015-10-15/network_data.json", paths)

    def test_network_dhcp_and_slaac(self) -> None:
        """DHCP and SLAAC families become ipv4_dhcp, ipv6_dhcp and ipv6_slaac networks."""
        description = with_network(nic(ipv4={"dhcp": True}, ipv6={"dhcp": True}),
                                   nic(mac=MAC2, device_id=1, ipv6={"slaac": True}))
        networks = json_file(description, "network_data.json")["networks"]
        self.assertEqual([(n["id"], n["type"]) for n in networks],
                         [("eth0", "ipv4_dhcp"), ("eth0", "ipv6_dhcp"), ("eth1", "ipv6_slaac")])
        self.assertEqual(networks[0], {"id": "eth0", "link": "eth0", "type": "ipv4_dhcp"})

    def test_network_several_nics(self) -> None:
        """NICs are ordered by device id whatever the input order; each static NIC gets its own
        default route; a NIC without addresses is still a link; DNS is de-duplicated."""
        description = with_network(
            nic(mac=MAC2, device_id=2, mtu=9000,
                ipv4={"address": "192.168.5.10", "netmask": "255.255.255.0", "gateway": "192.168.5.1"}),
            nic(mac="02:00:00:00:00:01", device_id=1),
            nic(ipv4={"address": "10.1.1.50", "netmask": "255.255.255.0", "gateway": "10.1.1.1"}),
            dns=["10.1.1.1", "10.1.1.1", "192.168.5.1"])
        document = json_file(description, "network_data.json")
        self.assertEqual([(link["id"], link["ethernet_mac_address"], link["mtu"]) for link in document["links"]],
                         [("eth0", MAC, 1500), ("eth1", "02:00:00:00:00:01", 1500), ("eth2", MAC2, 9000)])
        self.assertEqual([(n["link"], n["routes"][0]["gateway"]) for n in document["networks"]],
                         [("eth0", "10.1.1.1"), ("eth2", "192.168.5.1")])
        self.assertEqual(document["services"], [{"address": "10.1.1.1", "type": "dns"},
                                                {"address": "192.168.5.1", "type": "dns"}])

    def test_network_without_gateway(self) -> None:
        """A static IPv4 network without a gateway has no default route."""
        description = with_network(nic(ipv4={"address": "10.1.1.50", "netmask": "255.255.255.0"}))
        self.assertEqual(json_file(description, "network_data.json")["networks"][0]["routes"], [])

    def test_unknown_network(self) -> None:
        """Without a network (absent or null) no version has a network_data.json at all."""
        for network in (DELETE, None):
            description = changed(typical(), ("network",), network)
            paths = drive_files(parse_drive(description)).paths()
            self.assertFalse([path for path in paths if path.endswith("network_data.json")])

    def test_deterministic(self) -> None:
        """The same description gives the same tree, whatever the key order of its objects."""
        description = typical()
        reordered = json.loads(json.dumps(description, sort_keys=True))
        reordered["metadata"] = dict(reversed(list(reordered["metadata"].items())))
        self.assertEqual(drive_files(parse_drive(description)), drive_files(parse_drive(reordered)))

    def test_spec_is_immutable(self) -> None:
        """DriveSpec is a frozen value."""
        spec = parse_drive(minimal())
        self.assertIsInstance(spec, DriveSpec)
        with self.assertRaises(AttributeError):
            spec.hostname = "other"  # type: ignore[misc]

    def test_base64_round_trip(self) -> None:
        """Padding-free base64 of every length decodes to the original bytes."""
        for length in range(1, 12):
            data = bytes(range(length))
            encoded = base64.b64encode(data).decode().rstrip("=")
            self.assertEqual(parse_drive(changed(minimal(), ("user_data",), encoded)).user_data, data)
