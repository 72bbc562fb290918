"""Real DHCP and DNS clients against the real router daemon (`twistd -n routervm`) inside a router
network namespace, each client in a guest namespace of its own on the router's bridge ``br0``:

* busybox ``udhcpc`` binds the reserved address with every option the router offers, and renews
  it (``kill -USR1``) after a kill -9 and a start of the daemon;
* ``dhcpcd`` (dhcpcd-base) binds its reserved address with the default, infinite lease;
* a guest whose MAC the router does not know gets no answer at all, until its VM is added;
* ``dig``: VM names, ``data-server``, reverse names, NXDOMAIN inside the network's domain, and an
  outside name forwarded to a stub upstream server in a "public" namespace, cached by the router
  and refused to a client outside the guest network.

Needs root, ``ip netns``, curl and the clients (udhcpc, dhcpcd, dig); otherwise the tests skip and
say why.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from typing import Any

from twisted.trial.unittest import SkipTest

from tests.integration.router_daemon import RouterDaemonCase
from tests.util.netns import DHCPCD_PRIVATE, IP, require_commands, script_records

MAC1 = "02:00:00:00:c0:01"
MAC2 = "02:00:00:00:c0:02"
MAC_UNKNOWN = "02:00:00:00:c0:99"
UUID1 = "31111111-2222-4333-8444-555555555501"
UUID2 = "31111111-2222-4333-8444-555555555502"
UUID3 = "31111111-2222-4333-8444-555555555503"
SUBNET = "10.79.0"
ROUTER = f"{SUBNET}.1"
IP1 = f"{SUBNET}.50"
IP2 = f"{SUBNET}.51"
IP3 = f"{SUBNET}.52"
DOMAIN = "clients.internal"
INFINITE = 4294967295

# Public side (TEST-NET-2): the router's public veth, an outside client, and the stub upstream
# DNS server the network's dns_servers name.
PUBLIC_IP = "198.51.100.10"
OUTSIDE = "198.51.100.2"
UPSTREAM = "198.51.100.53"
OUTSIDE_NAME = "www.example.org"
OUTSIDE_ADDRESS = "203.0.113.7"

# udhcpc passes the event as $1 and the lease in variables of its own names.
UDHCPC_SCRIPT = """#!/bin/sh
{{ echo "reason=$1"
   env | grep -E '^(interface|ip|subnet|mask|broadcast|router|dns|domain|hostname|lease|serverid)=' | sort
   echo "--"; }} >> {out}
