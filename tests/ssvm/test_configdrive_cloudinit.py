"""Tests that cloud-init (Debian's, unpatched) reads our config drives as intended.

Each test builds an ISO, extracts it, and runs `cloudinit_probe.py` under /usr/bin/python3, which
drives cloud-init's ConfigDrive reader and datasource and prints what they understood.
"""

from __future__ import annotations

import gzip
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ssvm.configdrive.content import parse_drive
from ssvm.configdrive.iso import build_iso
from tests.ssvm.configdrive_helpers import (
    KEY_ALICE,
    KEY_BOB,
    MAC,
    MAC2,
    PASSWORD,
    USER_DATA,
    UUID,
    b64,
    cloudinit_load_yaml,
    minimal,
    probe_cloudinit,
    require_cloudinit,
    typical,
)

AWKWARD_PASSWORDS = [
    'quote"and\'apostrophe',
    "colon: space",
    "#not-a-comment",
    " leading and trailing ",
    "back\\slash",
    "yes",
    "0o17",
    "~",
    "- [list]",
    "{flow: map}",
    "&anchor *alias !tag %directive @at `tick`",
    "ünïcødé €uro",
    "😀 emoji",
    "\u00a0nbsp\u2028line-sep",
]


def probe(description: dict[str, Any], macs: dict[str, str] | None = None) -> dict[str, Any]:
    """cloud-init's view of the drive on a guest whose NICs are `macs` (default: MAC as eth0)."""
    return probe_cloudinit(build_iso(parse_drive(description)), {MAC: "eth0"} if macs is None else macs)


