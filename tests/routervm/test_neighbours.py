"""Tests for `routervm.neighbours`: parsing /proc/net/arp and the clock-driven cache."""

from __future__ import annotations

import os
import tempfile

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from routervm.neighbours import ProcArpNeighbours, StaticNeighbours, parse_proc_arp

HEADER = "IP address       HW type     Flags       HW address            Mask     Device\n"
FIXTURE = HEADER + (
    "10.1.1.50        0x1         0x2         02:00:4C:5E:00:02     *        eth0\n"
    "10.1.1.51        0x1         0x0         02:00:4c:5e:00:03     *        eth0\n"  # incomplete
    "10.1.1.52        0x1         0x6         02:00:4c:5e:00:04     *        eth0\n"  # complete+perm
    "10.1.1.53        0x1         0x2         00:00:00:00:00:00     *        eth0\n"
    "10.2.2.50        0x1         0x2         02:00:4c:5e:00:09     *        eth3\n"
    "10.1.1.50        0x1         0x2         02:00:4c:5e:00:77     *        eth3\n"
    "garbage line\n"
    "10.1.1.99        0x1         0xZZ        02:00:4c:5e:00:99     *        eth0\n"
    "not-an-ip        0x1         0x2         02:00:4c:5e:00:98     *        eth0\n"
)


class ParseTests(SynchronousTestCase):
    def test_complete_entries_only(self) -> None:
        """Only lines with the complete flag and a real MAC count; MACs are lower-cased and the
        device is part of the key."""
        self.assertEqual(
            parse_proc_arp(FIXTURE),
            {
                ("eth0", "10.1.1.50"): "02:00:4c:5e:00:02",
                ("eth0", "10.1.1.52"): "02:00:4c:5e:00:04",
                ("eth3", "10.2.2.50"): "02:00:4c:5e:00:09",
                ("eth3", "10.1.1.50"): "02:00:4c:5e:00:77",
            },
        )

    def test_empty(self) -> None:
        self.assertEqual(parse_proc_arp(""), {})
        self.assertEqual(parse_proc_arp(HEADER), {})

    def test_address_forms(self) -> None:
        """Addresses are keyed as `ipaddress` writes them: the kernel's dotted quads as they are,
        forms with leading zeros or out-of-range octets skipped."""
        text = HEADER + "".join(
            f"{ip} 0x1 0x2 02:00:4c:5e:00:{i:02x} * eth0\n"
            for i, ip in enumerate(
                ["0.0.0.1", "255.255.255.255", "10.1.1.010", "10.1.1.256", "10.1.1", "199.200.249.250"]
            )
        )
        self.assertEqual(
            parse_proc_arp(text),
            {
                ("eth0", "0.0.0.1"): "02:00:4c:5e:00:00",
                ("eth0", "255.255.255.255"): "02:00:4c:5e:00:01",
                ("eth0", "199.200.249.250"): "02:00:4c:5e:00:05",
            },
        )

    def test_full_network(self) -> None:
        """A /24 guest network's table: every entry is found."""
        text = HEADER + "".join(f"10.1.1.{i} 0x1 0x2 02:00:0a:01:01:{i:02x} * eth1\n" for i in range(1, 255))
        table = parse_proc_arp(text)
        self.assertEqual(len(table), 254)
        self.assertEqual(table[("eth1", "10.1.1.254")], "02:00:0a:01:01:fe")


class StaticTests(SynchronousTestCase):
    def test_lookup(self) -> None:
        table = StaticNeighbours({("eth0", "10.1.1.50"): "02:00:4C:5E:00:02"})
        self.assertEqual(table.mac_for("eth0", "10.1.1.50"), "02:00:4c:5e:00:02")
        self.assertIsNone(table.mac_for("eth1", "10.1.1.50"))
        self.assertIsNone(table.mac_for("eth0", "10.1.1.51"))
        self.assertIsNone(table.mac_for("eth0", "nonsense"))
        table.remove("eth0", "10.1.1.50")
        self.assertIsNone(table.mac_for("eth0", "10.1.1.50"))

    def test_mapped_ipv4(self) -> None:
        """An IPv4-mapped IPv6 source finds the IPv4 entry."""
        table = StaticNeighbours({("eth0", "10.1.1.50"): "02:00:4c:5e:00:02"})
        self.assertEqual(table.mac_for("eth0", "::ffff:10.1.1.50"), "02:00:4c:5e:00:02")


