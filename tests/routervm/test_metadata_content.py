"""Tests for `routervm.metadata.content`: byte-exact metadata answers per router.md §3.2–3.3."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from routervm.metadata.content import MetadataView, cloud_identifier, normalise_path, unicode_escape
from routervm.records import Nic, VmRecord

UUID = "9f1c2b7e-1111-4222-8333-444455556666"
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop"
KEY_B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob@desk"
USER_DATA = b"#cloud-config\nhostname: web1\n"

NIC = Nic(mac="02:00:4c:5e:00:02", ip="10.1.1.50", default=True, interface="eth0")
SECOND_NIC = Nic(mac="02:00:4c:5e:00:09", ip="10.2.2.50", default=False, interface="eth3")


def full_record() -> VmRecord:
    """The router.md §7.3 example VM, with two keys and the hypervisor host name exposed."""
    return VmRecord(
        uuid=UUID,
        instance_name="i-2-5-VM",
        hostname="web1",
        nics=(NIC, SECOND_NIC),
        service_offering="Small Instance",
        availability_zone="zone1",
        public_ipv4="203.0.113.10",
        public_hostname="203.0.113.10",
        cloud_identifier="0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff",
        hypervisor_host_name="kvm-host-07",
        user_data=USER_DATA,
        public_keys=(KEY_A, KEY_B),
    )


def bare_record() -> VmRecord:
    """A VM with no user data, no keys and only the mandatory members."""
    return VmRecord(uuid=UUID, instance_name="i-2-5-VM", hostname="web1", nics=(NIC,))


class ListingTests(SynchronousTestCase):
    def test_listing_exact(self) -> None:
        """The manifest is the spec's key list, in its order, one per line, each newline-terminated."""
        view = MetadataView(full_record())
        self.assertEqual(
            view.lookup("/latest/meta-data/"),
            b"service-offering\n"
            b"availability-zone\n"
            b"local-ipv4\n"
            b"local-hostname\n"
            b"public-ipv4\n"
            b"public-hostname\n"
            b"instance-id\n"
            b"vm-id\n"
            b"public-keys\n"
            b"cloud-identifier\n"
            b"hypervisor-host-name\n",
        )

    def test_every_listed_key_answers(self) -> None:
        """Every key in the manifest answers under both URL forms, and identically."""
        for record in (full_record(), bare_record()):
            view = MetadataView(record)
            listing = view.lookup("/latest/meta-data/")
            assert listing is not None
            self.assertTrue(listing.endswith(b"\n"))
            names = listing.decode().splitlines()
            self.assertEqual(tuple(names), view.keys)
            for name in names:
                self.assertNotIn("/", name)
                self.assertNotIn("=", name)
                value = view.lookup(f"/latest/meta-data/{name}")
                self.assertIsNotNone(value, name)
                self.assertEqual(view.lookup(f"/latest/{name}"), value, name)
            self.assertNotIn("user-data", names)

    def test_bare_listing(self) -> None:
        """Unset members are not listed at all, so nothing listed can 404; availability-zone is
        always listed (cloud-init's CloudStack datasource cannot do without it), empty when the
        zone is unknown."""
        view = MetadataView(bare_record())
        self.assertEqual(
            view.lookup("/latest/meta-data/"),
            b"availability-zone\nlocal-ipv4\nlocal-hostname\ninstance-id\nvm-id\npublic-keys\n",
        )
        self.assertEqual(view.lookup("/latest/meta-data/availability-zone"), b"")

    def test_optional_and_custom_keys(self) -> None:
        """Domain keys and cloud-name follow the standard keys; custom keys come last, in order."""
        record = VmRecord(
            uuid=UUID,
            instance_name="i-2-5-VM",
            hostname="web1",
            nics=(NIC,),
            cloud_domain="ROOT",
            cloud_domain_id="d0d0d0d0-0000-0000-0000-000000000000",
            cloud_name="cs1",
            extra=(("Role", "web"), ("tier", "front")),
        )
        view = MetadataView(record)
        self.assertEqual(
            view.lookup("/latest/meta-data/"),
            b"availability-zone\nlocal-ipv4\nlocal-hostname\ninstance-id\nvm-id\npublic-keys\n"
            b"cloud-domain\ncloud-domain-id\ncloud-name\nRole\ntier\n",
        )
        self.assertEqual(view.lookup("/latest/meta-data/cloud-domain"), b"ROOT")
        self.assertEqual(
            view.lookup("/latest/meta-data/cloud-domain-id"), b"d0d0d0d0-0000-0000-0000-000000000000"
        )
        self.assertEqual(view.lookup("/latest/meta-data/cloud-name"), b"cs1")
        self.assertEqual(view.lookup("/latest/meta-data/Role"), b"web")
        self.assertEqual(view.lookup("/latest/meta-data/role"), b"web")
        self.assertEqual(view.lookup("/latest/tier"), b"front")


class ValueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.view = MetadataView(full_record())

    def test_values_exact(self) -> None:
        """Each key's value is the raw text, with no newline added."""
        expected = {
            "service-offering": b"Small Instance",
            "availability-zone": b"zone1",
            "local-ipv4": b"10.1.1.50",
            "local-hostname": b"web1",
            "public-ipv4": b"203.0.113.10",
            "public-hostname": b"203.0.113.10",
            "instance-id": UUID.encode(),
            "vm-id": UUID.encode(),
            "cloud-identifier": b"CloudStack-{0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff}",
            "hypervisor-host-name": b"kvm-host-07",
        }
        for key, value in expected.items():
            self.assertEqual(self.view.lookup(f"/latest/meta-data/{key}"), value, key)
            self.assertEqual(self.view.lookup(f"/latest/{key}"), value, key)

    def test_several_public_keys(self) -> None:
        """All keys, one per line, no trailing newline; the legacy form the guest script uses too."""
        both = (KEY_A + "\n" + KEY_B).encode()
        self.assertEqual(self.view.lookup("/latest/meta-data/public-keys"), both)
        self.assertEqual(self.view.lookup("/latest/public-keys"), both)

    def test_ec2_style_public_keys(self) -> None:
        """The EC2-style tree lists each key and serves it under N/openssh-key."""
        self.assertEqual(self.view.lookup("/latest/meta-data/public-keys/"), b"0=key-0\n1=key-1")
        self.assertEqual(self.view.lookup("/latest/meta-data/public-keys/0/"), b"openssh-key")
        self.assertEqual(self.view.lookup("/latest/meta-data/public-keys/1"), b"openssh-key")
        self.assertEqual(self.view.lookup("/latest/meta-data/public-keys/0/openssh-key"), KEY_A.encode())
        self.assertEqual(self.view.lookup("/latest/meta-data/public-keys/1/openssh-key"), KEY_B.encode())
        self.assertIsNone(self.view.lookup("/latest/meta-data/public-keys/2/openssh-key"))

    def test_user_data(self) -> None:
        """User data is served as the decoded bytes, unchanged."""
        self.assertEqual(self.view.lookup("/latest/user-data"), USER_DATA)
        self.assertEqual(self.view.lookup("/latest/user-data/"), USER_DATA)

    def test_binary_user_data(self) -> None:
        """Gzip or other binary user data is served byte for byte."""
        data = b"\x1f\x8b\x08\x00" + bytes(range(256))
        view = MetadataView(VmRecord(uuid=UUID, instance_name="i", hostname="h", nics=(NIC,), user_data=data))
        self.assertEqual(view.lookup("/latest/user-data"), data)

    def test_empty_user_data(self) -> None:
        """Empty (but present) user data is an empty 200, not a 404."""
        view = MetadataView(VmRecord(uuid=UUID, instance_name="i", hostname="h", nics=(NIC,), user_data=b""))
        self.assertEqual(view.lookup("/latest/user-data"), b"")

    def test_without_user_data_or_keys(self) -> None:
        """No user data → 404; no keys → an empty public-keys value and no key entries."""
        view = MetadataView(bare_record())
        self.assertIsNone(view.lookup("/latest/user-data"))
        self.assertEqual(view.lookup("/latest/meta-data/public-keys"), b"")
        self.assertEqual(view.lookup("/latest/public-keys"), b"")
        self.assertIsNone(view.lookup("/latest/meta-data/public-keys/0/openssh-key"))
        self.assertIsNone(view.lookup("/latest/meta-data/public-ipv4"))
        self.assertIsNone(view.lookup("/latest/meta-data/service-offering"))
        self.assertEqual(view.lookup("/latest/meta-data/local-hostname"), b"web1")

    def test_legacy_ids(self) -> None:
        """Explicit vm_id / instance_id (legacy CloudStack values) override the uuid."""
        record = VmRecord(
            uuid=UUID,
            instance_name="i-2-5-VM",
            hostname="web1",
            nics=(NIC,),
            vm_id="5",
            instance_id="i-2-5-VM",
        )
        view = MetadataView(record)
        self.assertEqual(view.lookup("/latest/meta-data/vm-id"), b"5")
        self.assertEqual(view.lookup("/latest/meta-data/instance-id"), b"i-2-5-VM")

    def test_local_ipv4_per_nic(self) -> None:
        """local-ipv4 is the address of the NIC the view is for; the default NIC otherwise."""
        self.assertEqual(self.view.lookup("/latest/meta-data/local-ipv4"), b"10.1.1.50")
        other = MetadataView(full_record(), SECOND_NIC)
        self.assertEqual(other.lookup("/latest/meta-data/local-ipv4"), b"10.2.2.50")
        self.assertRaises(ValueError, MetadataView, bare_record(), SECOND_NIC)

    def test_unicode_escape(self) -> None:
        """Offering, zone and host name are unicode-escaped like CloudStack's StringUtils.unicodeEscape;
        custom values are plain UTF-8."""
        record = VmRecord(
            uuid=UUID,
            instance_name="i",
            hostname="web1",
            nics=(NIC,),
            service_offering="Petite offre é",
            availability_zone="zone-\U0001f600",
            extra=(("note", "café"),),
        )
        view = MetadataView(record)
        self.assertEqual(view.lookup("/latest/meta-data/service-offering"), b"Petite offre \\u00E9")
        self.assertEqual(view.lookup("/latest/meta-data/availability-zone"), b"zone-\\uD83D\\uDE00")
        self.assertEqual(view.lookup("/latest/meta-data/note"), "café".encode())
        self.assertEqual(unicode_escape("plain"), "plain")
        self.assertEqual(cloud_identifier("abc"), "CloudStack-{abc}")

    def test_unknown_key(self) -> None:
        """Unknown keys and paths outside /latest/ are 404."""
        for path in (
            "/latest/meta-data/nope",
            "/latest/nope",
            "/latest/",
            "/latest",
            "/",
            "",
            "/metadata/10.1.1.50/instance-id",
            "/2009-04-04/meta-data/instance-id",
            "latest/meta-data/instance-id",
        ):
            self.assertIsNone(self.view.lookup(path), path)


class PathTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.view = MetadataView(full_record())

    def test_meta_data_without_slash(self) -> None:
        """/latest/meta-data (no slash) is not mapped, as in the reference."""
        self.assertIsNone(self.view.lookup("/latest/meta-data"))

    def test_trailing_slash_on_leaf(self) -> None:
        """A leaf with a trailing slash is served like the leaf."""
        self.assertEqual(self.view.lookup("/latest/meta-data/instance-id/"), UUID.encode())
        self.assertEqual(self.view.lookup("/latest/instance-id/"), UUID.encode())

    def test_double_slashes(self) -> None:
        """Repeated slashes collapse."""
        self.assertEqual(self.view.lookup("//latest//meta-data//instance-id"), UUID.encode())
        self.assertEqual(self.view.lookup("/latest/meta-data//"), self.view.manifest)

    def test_case_and_query(self) -> None:
        """Paths match case-insensitively and the query string is ignored ([NC,QSA])."""
        self.assertEqual(self.view.lookup("/LATEST/Meta-Data/Instance-ID"), UUID.encode())
        self.assertEqual(self.view.lookup("/latest/user-data?x=1"), USER_DATA)
        self.assertEqual(self.view.lookup("/latest/meta-data/?a=b"), self.view.manifest)

    def test_dot_segments_refused(self) -> None:
        """`.` and `..` segments (also percent-encoded) are never resolved: 404."""
        for path in (
            "/latest/meta-data/../user-data",
            "/latest/../latest/user-data",
            "/latest/./user-data",
            "/latest/meta-data/%2e%2e/user-data",
            "/latest/meta-data/..",
            "/latest/%ff",
            "/latest/meta-data/instance-id%00",
            "/latest\\user-data",
        ):
            self.assertIsNone(self.view.lookup(path), path)

    def test_percent_encoded(self) -> None:
        """Percent-encoded names decode to the key."""
        self.assertEqual(self.view.lookup("/latest/meta-data/instance%2Did"), UUID.encode())

    def test_normalise_path(self) -> None:
        """The canonical form keeps one trailing slash and refuses dot segments."""
        self.assertEqual(normalise_path("//A//b/"), "/a/b/")
        self.assertEqual(normalise_path("/a/b?c#d"), "/a/b")
        self.assertEqual(normalise_path("///"), "/")
        self.assertIsNone(normalise_path("/a/../b"))
        self.assertIsNone(normalise_path("a/b"))
