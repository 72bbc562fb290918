"""The DHCP server against real clients (dhclient, udhcpc, dhcpcd) in network namespaces.

The router namespace runs ``python -m routervm.dhcp.standalone`` on its veth; guests with
reserved MACs must get the reserved address, mask, router, DNS, domain, host name and lease; an
unknown MAC gets nothing; a lease survives a server restart (INIT-REBOOT and RENEWING both get
ACK, security req 22); two interfaces each run their own server on 0.0.0.0:67.

Needs root, ``ip netns`` and the Debian packages isc-dhcp-client, udhcpc and dhcpcd-base;
otherwise the tests skip and say why (TESTING.md, "DHCP and DNS clients in network namespaces").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from twisted.trial.unittest import TestCase

from tests.util.netns import (
    DHCLIENT_SCRIPT,
    DHCPCD_PRIVATE,
    GuestSpec,
    Topology,
    repo_env,
    require_commands,
    require_root_and_netns,
    script_records,
)

MAC1 = "02:00:00:00:00:01"
MAC2 = "02:00:00:00:00:02"
UNKNOWN = "02:00:00:00:00:99"
DOMAIN = "cloudnine.internal"
EXTERNAL_DNS = "192.0.2.53"
INFINITE = "4294967295"


UDHCPC_SCRIPT = """#!/bin/sh
{{ echo "event=$1"; for v in ip subnet router dns domain hostname lease serverid; do
     eval "echo $v=\\$$v"; done; echo "--"; }} >> {out}