class ProcArpTests(SynchronousTestCase):
    def setUp(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="arp-")
        os.close(handle)
        self.addCleanup(os.unlink, self.path)
        self.write(FIXTURE)
        self.clock = Clock()
        self.clock.advance(1000)
        self.table = ProcArpNeighbours(self.path, clock=self.clock, max_age=1.0, miss_interval=0.1)

    def write(self, text: str) -> None:
        with open(self.path, "w") as stream:
            stream.write(text)

    def test_lookup(self) -> None:
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.50"), "02:00:4c:5e:00:02")
        self.assertEqual(self.table.mac_for("eth3", "10.1.1.50"), "02:00:4c:5e:00:77")
        self.assertIsNone(self.table.mac_for("eth0", "10.1.1.51"))
        self.assertIsNone(self.table.mac_for("eth0", "bogus"))

    def test_mapped_ipv4(self) -> None:
        """An IPv4-mapped IPv6 source finds the IPv4 entry; other spellings of it do not."""
        self.assertEqual(self.table.mac_for("eth0", "::ffff:10.1.1.50"), "02:00:4c:5e:00:02")
        self.assertIsNone(self.table.mac_for("eth0", "010.1.1.50"))

    def test_hits_cached_until_max_age(self) -> None:
        """Hits are served from the parsed table until it is ``max_age`` old; then re-read."""
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.50"), "02:00:4c:5e:00:02")
        self.assertEqual(self.table.reads, 1)
        self.write(HEADER + "10.1.1.50 0x1 0x2 02:00:4c:5e:00:aa * eth0\n")
        self.clock.advance(0.9)
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.50"), "02:00:4c:5e:00:02")
        self.assertEqual(self.table.reads, 1)
        self.clock.advance(0.1)
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.50"), "02:00:4c:5e:00:aa")
        self.assertEqual(self.table.reads, 2)

    def test_miss_rereads_at_most_once_per_interval(self) -> None:
        """A new neighbour is found by re-reading on a miss, but misses in a burst read once."""
        self.assertIsNone(self.table.mac_for("eth0", "10.1.1.60"))
        self.assertEqual(self.table.reads, 1)
        for _ in range(50):
            self.assertIsNone(self.table.mac_for("eth0", "10.1.1.60"))
        self.assertEqual(self.table.reads, 1)
        self.write(FIXTURE + "10.1.1.60 0x1 0x2 02:00:4c:5e:00:60 * eth0\n")
        self.clock.advance(0.1)
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.60"), "02:00:4c:5e:00:60")
        self.assertEqual(self.table.reads, 2)
        self.clock.advance(0.1)
        self.assertIsNone(self.table.mac_for("eth0", "10.1.1.61"))
        self.assertEqual(self.table.reads, 3)

    def test_new_neighbour_right_after_another_miss(self) -> None:
        """A guest seen for the first time is found on its first request even when another
        source missed a moment before; only the same source repeating is held back."""
        self.assertIsNone(self.table.mac_for("eth0", "10.1.1.60"))
        self.clock.advance(0.01)
        self.write(FIXTURE + "10.1.1.61 0x1 0x2 02:00:4c:5e:00:61 * eth0\n")
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.61"), "02:00:4c:5e:00:61")
        self.assertEqual(self.table.reads, 2)
        self.clock.advance(0.01)
        self.assertIsNone(self.table.mac_for("eth0", "10.1.1.60"))
        self.assertEqual(self.table.reads, 2)

    def test_many_sources_read_at_most_once_per_floor(self) -> None:
        """A burst of unknown sources, one a millisecond, re-reads at most once per 5 ms; a
        source held back by that floor is found when it asks again after it."""
        for i in range(100):
            self.clock.advance(0.001)
            self.assertIsNone(self.table.mac_for("eth0", f"10.9.{i // 250}.{i % 250 + 1}"))
        self.assertLessEqual(self.table.reads, 21)
        self.assertGreaterEqual(self.table.reads, 16)
        self.write(FIXTURE + "10.1.1.62 0x1 0x2 02:00:4c:5e:00:62 * eth0\n")
        self.clock.advance(0.001)
        self.assertIsNone(self.table.mac_for("eth0", "10.1.1.62"))  # inside the floor
        self.clock.advance(0.01)
        self.assertEqual(self.table.mac_for("eth0", "10.1.1.62"), "02:00:4c:5e:00:62")

    def test_unreadable_file(self) -> None:
        """A missing file gives an empty table (and a logged warning), never an exception."""
        table = ProcArpNeighbours(self.path + ".missing", clock=self.clock)
        self.assertIsNone(table.mac_for("eth0", "10.1.1.50"))
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_real_proc(self) -> None:
        """The real /proc/net/arp parses (whatever it holds)."""
        if not os.path.exists("/proc/net/arp"):
            self.skipTest("no /proc/net/arp")
        table = ProcArpNeighbours(clock=self.clock)
        self.assertIsNone(table.mac_for("no-such-device", "10.255.255.254"))
        self.assertEqual(table.reads, 1)
