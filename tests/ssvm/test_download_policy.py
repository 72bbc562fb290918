"""AddressPolicy: every refused class, the IPv6 forms of IPv4 addresses, and allowed CIDRs (pure)."""

from __future__ import annotations

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from ssvm.download.policy import AddressPolicy, classify, embedded_ipv4, parse_address

REFUSED = {
    # IPv4
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "127.0.0.1": "loopback",
    "127.0.0.2": "loopback",
    "127.255.255.254": "loopback",
    "169.254.169.254": "link-local",
    "169.254.0.1": "link-local",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "255.255.255.255": "broadcast",
    "240.0.0.1": "reserved",
    "250.1.2.3": "reserved",
    "10.0.0.1": "private",
    "10.255.255.255": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "private",
    "100.127.255.254": "private",
    "192.0.0.8": "reserved",
    "192.0.2.1": "reserved",
    "198.51.100.7": "reserved",
    "203.0.113.9": "reserved",
    "198.18.0.1": "reserved",
    "198.19.255.255": "reserved",
    "192.88.99.1": "reserved",
    # IPv6
    "::": "unspecified",
    "::1": "loopback",
    "fe80::1": "link-local",
    "febf::1": "link-local",
    "fe80::1%eth0": "link-local",
    "fec0::1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "ff02::1": "multicast",
    "ff0e::1": "multicast",
    "64:ff9b:1::1": "private",
    "100::1": "reserved",
    "2001::1": "reserved",  # Teredo
    "2001:2::1": "reserved",  # benchmarking
    "2001:db8::1": "reserved",
    "3fff::1": "reserved",
    "::7f00:1": "reserved",  # IPv4-compatible ::127.0.0.1
    "::a00:1": "reserved",
    "4000::1": "reserved",  # outside 2000::/3
    "e000::1": "reserved",
    # IPv4 in IPv6
    "::ffff:127.0.0.1": "loopback, IPv4 in IPv6",
    "::ffff:169.254.169.254": "link-local, IPv4 in IPv6",
    "::ffff:10.1.2.3": "private, IPv4 in IPv6",
    "::ffff:0.0.0.0": "unspecified, IPv4 in IPv6",
    "::ffff:255.255.255.255": "broadcast, IPv4 in IPv6",
    "::ffff:224.0.0.1": "multicast, IPv4 in IPv6",
    "64:ff9b::127.0.0.1": "loopback, IPv4 in IPv6",
    "64:ff9b::169.254.169.254": "link-local, IPv4 in IPv6",
    "2002:7f00:1::1": "loopback, IPv4 in IPv6",
    "2002:a9fe:a9fe::1": "link-local, IPv4 in IPv6",
    "2002:c0a8:101::": "private, IPv4 in IPv6",
}

GLOBAL = ["1.1.1.1", "8.8.8.8", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255",
          "100.128.0.1", "169.253.255.255", "169.255.0.1", "223.255.255.255", "11.0.0.1", "192.169.0.1",
          "2606:4700:4700::1111", "2a00:1450:4001::1", "2001:4860:4860::8888", "::ffff:8.8.8.8",
          "64:ff9b::8.8.8.8", "2002:808:808::1"]


class ClassifyTests(SynchronousTestCase):
    def test_refused_classes(self) -> None:
        """Each non-global address is refused with its class name."""
        policy = AddressPolicy([])
        for address, reason in REFUSED.items():
            self.assertEqual(policy.refusal(address), reason, address)
            self.assertFalse(policy.allows(address), address)

    def test_global_addresses(self) -> None:
        policy = AddressPolicy([])
        for address in GLOBAL:
            self.assertIsNone(policy.refusal(address), address)
            self.assertTrue(policy.allows(address), address)

    def test_invalid(self) -> None:
        for text in ["", "localhost", "1.2.3", "1.2.3.4.5", "::g", "256.1.1.1", "[::1]"]:
            self.assertEqual(AddressPolicy([]).refusal(text), "not an IP address", text)

    def test_accepts_ipaddress_objects(self) -> None:
        self.assertEqual(classify(ipaddress.ip_address("127.0.0.1")), "loopback")
        self.assertEqual(AddressPolicy([]).refusal(ipaddress.ip_address("10.0.0.1")), "private")

    def test_embedded(self) -> None:
        cases = {"::ffff:1.2.3.4": "1.2.3.4", "64:ff9b::1.2.3.4": "1.2.3.4", "2002:102:304::": "1.2.3.4",
                 "2606:4700::1": None, "1.2.3.4": None}
        for text, expected in cases.items():
            address = parse_address(text)
            assert address is not None
            inner = embedded_ipv4(address)
            self.assertEqual(None if inner is None else str(inner), expected, text)


class AllowedTests(SynchronousTestCase):
    def test_allowed_cidr_overrides_every_class(self) -> None:
        """Inside an operator-allowed CIDR anything goes, loopback included (as the tests need)."""
        policy = AddressPolicy(["127.0.0.1/32", "10.1.0.0/16", "fd00::/8", "169.254.169.254/32"])
        for address in ["127.0.0.1", "10.1.2.3", "fd00::5", "169.254.169.254", "::ffff:127.0.0.1",
                        "::ffff:10.1.9.9", "64:ff9b::10.1.0.1", "2002:a01:101::"]:
            self.assertIsNone(policy.refusal(address), address)
        for address, reason in [("127.0.0.2", "loopback"), ("10.2.0.1", "private"), ("fe80::1", "link-local"),
                                ("fc00::1", "private"), ("169.254.169.253", "link-local"),
                                ("::ffff:127.0.0.2", "loopback, IPv4 in IPv6")]:
            self.assertEqual(policy.refusal(address), reason, address)

    def test_cidr_forms(self) -> None:
        """Host bits are tolerated, white space trimmed; garbage is a clear error."""
        policy = AddressPolicy([" 192.168.7.1/24 ", "::1"])
        self.assertTrue(policy.allows("192.168.7.200"))
        self.assertTrue(policy.allows("::1"))
        self.assertFalse(policy.allows("192.168.8.1"))
        with self.assertRaises(ValueError) as caught:
            AddressPolicy(["10.0.0.0/33"])
        self.assertIn("allowed CIDR '10.0.0.0/33' is not a network", str(caught.exception))

    def test_ipv4_cidr_does_not_match_unrelated_ipv6(self) -> None:
        policy = AddressPolicy(["0.0.0.0/0"])
        self.assertTrue(policy.allows("127.0.0.1"))
        self.assertEqual(policy.refusal("::1"), "loopback")
        self.assertTrue(policy.allows("::ffff:127.0.0.1"))

    def test_everything_allowed(self) -> None:
        policy = AddressPolicy(["0.0.0.0/0", "::/0"])
        for address in list(REFUSED) + GLOBAL:
            self.assertTrue(policy.allows(address), address)
        self.assertEqual(policy.refusal("nonsense"), "not an IP address")
