"""Tests for `routervm.records`: the VM record's JSON form, its validation, and owner lookup."""

from __future__ import annotations

import base64
import copy
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from routervm.records import (
    MAX_USER_DATA_BYTES,
    Nic,
    RecordError,
    RecordIndex,
    VmRecord,
    decode_user_data,
    identity_key,
)

UUID = "9f1c2b7e-1111-4222-8333-444455556666"


def record_json(**overrides: Any) -> dict[str, Any]:
    """A complete record in JSON form, as cloudd would push it (router.md §7.3 values)."""
    obj: dict[str, Any] = {
        "uuid": UUID,
        "instance_name": "i-2-5-VM",
        "hostname": "web1",
        "nics": [{"mac": "02:00:4c:5e:00:02", "ip": "10.1.1.50", "default": True, "interface": "eth0"}],
        "service_offering": "Small Instance",
        "availability_zone": "zone1",
        "local_hostname": None,
        "public_ipv4": "203.0.113.10",
        "public_hostname": "203.0.113.10",
        "vm_id": None,
        "instance_id": None,
        "cloud_identifier": "0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff",
        "hypervisor_host_name": None,
        "cloud_domain": None,
        "cloud_domain_id": None,
        "cloud_name": None,
        "extra": {"role": "web"},
        "user_data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViMQo=",
        "public_keys": ["ssh-ed25519 AAAAC3Nza alice@laptop"],
    }
    obj.update(overrides)
    return obj


class FromJsonTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """to_json gives back exactly what from_json read, and reading that again gives an equal record."""
        obj = record_json()
        record = VmRecord.from_json(obj)
        self.assertEqual(record.to_json(), obj)
        self.assertEqual(VmRecord.from_json(record.to_json()), record)

    def test_user_data_decoded(self) -> None:
        """User data arrives base64 and is held decoded."""
        record = VmRecord.from_json(record_json())
        self.assertEqual(record.user_data, b"#cloud-config\nhostname: web1\n")

    def test_user_data_unpadded(self) -> None:
        """Missing `=` padding is added, as the reference router does; whitespace is ignored."""
        self.assertEqual(decode_user_data("aGk"), b"hi")
        self.assertEqual(decode_user_data("aGVs\nbG8="), b"hello")

    def test_binary_user_data_round_trip(self) -> None:
        """Arbitrary bytes (gzip, MIME) survive the round trip unchanged."""
        data = bytes(range(256)) * 3
        record = VmRecord.from_json(record_json(user_data=base64.b64encode(data).decode()))
        self.assertEqual(record.user_data, data)
        self.assertEqual(VmRecord.from_json(record.to_json()).user_data, data)

    def test_minimal(self) -> None:
        """Only uuid, instance_name, hostname and nics are required; the rest defaults to absent."""
        record = VmRecord.from_json(
            {
                "uuid": UUID,
                "instance_name": "i-2-5-VM",
                "hostname": "web1",
                "nics": [
                    {"mac": "02:00:4C:5E:00:02", "ip": "10.1.1.50", "default": False, "interface": "eth0"}
                ],
            }
        )
        self.assertIsNone(record.user_data)
        self.assertEqual(record.public_keys, ())
        self.assertEqual(record.extra, ())
        self.assertIsNone(record.service_offering)
        self.assertEqual(record.nics[0].mac, "02:00:4c:5e:00:02")
        self.assertEqual(record.default_nic, record.nics[0])

    def test_extra_order_kept(self) -> None:
        """Custom keys keep the order cloudd sent them in."""
        record = VmRecord.from_json(record_json(extra={"zeta": "1", "alpha": "2"}))
        self.assertEqual(record.extra, (("zeta", "1"), ("alpha", "2")))

    def test_repr_hides_user_data(self) -> None:
        """User data may hold secrets; the record's repr leaves it out."""
        record = VmRecord.from_json(record_json(user_data=base64.b64encode(b"secret-token").decode()))
        self.assertNotIn("secret-token", repr(record))

    def test_rejections(self) -> None:
        """Each malformed record is refused with RecordError (a ValueError)."""
        nic = {"mac": "02:00:4c:5e:00:02", "ip": "10.1.1.50", "default": True, "interface": "eth0"}
        second = {"mac": "02:00:4c:5e:00:03", "ip": "10.1.1.51", "default": True, "interface": "eth0"}
        cases: list[tuple[str, object]] = [
            ("not an object", ["uuid"]),
            ("unknown member", record_json(colour="blue")),
            ("missing uuid", {k: v for k, v in record_json().items() if k != "uuid"}),
            ("missing nics", {k: v for k, v in record_json().items() if k != "nics"}),
            ("empty uuid", record_json(uuid="")),
            ("numeric hostname", record_json(hostname=5)),
            ("nics not a list", record_json(nics=nic)),
            ("no nics", record_json(nics=[])),
            ("two defaults", record_json(nics=[nic, second])),
            ("duplicate nic", record_json(nics=[nic, dict(nic, default=False)])),
            ("bad mac", record_json(nics=[dict(nic, mac="02:00:4c:5e:00")])),
            ("bad ip", record_json(nics=[dict(nic, ip="10.1.1.300")])),
            ("leading-zero ip", record_json(nics=[dict(nic, ip="010.1.1.50")])),
            ("default not bool", record_json(nics=[dict(nic, default=1)])),
            ("empty interface", record_json(nics=[dict(nic, interface="")])),
            ("interface over 15 characters", record_json(nics=[dict(nic, interface="e" * 16)])),
            ("interface with a slash", record_json(nics=[dict(nic, interface="eth0/1")])),
            ("unknown nic member", record_json(nics=[dict(nic, vlan=5)])),
            ("nic lacks ip", record_json(nics=[{k: v for k, v in nic.items() if k != "ip"}])),
            ("bad base64", record_json(user_data="not base64!")),
            ("user data not text", record_json(user_data=123)),
            ("user data too big", record_json(user_data="A" * (MAX_USER_DATA_BYTES // 3 * 4 + 8))),
            ("public_keys not a list", record_json(public_keys="ssh-ed25519 AAAA")),
            ("multi-line key", record_json(public_keys=["ssh-ed25519 AAAA\nssh-rsa BBBB"])),
            ("empty key", record_json(public_keys=[""])),
            ("extra not an object", record_json(extra=[["a", "b"]])),
            ("extra key with =", record_json(extra={"0=x": "y"})),
            ("extra key with /", record_json(extra={"a/b": "y"})),
            ("extra key ..", record_json(extra={"..": "y"})),
            ("extra key reserved", record_json(extra={"Instance-ID": "y"})),
            ("extra key user-data", record_json(extra={"user-data": "y"})),
            ("extra keys differ by case only", record_json(extra={"Role": "a", "role": "b"})),
            ("extra value not text", record_json(extra={"role": 5})),
            ("optional member not text", record_json(public_ipv4=["203.0.113.10"])),
        ]
        for label, obj in cases:
            with self.subTest(label):
                self.assertRaises(RecordError, VmRecord.from_json, copy.deepcopy(obj))
        self.assertTrue(issubclass(RecordError, ValueError))

    def test_error_does_not_echo_user_data(self) -> None:
        """A user-data error names the member, not its content."""
        error = self.assertRaises(RecordError, VmRecord.from_json, record_json(user_data="s3cr3t!!"))
        self.assertNotIn("s3cr3t", str(error))


def make_record(uuid: str, *nics: Nic) -> VmRecord:
    return VmRecord(uuid=uuid, instance_name=f"i-{uuid}", hostname=f"h-{uuid}", nics=nics)


class RecordIndexTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.web = make_record("web", Nic("02:00:00:00:00:01", "10.1.1.50", True, "eth0"))
        self.db = make_record(
            "db",
            Nic("02:00:00:00:00:02", "10.1.1.51", True, "eth0"),
            Nic("02:00:00:00:00:03", "10.2.2.51", False, "eth3"),
        )
        self.index = RecordIndex([self.web, self.db])

    def test_lookup_by_triple(self) -> None:
        """Each NIC's exact triple finds its VM; MAC case does not matter."""
        self.assertIs(self.index.lookup("eth0", "02:00:00:00:00:01", "10.1.1.50"), self.web)
        self.assertIs(self.index.lookup("eth0", "02:00:00:00:00:02", "10.1.1.51"), self.db)
        self.assertIs(self.index.lookup("eth3", "02:00:00:00:00:03", "10.2.2.51"), self.db)
        found = self.index.owner("eth3", "02:00:00:00:00:03", "10.2.2.51")
        self.assertEqual(found, (self.db, self.db.nics[1]))

    def test_partial_match_finds_nothing(self) -> None:
        """The same IP with another MAC or on another interface belongs to nobody."""
        self.assertIsNone(self.index.lookup("eth0", "02:00:00:00:00:99", "10.1.1.50"))
        self.assertIsNone(self.index.lookup("eth1", "02:00:00:00:00:01", "10.1.1.50"))
        self.assertIsNone(self.index.lookup("eth0", "02:00:00:00:00:01", "10.1.1.51"))
        self.assertIsNone(self.index.lookup("eth0", "02:00:00:00:00:02", "10.1.1.50"))

    def test_malformed_triple_finds_nothing(self) -> None:
        """Garbage from the wire gives None, never an exception."""
        self.assertIsNone(self.index.lookup("eth0", "zz", "10.1.1.50"))
        self.assertIsNone(self.index.lookup("eth0", "02:00:00:00:00:01", "not-an-ip"))
        self.assertIsNone(self.index.lookup("", "02:00:00:00:00:01", "10.1.1.50"))

    def test_by_uuid(self) -> None:
        """Records are also found by uuid."""
        self.assertIs(self.index.by_uuid("db"), self.db)
        self.assertIsNone(self.index.by_uuid("nope"))
        self.assertEqual(len(self.index), 2)
        self.assertEqual(set(self.index.records()), {self.web, self.db})

    def test_conflicts_rejected(self) -> None:
        """Two records with one uuid, or one NIC claimed twice, make no index."""
        clash = make_record("other", Nic("02:00:00:00:00:01", "10.1.1.50", True, "eth0"))
        self.assertRaises(RecordError, RecordIndex, [self.web, clash])
        self.assertRaises(RecordError, RecordIndex, [self.web, self.web])

    def test_identity_key(self) -> None:
        """The key normalises MAC case and IP spelling."""
        self.assertEqual(
            identity_key("eth0", "02:AB:00:00:00:01", "fd00::0001"),
            ("eth0", "02:ab:00:00:00:01", "fd00::1"),
        )
        self.assertRaises(RecordError, identity_key, "eth0", "02:ab", "10.0.0.1")
