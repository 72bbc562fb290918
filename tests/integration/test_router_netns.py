"""The real router daemon (`twistd -n routervm`) inside a router network namespace,
serving two guest namespaces on one bridge: DHCP with dhclient, DNS with dig, metadata and the
password server with curl, and a kill -9 restart that serves the persisted state at once.

Needs root, ``ip netns`` and dhclient, dig and curl; otherwise the test skips and says why.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tests.integration.router_daemon import RouterDaemonCase
from tests.util.netns import DHCLIENT_SCRIPT, IP, require_commands, script_records

MAC1 = "02:00:00:00:a0:01"
MAC2 = "02:00:00:00:a0:02"
UUID1 = "11111111-2222-4333-8444-555555555501"
UUID2 = "11111111-2222-4333-8444-555555555502"
SUBNET = "10.77.0"
ROUTER = f"{SUBNET}.1"
IP1 = f"{SUBNET}.50"
IP2 = f"{SUBNET}.51"
VIP = f"{SUBNET}.254"  # another router address on the guest bridge (a gateway or virtual address)
DOMAIN = "cloudnine.internal"
UPSTREAM = "192.0.2.53"
SECRET = "Pw-for-vm1-x7Q"





def vm(uuid: str, mac: str, ip: str, hostname: str) -> dict[str, Any]:
    return {"uuid": uuid, "instance_name": f"i-2-{hostname}-VM", "hostname": hostname,
            "nics": [{"mac": mac, "ip": ip, "default": True, "interface": "br0"}]}


STATE = {
    "generation": 1,
    "network": {"interface": "br0", "cidr": f"{SUBNET}.0/24", "gateway": ROUTER, "router_ip": ROUTER,
                "domain": DOMAIN, "dns_servers": [UPSTREAM]},
    "vms": [vm(UUID1, MAC1, IP1, "vm1"), vm(UUID2, MAC2, IP2, "vm2")],
    "rules": None,
}


class RouterNamespaceTests(RouterDaemonCase):
    def setUp(self) -> None:
        require_commands("dhclient", "dig", "curl")
        self.build([MAC1, MAC2], f"{ROUTER}/24")

    # --- guests ------------------------------------------------------------------------------------

    def dhclient(self, tag: str) -> tuple[list[dict[str, str]], str]:
        """dhclient in guest 1 until it binds (then it daemonises); the script's records."""
        ns = self.topo.guest(1).ns
        out = os.path.join(self.dir, f"dhclient-{tag}.out")
        script = os.path.join(self.dir, "dhclient.sh")
        with open(script, "w") as f:
            f.write(DHCLIENT_SCRIPT.format(out=out))
        os.chmod(script, 0o755)
        pid = os.path.join(self.dir, "dhclient.pid")
        result = self.topo.run_in(ns, ["timeout", "-s", "KILL", "40", "dhclient", "-4", "-1", "-v", "-sf", script,
                                       "-lf", os.path.join(self.dir, "dhclient.leases"), "-pf", pid, "eth0"],
                                  check=False, timeout=60)
        self.addCleanup(self.stop_dhclient, script, pid)
        return script_records(out), result.stderr

    def stop_dhclient(self, script: str, pid: str) -> None:
        if os.path.exists(pid) and self.topo.guest(1).ns in self.topo.namespaces:
            self.topo.run_in(self.topo.guest(1).ns, ["dhclient", "-x", "-sf", script, "-pf", pid],
                             check=False, timeout=20)

    def assert_lease(self, record: dict[str, str]) -> None:
        self.assertEqual(record["new_ip_address"], IP1)
        self.assertEqual(record["new_subnet_mask"], "255.255.255.0")
        self.assertEqual(record["new_routers"], ROUTER)
        self.assertEqual(record["new_domain_name_servers"], f"{ROUTER} {UPSTREAM}")
        self.assertEqual(record["new_domain_name"], DOMAIN)
        self.assertEqual(record["new_host_name"], "vm1")

    def dig(self, ns: str, name: str, *extra: str) -> str:
        done = self.topo.run_in(ns, ["dig", "+short", "+time=2", "+tries=2", *extra, f"@{ROUTER}", name],
                                check=False, timeout=30)
        return done.stdout.strip()

    def http(self, ns: str, url: str, *headers: str) -> tuple[int | None, str]:
        argv = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]
        for header in headers:
            argv += ["-H", header]
        done = self.topo.run_in(ns, [*argv, url], check=False, timeout=30)
        text, _, code = done.stdout.rpartition("\n")
        return (int(code) if code.strip().isdigit() and int(code) else None), text

    def password(self, ns: str, request: str, host: str = ROUTER) -> str:
        status, body = self.http(ns, f"http://{host}:8080/", f"DomU_Request: {request}")
        self.assertEqual(status, 200, body)
        return body

    # --- the test ----------------------------------------------------------------------------------

    def test_guest_services_and_restart(self) -> None:
        """DHCP, DNS, metadata and passwords from the real daemon; after kill -9 and a start the
        persisted state is served at once (INIT-REBOOT gets ACK, metadata answers)."""
        self.start()
        self.assertEqual(self.control("PUT", "/v1/state", STATE)[1], {"generation": 1, "applied": True})
        self.assertEqual(self.control("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET})[1]["pending"], True)
        g1, g2 = self.topo.guest(1).ns, self.topo.guest(2).ns

        # DHCP: the reserved address and the router's options
        found, stderr = self.dhclient("bind")
        bound = [r for r in found if r["reason"] == "BOUND"]
        self.assertEqual(len(bound), 1, f"{stderr}\n{self.app.log()}")
        self.assert_lease(bound[0])

        # DNS, UDP and TCP
        self.assertEqual(self.dig(g1, f"vm1.{DOMAIN}"), IP1)
        self.assertEqual(self.dig(g1, f"vm2.{DOMAIN}", "+tcp"), IP2)
        self.assertEqual(self.dig(g1, "data-server"), ROUTER)

        # metadata for the owner
        self.assertEqual(self.http(g1, f"http://{ROUTER}/latest/meta-data/instance-id"), (200, UUID1))
        # an address added to the guest bridge while the daemon runs serves metadata and passwords too
        self.topo.run_in(self.topo.router, [IP, "addr", "add", f"{VIP}/24", "dev", "br0"])
        self.assertEqual(self.http(g1, f"http://{VIP}/latest/meta-data/instance-id"), (200, UUID1))
        self.assertEqual(self.password(g1, "send_my_password", host=VIP), SECRET)

        # passwords: served, acknowledged, gone; guest 2 never gets one
        self.topo.address(g2, "eth0", f"{IP2}/24")
        self.assertEqual(self.password(g2, "send_my_password"), "saved_password")
        self.assertEqual(self.password(g1, "send_my_password"), SECRET)
        self.assertEqual(self.password(g1, "saved_password"), "saved_password")
        self.assertEqual(self.password(g1, "send_my_password"), "saved_password")
        # The router's neighbour cache re-reads /proc/net/arp on a miss at most every 0.1 s
        # (routervm.neighbours): a guest's very first request may fall inside that window.
        time.sleep(0.3)
        self.assertEqual(self.http(g2, f"http://{ROUTER}/latest/meta-data/instance-id"), (200, UUID2))

        # kill -9 and start: the lease is confirmed (INIT-REBOOT → ACK) and metadata answers at once
        self.kill()
        self.start()
        self.assertEqual(self.http(g1, f"http://{ROUTER}/latest/meta-data/instance-id"), (200, UUID1))
        self.stop_dhclient(os.path.join(self.dir, "dhclient.sh"), os.path.join(self.dir, "dhclient.pid"))
        found, stderr = self.dhclient("reboot")
        reasons = [r["reason"] for r in found]
        self.assertIn("REBOOT", reasons, f"{stderr}\n{self.app.log()}")
        self.assertNotIn("BOUND", reasons)
        self.assert_lease(next(r for r in found if r["reason"] == "REBOOT"))
        self.assertEqual(self.dig(g1, f"vm1.{DOMAIN}"), IP1)

        # guest 2 spoofing guest 1's address (guest 1 gone from the wire): nothing of VM 1's
        self.control("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET})
        self.stop_dhclient(os.path.join(self.dir, "dhclient.sh"), os.path.join(self.dir, "dhclient.pid"))
        self.topo.run_in(g1, [IP, "addr", "flush", "dev", "eth0"])
        self.topo.run_in(g2, [IP, "addr", "flush", "dev", "eth0"])
        self.topo.address(g2, "eth0", f"{IP1}/24")
        self.topo.run_in(self.topo.router, [IP, "neigh", "flush", "dev", "br0"])
        time.sleep(1.5)  # the router's neighbour cache (max_age 1 s) forgets guest 1's MAC
        self.assertEqual(self.http(g2, f"http://{ROUTER}/latest/meta-data/instance-id")[0], 404)
        self.assertEqual(self.password(g2, "send_my_password"), "saved_password")
        self.assertEqual(self.password(g2, "saved_password"), "saved_password")
        # the pending password is still VM 1's, untouched by the spoofer
        self.assertTrue(next(v for v in self.control("GET", "/v1/state")[1]["vms"]
                             if v["uuid"] == UUID1)["password_pending"])