case "$1" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
esac
exit 0
"""

# dhcpcd's -c script replaces dhcpcd-run-hooks entirely: nothing touches /etc/resolv.conf or the
# host name; dhcpcd itself configures the address and routes in the guest namespace.
DHCPCD_SCRIPT = """#!/bin/sh
{{ echo "reason=$reason"; env | grep -E '^(interface|protocol|new_)' | sort; echo "--"; }} >> {out}
exit 0
"""

def udhcpc() -> list[str]:
    """The udhcpc command: Debian's udhcpc package (a link to busybox), or busybox's applet."""
    if shutil.which("udhcpc"):
        return ["udhcpc"]
    busybox = shutil.which("busybox")
    if busybox and "udhcpc" in subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split():
        return [busybox, "udhcpc"]
    raise SkipTest("missing programs: udhcpc (Debian package udhcpc, or busybox with its udhcpc applet)")


def vm(uuid: str, mac: str, ip: str, hostname: str) -> dict[str, Any]:
    return {"uuid": uuid, "instance_name": f"i-2-{hostname}-VM", "hostname": hostname,
            "nics": [{"mac": mac, "ip": ip, "default": True, "interface": "br0"}]}


def state(generation: int, vms: list[dict[str, Any]], lease_seconds: int | None = None) -> dict[str, Any]:
    return {"generation": generation,
            "network": {"interface": "br0", "cidr": f"{SUBNET}.0/24", "gateway": ROUTER,
                        "router_ip": ROUTER, "domain": DOMAIN, "dns_servers": [UPSTREAM],
                        "lease_seconds": lease_seconds},
            "vms": vms, "rules": None}


class _ClientsRouter(RouterDaemonCase):
    """A router namespace whose bridge ``br0`` (``ROUTER/24``) connects the guests, the real
    daemon in it."""

    timeout = 120

    def make_router(self, macs: list[str], public: bool = False) -> None:
        self.build(macs, f"{ROUTER}/24", public=public)

    def put_state(self, body: dict[str, Any]) -> None:
        self.assertEqual(self.control("PUT", "/v1/state", body)[1],
                         {"generation": body["generation"], "applied": True})

    def write_script(self, name: str, template: str) -> tuple[str, str]:
        """An executable client script from `template`; returns its path and its record file."""
        path, out = os.path.join(self.dir, name), os.path.join(self.dir, name + ".out")
        with open(path, "w") as f:
            f.write(template.format(out=out))
        os.chmod(path, 0o755)
        return path, out

    def addresses(self, ns: str) -> list[str]:
        """The IPv4 addresses (CIDR) on eth0 inside `ns`."""
        out = self.topo.run_in(ns, [IP, "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        return re.findall(r"inet (\S+)", out)

    @staticmethod
    def read(path: str) -> str:
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class DhcpClientTests(_ClientsRouter):
    """busybox udhcpc and dhcpcd bind their reservations; an unknown MAC gets nothing."""

    def test_udhcpc_lease_and_renewal_after_restart(self) -> None:
        """udhcpc binds VM 1's address with the subnet mask, router, DNS servers (router first,
        then the upstreams), domain, host name, the network's lease time and the router as
        server identifier; after kill -9 and a start, a renewal (SIGUSR1) is ACKed at once."""
        command = udhcpc()
        self.make_router([MAC1])
        self.start()
        self.put_state(state(1, [vm(UUID1, MAC1, IP1, "vm1")], lease_seconds=7200))
        script, out = self.write_script("udhcpc.sh", UDHCPC_SCRIPT)
        log_path = os.path.join(self.dir, "udhcpc.log")
        g1 = self.topo.guest(1).ns
        with open(log_path, "w") as log:
            # -f: stay in the foreground after binding (renewals on SIGUSR1), -n: give up after
            # -t 5 discovers 2 s apart. `ip netns exec` execs udhcpc: the PID is udhcpc's.
            client = self.topo.spawn_in(g1, [*command, "-i", "eth0", "-f", "-n", "-t", "5", "-T", "2",
                                             "-s", script], stdout=log, stderr=subprocess.STDOUT)

        def explain() -> str:
            return f"udhcpc exit status {client.poll()}:\n{self.read(log_path)}\n{self.read(out)}"

        def reasons() -> list[str]:
            return [r["reason"] for r in script_records(out)]

        self.wait_for("udhcpc to bind", lambda: "bound" in reasons() or client.poll() is not None, explain)
        self.assertEqual(reasons(), ["deconfig", "bound"], explain())
        bound = script_records(out)[1]
        self.assertEqual(bound, {"reason": "bound", "interface": "eth0", "ip": IP1, "subnet": "255.255.255.0",
                                 "mask": "24", "broadcast": f"{SUBNET}.255", "router": ROUTER,
                                 "dns": f"{ROUTER} {UPSTREAM}", "domain": DOMAIN, "hostname": "vm1",
                                 "lease": "7200", "serverid": ROUTER})
        # the script records the lease, then sets the address: wait for the second step
        self.wait_for("the bound address", lambda: self.addresses(g1) == [f"{IP1}/24"], explain)

        # kill -9 and a start: the renewal (unicast, ciaddr = the lease) is ACKed by the new process
        self.kill()
        self.start()
        os.kill(client.pid, signal.SIGUSR1)
        self.wait_for("udhcpc to renew", lambda: len(reasons()) > 2 or client.poll() is not None, explain)
        self.assertEqual(reasons(), ["deconfig", "bound", "renew"], explain())
        renew = script_records(out)[2]
        self.assertEqual(renew, {**bound, "reason": "renew"})
        self.assertIn(f"sending renew to server {ROUTER}", self.read(log_path))
        self.assertIsNone(client.poll(), explain())
        self.assertEqual(self.addresses(g1), [f"{IP1}/24"])

    def test_dhcpcd_lease(self) -> None:
        """dhcpcd (one shot, its own lease and pid directories) binds VM 2's address with the
        default infinite lease and every option, and configures it and the default route."""
        require_commands("dhcpcd", "unshare", "timeout")
        self.make_router([MAC2])
        self.start()
        self.put_state(state(1, [vm(UUID2, MAC2, IP2, "vm2")]))
        script, out = self.write_script("dhcpcd.sh", DHCPCD_SCRIPT)
        config = os.path.join(self.dir, "dhcpcd.conf")
        with open(config, "w") as f:
            f.write("noarp\nnoipv4ll\n")  # no 5 s address probe; no link-local fallback
        g2 = self.topo.guest(1).ns
        done = self.topo.run_in(g2, ["timeout", "-s", "KILL", "40",
                                     *DHCPCD_PRIVATE, "-4", "-1", "-B", "-t", "20", "-f", config, "-c", script, "eth0"],
                                check=False, timeout=60)
        explain = f"dhcpcd exit status {done.returncode}:\n{done.stdout}\n{done.stderr}\n{self.read(out)}"
        bound = [r for r in script_records(out) if r["reason"] == "BOUND"]
        self.assertEqual(len(bound), 1, explain)
        record = bound[0]
        self.assertEqual(record["protocol"], "dhcp")
        self.assertEqual(record["new_ip_address"], IP2)
        self.assertEqual(record["new_subnet_mask"], "255.255.255.0")
        self.assertEqual(record["new_subnet_cidr"], "24")
        self.assertEqual(record["new_routers"], ROUTER)
        self.assertEqual(record["new_domain_name_servers"], f"{ROUTER} {UPSTREAM}")
        self.assertEqual(record["new_domain_name"], DOMAIN)
        self.assertEqual(record["new_host_name"], "vm2")
        self.assertEqual(record["new_dhcp_server_identifier"], ROUTER)
        self.assertEqual(record["new_dhcp_lease_time"], str(INFINITE))
        self.assertEqual(record["new_dhcp_message_type"], "5")  # DHCPACK
        self.assertIn(f"leased {IP2} for infinity", done.stderr, explain)
        self.assertEqual(self.addresses(g2), [f"{IP2}/24"])
        self.assertIn(f"default via {ROUTER} dev eth0",
                      self.topo.run_in(g2, [IP, "-4", "route", "show", "default"]).stdout)

    def test_unknown_mac_gets_no_answer(self) -> None:
        """A guest whose MAC is in no VM record gets no offer (udhcpc gives up, nothing bound);
        once its VM is added the same client binds its reservation."""
        command = udhcpc()
        require_commands("timeout")
        self.make_router([MAC1, MAC_UNKNOWN])
        self.start()
        self.put_state(state(1, [vm(UUID1, MAC1, IP1, "vm1")]))
        script, out = self.write_script("udhcpc.sh", UDHCPC_SCRIPT)
        stranger = self.topo.guest(2).ns
        argv = ["timeout", "-s", "KILL", "30", *command, "-i", "eth0", "-f", "-q", "-n", "-t", "3", "-T", "1",
                "-s", script]

        done = self.topo.run_in(stranger, argv, check=False, timeout=60)
        explain = f"udhcpc exit status {done.returncode}:\n{done.stdout}\n{done.stderr}\n{self.read(out)}"
        self.assertEqual(done.returncode, 1, explain)
        self.assertIn("no lease, failing", done.stderr, explain)
        self.assertEqual(done.stderr.count("broadcasting discover"), 3, explain)
        self.assertNotIn("select", done.stderr, explain)  # no offer, so no request
        self.assertEqual([r["reason"] for r in script_records(out)], ["deconfig", "leasefail"], explain)
        self.assertEqual(self.addresses(stranger), [])

        # the same guest once the router knows its MAC: the silence was about the MAC alone
        self.put_state(state(2, [vm(UUID1, MAC1, IP1, "vm1"), vm(UUID3, MAC_UNKNOWN, IP3, "vm3")]))
        os.remove(out)
        done = self.topo.run_in(stranger, argv, check=False, timeout=60)
        explain = f"udhcpc exit status {done.returncode}:\n{done.stdout}\n{done.stderr}\n{self.read(out)}"
        self.assertEqual(done.returncode, 0, explain)
        bound = [r for r in script_records(out) if r["reason"] == "bound"]
        self.assertEqual([(r["ip"], r["hostname"]) for r in bound], [(IP3, "vm3")], explain)
        self.assertEqual(self.addresses(stranger), [f"{IP3}/24"])


class DnsClientTests(_ClientsRouter):
    """dig against the router's guest address, with a stub upstream in a "public" namespace."""

    def setUp(self) -> None:
        require_commands("dig")
        self.make_router([MAC1], public=True)
        router, public = self.topo.router, self.topo.public_ns
        assert public is not None
        self.public = public
        self.topo.address(router, "pub", f"{PUBLIC_IP}/24")
        self.topo.address(public, "eth0", f"{OUTSIDE}/24")
        self.topo.address(public, "eth0", f"{UPSTREAM}/24")
        # the outside client reaches the router's guest address through the public veth
        self.topo.route(public, f"{SUBNET}.0/24", "via", PUBLIC_IP)
        self.guest = self.topo.guest(1).ns
        self.topo.address(self.guest, "eth0", f"{IP1}/24")
        self.stub_log = os.path.join(self.dir, "stub-queries.log")
        self.stub = self.start_stub_upstream(public, UPSTREAM, OUTSIDE_NAME, OUTSIDE_ADDRESS, log=self.stub_log)
        self.start()
        self.put_state(state(1, [vm(UUID1, MAC1, IP1, "vm1"), vm(UUID2, MAC2, IP2, "vm2")]))

    def dig(self, ns: str, *args: str) -> tuple[str, list[str], list[str]]:
        """One query with dig from `ns` to the router: (status, header flags, answer lines as
        "name type data")."""
        done = self.topo.run_in(ns, ["dig", "+time=2", "+tries=2", "+noall", "+comments", "+answer",
                                     f"@{ROUTER}", *args], check=False, timeout=30)
        status = re.search(r"status: (\w+)", done.stdout)
        flags = re.search(r";; flags: ([a-z ]*);", done.stdout)
        if status is None or flags is None:
            self.fail(f"dig {' '.join(args)}: no answer: {done.stdout} {done.stderr}\n{self.app.log()}")
        answers = [" ".join(line.split()[i] for i in (0, 3, 4)) for line in done.stdout.splitlines()
                   if line and not line.startswith(";")]
        return status.group(1), flags.group(1).split(), answers

    def upstream_queries(self) -> list[str]:
        return self.read(self.stub_log).splitlines()

    def test_local_names(self) -> None:
        """VM names (single label and in the domain), data-server, reverse names of VMs and the
        router: authoritative answers; an unknown name in the domain is NXDOMAIN and never
        forwarded."""
        g = self.guest
        self.assertEqual(self.dig(g, f"vm1.{DOMAIN}"), ("NOERROR", ["qr", "aa", "rd", "ra"],
                                                        [f"vm1.{DOMAIN}. A {IP1}"]))
        self.assertEqual(self.dig(g, "vm2", "+noedns")[2], [f"vm2. A {IP2}"])  # the lean fast path
        self.assertEqual(self.dig(g, f"VM2.{DOMAIN}", "+tcp")[2], [f"VM2.{DOMAIN}. A {IP2}"])
        self.assertEqual(self.dig(g, "data-server")[2], [f"data-server. A {ROUTER}"])
        self.assertEqual(self.dig(g, f"data-server.{DOMAIN}")[2], [f"data-server.{DOMAIN}. A {ROUTER}"])
        reverse1 = ".".join(reversed(IP1.split("."))) + ".in-addr.arpa."
        self.assertEqual(self.dig(g, "-x", IP1), ("NOERROR", ["qr", "aa", "rd", "ra"],
                                                   [f"{reverse1} PTR vm1.{DOMAIN}."]))
        self.assertEqual(self.dig(g, "-x", IP2, "+noedns")[2][0].split()[2], f"vm2.{DOMAIN}.")
        self.assertEqual(self.dig(g, "-x", ROUTER)[2][0].split()[2], f"data-server.{DOMAIN}.")
        status, flags, answers = self.dig(g, f"nosuch.{DOMAIN}")
        self.assertEqual((status, answers), ("NXDOMAIN", []))
        self.assertIn("aa", flags)
        self.assertEqual(self.dig(g, "-x", f"{SUBNET}.99")[0], "NXDOMAIN")  # private range: not forwarded
        self.assertEqual(self.upstream_queries(), [])

    def test_outside_name_forwarded_cached_and_refused_outside(self) -> None:
        """An outside name is forwarded to the network's upstream and answered (not
        authoritatively); the next queries come from the router's cache, also once the upstream
        is gone.  A client outside the guest network gets REFUSED and nothing is forwarded."""
        g = self.guest
        self.assertEqual(self.dig(g, OUTSIDE_NAME), ("NOERROR", ["qr", "rd", "ra"],
                                                     [f"{OUTSIDE_NAME}. A {OUTSIDE_ADDRESS}"]))
        self.assertEqual(self.upstream_queries(), [f"{OUTSIDE_NAME} 1"])
        self.assertEqual(self.dig(g, OUTSIDE_NAME, "+noedns")[2], [f"{OUTSIDE_NAME}. A {OUTSIDE_ADDRESS}"])
        self.assertEqual(self.upstream_queries(), [f"{OUTSIDE_NAME} 1"])  # from the cache
        self.assertEqual(self.dig(g, "missing.example.org")[0], "NXDOMAIN")  # upstream's NXDOMAIN
        self.assertEqual(self.upstream_queries(), [f"{OUTSIDE_NAME} 1", "missing.example.org 1"])

        # a client outside the guest CIDR: REFUSED, nothing forwarded, not even from the cache
        status, flags, answers = self.dig(self.public, "other.example.org")
        self.assertEqual((status, answers), ("REFUSED", []))
        self.assertEqual(self.dig(self.public, OUTSIDE_NAME)[0], "REFUSED")
        self.assertEqual(len(self.upstream_queries()), 2)

        # the upstream gone: the cached answer still comes back
        self.topo.stop(self.stub)
        self.assertEqual(self.dig(g, OUTSIDE_NAME)[2], [f"{OUTSIDE_NAME}. A {OUTSIDE_ADDRESS}"])
