"""Tests for `routervm.dns.table`: which names the router answers and with what (router.md §5,
checklist 17–18)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from routervm.dns.table import DnsTable, Entry, decode_name, encode_name, reverse_name
from tests.routervm.test_dns_support import RECORDS, ROUTER_IP, table, vm


class DnsTableTests(SynchronousTestCase):
    def test_forward_names(self) -> None:
        """``<hostname>.<domain>`` and ``<hostname>`` give the default NIC's address, any case."""
        t = table()
        for name in ("web1.cloud.internal", "web1", "WEB1.Cloud.Internal.", "Web1."):
            self.assertEqual(t.lookup(name), Entry(True, ("10.1.1.50",)), name)
        self.assertEqual(t.lookup("db-2.cloud.internal"), Entry(True, ("10.2.2.60",)))

    def test_same_hostname_twice(self) -> None:
        """Two VMs with one name both answer, in record order (two hosts-file lines)."""
        self.assertEqual(table().lookup("twin").addresses, ("10.1.1.70", "10.1.1.71"))

    def test_pointers_for_every_nic(self) -> None:
        """Every IPv4 address of every NIC has a PTR to the fully qualified name."""
        t = table()
        self.assertEqual(t.lookup("50.1.1.10.in-addr.arpa"), Entry(True, pointer="web1.cloud.internal"))
        self.assertEqual(t.lookup("60.1.1.10.IN-ADDR.ARPA").pointer, "db-2.cloud.internal")
        self.assertEqual(t.lookup("60.2.2.10.in-addr.arpa").pointer, "db-2.cloud.internal")
        self.assertEqual(t.lookup("90.1.1.10.in-addr.arpa").pointer, "v6.cloud.internal")
        self.assertEqual(reverse_name("10.1.1.50"), "50.1.1.10.in-addr.arpa")

    def test_data_server(self) -> None:
        """``data-server``, ``data-server.`` and ``data-server.<domain>`` are the router, and a VM
        named data-server does not shadow it."""
        t = DnsTable.build("cloud.internal", ROUTER_IP, RECORDS + (vm("data-server", ("10.1.1.99", True)),))
        for name in ("data-server", "data-server.", "DATA-SERVER.cloud.internal"):
            self.assertEqual(t.lookup(name), Entry(True, (ROUTER_IP,)), name)
        self.assertEqual(t.lookup("1.1.1.10.in-addr.arpa").pointer, "data-server.cloud.internal")

    def test_unknown_names_that_are_ours(self) -> None:
        """Unknown names in the domain, unknown single labels and unknown private reverse names
        are NXDOMAIN; the domain itself is NODATA."""
        t = table()
        for name in (
            "nosuch.cloud.internal",
            "a.b.cloud.internal",
            "nosuch",
            "bad.name.cloud.internal",
            "9.9.168.192.in-addr.arpa",
            "1.0.0.127.in-addr.arpa",
            "5.5.20.172.in-addr.arpa",
        ):
            self.assertEqual(t.lookup(name), Entry(False), name)
        self.assertEqual(t.lookup("cloud.internal"), Entry(True))

    def test_not_ours(self) -> None:
        """Outside names, public reverse names and the root are not ours (forwarded)."""
        t = table()
        for name in (
            "example.com",
            "cloud.internal.example",
            "8.8.8.8.in-addr.arpa",
            "168.192.in-addr.arpa",
            "",
            ".",
            "xcloud.internal",
        ):
            self.assertIsNone(t.lookup(name), name)

    def test_skips(self) -> None:
        """Host names that are not one DNS label are skipped and listed; IPv6 NICs are not served."""
        t = table()
        self.assertEqual(t.skipped, ("bad.name",))
        self.assertNotIn("bad.name", t.names())
        self.assertFalse(any("ip6" in n for n in t.names()))

    def test_no_domain(self) -> None:
        """Without a domain only single labels (and PTRs to them) are served."""
        t = table(domain="")
        self.assertEqual(t.lookup("web1").addresses, ("10.1.1.50",))
        self.assertEqual(t.lookup("50.1.1.10.in-addr.arpa").pointer, "web1")
        self.assertIsNone(t.lookup("web1.cloud.internal"))

    def test_bad_arguments(self) -> None:
        self.assertRaises(ValueError, DnsTable.build, "bad domain", ROUTER_IP, [])
        self.assertRaises(ValueError, DnsTable.build, "cloud.internal", "fd00::1", [])

    def test_wire_form(self) -> None:
        """Names are held in wire form: a host name and its FQDN share one packed address, a
        PTR target is the FQDN's own key, and `lookup` decodes them; a name whose text is longer
        than a DNS name may be (a long domain) is still found, as the lean path finds it."""
        t = table()
        fqdn = encode_name("web1.cloud.internal")
        self.assertIs(t.forward[encode_name("web1")], t.forward[fqdn])
        self.assertEqual(t.forward[fqdn], bytes((10, 1, 1, 50)))
        self.assertIs(t.reverse[encode_name("50.1.1.10.in-addr.arpa")],
                      next(key for key in t.forward if key == fqdn))
        self.assertEqual(decode_name(fqdn), "web1.cloud.internal")
        self.assertEqual(t.lookup("cloud.internal"), Entry(True))
        self.assertEqual(t.forward[encode_name("cloud.internal")], b"")
        domain = ".".join(["d" * 60] * 4)
        long = table(domain=domain)
        self.assertEqual(long.lookup(f"web1.{domain}."), Entry(True, ("10.1.1.50",)))
        self.assertEqual(long.lookup("\u00e9t\u00e9.x"), None)
        self.assertEqual(long.lookup("x" * 300), Entry(False))