exit 0
"""




class DhcpNetnsTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        require_root_and_netns()
        self.dir = tempfile.mkdtemp(prefix="cdt-dhcp-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.topo: Topology | None = None
        self.server: subprocess.Popen[Any] | None = None

    def build(self, *guests: GuestSpec, subnet: str = "10.231.1") -> Topology:
        topo = Topology.for_test(self, guests=list(guests))
        self.topo = topo
        self.subnet = subnet
        topo.address(topo.router, "g1", f"{subnet}.1/24")
        return topo

    def write(self, name: str, text: str, mode: int = 0o644) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def start_server(self, device: str = "g1", subnet: str | None = None, *extra: str) -> subprocess.Popen[Any]:
        assert self.topo is not None
        net = subnet or self.subnet
        hosts = [
            {"mac": MAC1, "ip": f"{net}.10", "hostname": "vm-one"},
            {"mac": MAC2, "ip": f"{net}.11", "hostname": "vm-two"},
        ]
        path = self.write(f"hosts-{device}.json", json.dumps(hosts))
        argv = [
            sys.executable, "-m", "routervm.dhcp.standalone",
            "--interface", device, "--router-ip", f"{net}.1", "--cidr", f"{net}.0/24",
            "--reservations", path, "--domain", DOMAIN, "--dns", EXTERNAL_DNS, *extra,
        ]
        proc = self.topo.spawn_in(self.topo.router, argv, env=repo_env())
        self.topo.wait_for_line(proc, "READY")
        return proc

    def dhclient(self, ns: str, tag: str, timeout: float = 30) -> tuple[str, str, subprocess.CompletedProcess[str]]:
        """Run dhclient until it binds (then it daemonises); return (script output, pid file, result)."""
        assert self.topo is not None
        out = os.path.join(self.dir, f"dhclient-{tag}.out")
        script = self.write("dhclient.sh", DHCLIENT_SCRIPT.format(out=out), 0o755)
        leases = os.path.join(self.dir, "dhclient.leases")
        pid = os.path.join(self.dir, "dhclient.pid")
        result = self.topo.run_in(
            ns, ["timeout", "-s", "KILL", str(timeout), "dhclient", "-4", "-1", "-v",
                 "-sf", script, "-lf", leases, "-pf", pid, "eth0"], check=False)
        self.addCleanup(self.stop_dhclient, ns, script, pid)
        return out, pid, result

    def stop_dhclient(self, ns: str, script: str, pid: str) -> None:
        assert self.topo is not None
        if os.path.exists(pid) and self.topo.router in self.topo.namespaces:
            self.topo.run_in(ns, ["dhclient", "-x", "-sf", script, "-pf", pid], check=False, timeout=20)

    def assert_dhclient_lease(self, record: dict[str, str], ip: str, hostname: str) -> None:
        self.assertEqual(record["new_ip_address"], ip)
        self.assertEqual(record["new_subnet_mask"], "255.255.255.0")
        self.assertEqual(record["new_routers"], f"{self.subnet}.1")
        self.assertEqual(record["new_domain_name_servers"], f"{self.subnet}.1 {EXTERNAL_DNS}")
        self.assertEqual(record["new_domain_name"], DOMAIN)
        self.assertEqual(record["new_host_name"], hostname)
        self.assertEqual(record["new_dhcp_server_identifier"], f"{self.subnet}.1")

    # --- the three clients ------------------------------------------------------------------------

    def test_dhclient(self) -> None:
        """isc dhclient binds to the reserved address with every option and an infinite lease."""
        require_commands("dhclient")
        topo = self.build(GuestSpec(mac=MAC1))
        self.start_server()
        out, _, result = self.dhclient(topo.guest(1).ns, "bind")
        bound = [r for r in script_records(out) if r["reason"] == "BOUND"]
        self.assertEqual(len(bound), 1, result.stderr)
        self.assert_dhclient_lease(bound[0], f"{self.subnet}.10", "vm-one")
        self.assertEqual(bound[0]["new_dhcp_lease_time"], INFINITE)

    def test_udhcpc(self) -> None:
        """busybox udhcpc gets the reserved lease and every option."""
        require_commands("udhcpc")
        topo = self.build(GuestSpec(mac=MAC2))
        self.start_server()
        out = os.path.join(self.dir, "udhcpc.out")
        script = self.write("udhcpc.sh", UDHCPC_SCRIPT.format(out=out), 0o755)
        result = topo.run_in(topo.guest(1).ns, ["udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "2",
                                                "-s", script], check=False, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        [bound] = [r for r in script_records(out) if r["event"] == "bound"]
        self.assertEqual(bound, {
            "event": "bound", "ip": f"{self.subnet}.11", "subnet": "255.255.255.0",
            "router": f"{self.subnet}.1", "dns": f"{self.subnet}.1 {EXTERNAL_DNS}", "domain": DOMAIN,
            "hostname": "vm-two", "lease": INFINITE, "serverid": f"{self.subnet}.1",
        })

    def test_dhcpcd(self) -> None:
        """dhcpcd's test mode prints our OFFER with every option (exit code not asserted: TESTING.md)."""
        require_commands("dhcpcd", "unshare")
        topo = self.build(GuestSpec(mac=MAC1))
        self.start_server()
        result = topo.run_in(
            topo.guest(1).ns,
            ["timeout", "-s", "KILL", "25", *DHCPCD_PRIVATE, "-4", "-T", "-t", "20", "--noipv4ll", "eth0"], check=False, timeout=40)
        values = dict(line.partition("=")[::2] for line in result.stdout.splitlines() if "=" in line)
        values = {k: v.strip("'") for k, v in values.items()}
        self.assertEqual(values.get("new_ip_address"), f"{self.subnet}.10", result.stdout + result.stderr)
        self.assertEqual(values["new_subnet_mask"], "255.255.255.0")
        self.assertEqual(values["new_routers"], f"{self.subnet}.1")
        self.assertEqual(values["new_domain_name_servers"], f"{self.subnet}.1 {EXTERNAL_DNS}")
        self.assertEqual(values["new_domain_name"], DOMAIN)
        self.assertEqual(values["new_host_name"], "vm-one")
        self.assertEqual(values["new_dhcp_lease_time"], INFINITE)
        self.assertEqual(values["new_dhcp_server_identifier"], f"{self.subnet}.1")

    # --- silence, restarts, several interfaces ----------------------------------------------------

    def test_unknown_mac_gets_nothing(self) -> None:
        """A MAC without a reservation gets no lease: udhcpc gives up."""
        require_commands("udhcpc")
        topo = self.build(GuestSpec(mac=UNKNOWN))
        self.start_server()
        out = os.path.join(self.dir, "udhcpc.out")
        script = self.write("udhcpc.sh", UDHCPC_SCRIPT.format(out=out), 0o755)
        result = topo.run_in(topo.guest(1).ns, ["udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "2", "-T", "1",
                                                "-s", script], check=False, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual([r for r in script_records(out) if r["event"] == "bound"], [])
        self.assertIn("leasefail", [r["event"] for r in script_records(out)])

    def test_init_reboot_after_restart(self) -> None:
        """A guest restarting with its lease (INIT-REBOOT: REQUEST with option 50, no server id)
        after the router restarted gets ACK: dhclient reports REBOOT with the same address."""
        require_commands("dhclient")
        topo = self.build(GuestSpec(mac=MAC1))
        first = self.start_server()
        ns = topo.guest(1).ns
        out, pid, _ = self.dhclient(ns, "first")
        self.assertIn("BOUND", [r["reason"] for r in script_records(out)])
        self.stop_dhclient(ns, os.path.join(self.dir, "dhclient.sh"), pid)
        topo.stop(first)
        self.start_server()
        out2, _, result = self.dhclient(ns, "second")
        reasons = [r["reason"] for r in script_records(out2)]
        self.assertIn("REBOOT", reasons, result.stderr)
        self.assertNotIn("BOUND", reasons)
        [reboot] = [r for r in script_records(out2) if r["reason"] == "REBOOT"]
        self.assert_dhclient_lease(reboot, f"{self.subnet}.10", "vm-one")

    def test_renewal_after_restart(self) -> None:
        """With a short lease, dhclient's unicast RENEWING request (ciaddr set) to a restarted
        server gets ACK: the script sees RENEW with the same address."""
        require_commands("dhclient")
        topo = self.build(GuestSpec(mac=MAC1))
        first = self.start_server("g1", None, "--lease-seconds", "6")
        ns = topo.guest(1).ns
        out, _, _ = self.dhclient(ns, "renew")
        self.assertIn("BOUND", [r["reason"] for r in script_records(out)])
        topo.stop(first)
        self.start_server("g1", None, "--lease-seconds", "6")
        deadline = time.monotonic() + 20  # T1 = 3 s
        while time.monotonic() < deadline and "RENEW" not in [r["reason"] for r in script_records(out)]:
            time.sleep(0.2)
        renew = [r for r in script_records(out) if r["reason"] == "RENEW"]
        self.assertTrue(renew, script_records(out))
        self.assertEqual(renew[0]["new_ip_address"], f"{self.subnet}.10")
        self.assertEqual(renew[0]["new_dhcp_lease_time"], "6")

    def test_two_interfaces_each_with_a_server(self) -> None:
        """Two servers bound to 0.0.0.0:67 on different interfaces coexist, and each guest is
        answered by the server of its own interface (its own subnet and server id)."""
        require_commands("udhcpc")
        topo = self.build(GuestSpec(mac=MAC1), GuestSpec(mac=MAC1))
        topo.address(topo.router, "g2", "10.231.2.1/24")
        self.start_server("g1", "10.231.1")
        self.start_server("g2", "10.231.2")
        for index, net in ((1, "10.231.1"), (2, "10.231.2")):
            out = os.path.join(self.dir, f"udhcpc-{index}.out")
            script = self.write(f"udhcpc-{index}.sh", UDHCPC_SCRIPT.format(out=out), 0o755)
            result = topo.run_in(topo.guest(index).ns, ["udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5",
                                                        "-T", "2", "-s", script], check=False, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            [bound] = [r for r in script_records(out) if r["event"] == "bound"]
            self.assertEqual((bound["ip"], bound["serverid"]), (f"{net}.10", f"{net}.1"))