class CloudInitTests(SynchronousTestCase):
    def setUp(self) -> None:
        require_cloudinit()

    def test_metadata(self) -> None:
        """instance-id is the VM UUID, local-hostname the host name, every SSH key arrives, and
        cloud-init chose the newest dated version it knows (2018-08-27)."""
        result = probe(typical(), {MAC: "eth0"})
        read = result["read"]
        self.assertEqual(read["openstack_version"], "2018-08-27")
        self.assertEqual(read["metadata"]["instance-id"], UUID)
        self.assertEqual(read["metadata"]["local-hostname"], "web1")
        source = result["datasource"]
        self.assertTrue(source["found"])
        self.assertEqual(source["instance_id"], UUID)
        self.assertEqual(source["hostname"], "web1")
        self.assertEqual(source["availability_zone"], "zone1")
        self.assertEqual(sorted(source["public_keys"]), sorted([KEY_ALICE, KEY_BOB]))

    def test_many_keys(self) -> None:
        """Five keys, three of them with the same derived name, all reach cloud-init."""
        keys = [f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i} user{i}@host" for i in range(3)]
        keys += ["ssh-rsa AAAAB3Nza1 dup extra words", "ssh-rsa AAAAB3Nza2 dup extra words"]
        source = probe({**minimal(), "public_keys": keys})["datasource"]
        self.assertEqual(sorted(source["public_keys"]), sorted(keys))

    def test_user_data_plain(self) -> None:
        """Plain cloud-config user data arrives byte for byte and is recognised as cloud-config."""
        source = probe(typical())["datasource"]
        self.assertEqual(source["userdata_raw_b64"], b64(USER_DATA))
        self.assertEqual([p["type"] for p in source["userdata_parts"]], ["text/cloud-config"])

    def test_user_data_gzip(self) -> None:
        """Gzipped user data arrives compressed, unchanged; cloud-init then decompresses it."""
        compressed = gzip.compress(USER_DATA, mtime=0)
        source = probe({**minimal(), "user_data": b64(compressed)})["datasource"]
        self.assertEqual(source["userdata_raw_b64"], b64(compressed))
        self.assertEqual(source["userdata_parts"], [{"type": "text/cloud-config", "payload_b64": b64(USER_DATA)}])

    def test_user_data_mime(self) -> None:
        """MIME multipart user data arrives unchanged and cloud-init splits it into its parts."""
        message = MIMEMultipart()
        message.attach(MIMEText("#cloud-config\npackages: [htop]\n", "cloud-config"))
        message.attach(MIMEText("#!/bin/sh\necho hello\n", "x-shellscript"))
        raw = message.as_bytes()
        source = probe({**minimal(), "user_data": b64(raw)})["datasource"]
        self.assertEqual(source["userdata_raw_b64"], b64(raw))
        self.assertEqual([p["type"] for p in source["userdata_parts"]],
                         ["text/cloud-config", "text/x-shellscript"])

    def test_no_user_data(self) -> None:
        """Without user data cloud-init gets empty user data."""
        source = probe(minimal())["datasource"]
        self.assertIn(source["userdata_raw_b64"], (None, ""))

    def test_vendor_data_empty(self) -> None:
        """`{}` gives no vendor data at all."""
        source = probe(typical())["datasource"]
        self.assertIsNone(source["vendordata_raw"])

    def test_vendor_data_password(self) -> None:
        """The password in vendor data is a cloud-config that sets it, unexpired, with SSH
        password authentication."""
        source = probe({**typical(), "password_in_vendor_data": True})["datasource"]
        self.assertEqual(source["vendordata_cloud_config"],
                         {"password": PASSWORD, "chpasswd": {"expire": False}, "ssh_pwauth": True})

    def test_vendor_data_with_operator_part(self) -> None:
        """An operator cloud-config and the password part are merged by cloud-init in order: the
        operator's keys stay, the password part wins where both set a key."""
        description = {**typical(), "password_in_vendor_data": True,
                       "vendor_data": {"cloud-init": "#cloud-config\npackages: [htop]\npassword: operator\n",
                                       "other": {"ignored": True}}}
        source = probe(description)["datasource"]
        self.assertEqual([p["type"] for p in source["vendordata_parts"]],
                         ["text/cloud-config", "text/cloud-config"])
        self.assertEqual(source["vendordata_cloud_config"],
                         {"packages": ["htop"], "password": PASSWORD, "chpasswd": {"expire": False},
                          "ssh_pwauth": True})

    def test_password_yaml_round_trip(self) -> None:
        """Any password survives cloud-init's YAML loader exactly, whatever it contains."""
        from ssvm.configdrive.content import password_cloud_config

        loaded = cloudinit_load_yaml([password_cloud_config(p) for p in AWKWARD_PASSWORDS])
        self.assertEqual([document["password"] for document in loaded], AWKWARD_PASSWORDS)
        for document in loaded:
            self.assertEqual(document["chpasswd"], {"expire": False})
            self.assertIs(document["ssh_pwauth"], True)

    def test_password_through_the_drive(self) -> None:
        """An awkward password reaches cloud-init's merged vendor cloud-config intact."""
        password = AWKWARD_PASSWORDS[0] + AWKWARD_PASSWORDS[-3]
        source = probe({**typical(), "password": password, "password_in_vendor_data": True})["datasource"]
        self.assertEqual(source["vendordata_cloud_config"]["password"], password)

    def test_network_static(self) -> None:
        """Static IPv4 + IPv6 become a v1 physical entry matched by MAC with static and static6
        subnets, their routes and the name servers; normalised, the prefixes are 24 and 64 and
        both default routes have prefix 0."""
        result = probe(typical(), {MAC: "ens3"})
        config = result["datasource"]["network_config"]
        self.assertEqual(config["version"], 1)
        physical, *nameservers = config["config"]
        self.assertEqual((physical["type"], physical["name"], physical["mac_address"], physical["mtu"]),
                         ("physical", "ens3", MAC, 1500))
        v4, v6 = physical["subnets"]
        self.assertEqual((v4["type"], v4["address"], v4["netmask"]), ("static", "10.1.1.50", "255.255.255.0"))
        self.assertEqual(v4["routes"][0], {"gateway": "10.1.1.1", "netmask": "0.0.0.0", "network": "0.0.0.0"})
        self.assertEqual((v6["type"], v6["address"]), ("static6", "fd00::50"))
        self.assertEqual(nameservers, [{"address": a, "type": "nameserver"}
                                       for a in ("10.1.1.1", "8.8.8.8", "fd00::1")])
        state = result["datasource"]["network_state"]
        subnets = state["interfaces"]["ens3"]["subnets"]
        self.assertEqual([(s["type"], s["address"], s["prefix"]) for s in subnets],
                         [("static", "10.1.1.50", 24), ("static6", "fd00::50", 64)])
        self.assertEqual([(r["network"], r["prefix"], r["gateway"]) for r in subnets[0]["routes"]],
                         [("0.0.0.0", 0, "10.1.1.1"), ("192.168.0.0", 16, "10.1.1.254")])
        self.assertEqual([(r["network"], r["prefix"], r["gateway"]) for r in subnets[1]["routes"]],
                         [("::", 0, "fd00::1")])
        self.assertEqual(state["dns_nameservers"], ["10.1.1.1", "8.8.8.8", "fd00::1"])

    def test_network_dhcp_several_nics(self) -> None:
        """DHCP and SLAAC families become dhcp4, dhcp6 and ipv6_slaac subnets, one physical entry
        per NIC, each matched by its MAC."""
        description = {**minimal(), "network": {"nics": [
            {"mac": MAC, "device_id": 0, "ipv4": {"dhcp": True}, "ipv6": {"dhcp": True}},
            {"mac": MAC2, "device_id": 1, "ipv6": {"slaac": True}},
        ]}}
        config = probe(description, {MAC: "eth0", MAC2: "eth1"})["datasource"]["network_config"]
        entries = {entry["name"]: entry for entry in config["config"]}
        self.assertEqual([s["type"] for s in entries["eth0"]["subnets"]], ["dhcp4", "dhcp6"])
        self.assertEqual([s["type"] for s in entries["eth1"]["subnets"]], ["ipv6_slaac"])
        self.assertEqual(entries["eth1"]["mac_address"], MAC2)

    def test_unknown_mac(self) -> None:
        """A MAC that is not on the guest makes cloud-init's conversion fail (why the drive must
        carry the VM's real MACs)."""
        source = probe(typical(), {MAC2: "eth0"})["datasource"]
        self.assertIsNone(source["network_config"])
        self.assertIn("Unable to find a system nic", source["network_config_error"])

    def test_no_network(self) -> None:
        """Without a network the drive has no network_data.json, and cloud-init takes no network
        configuration from it (it falls back to DHCP on the first NIC)."""
        result = probe({**typical(), "network": None}, {MAC: "eth0"})
        self.assertFalse(result["read"]["has_networkdata"])
        self.assertIsNone(result["datasource"]["network_config"])
        self.assertTrue(result["datasource"]["found"])
