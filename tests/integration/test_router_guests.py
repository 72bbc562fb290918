"""Real guest agents and real packet filtering against the real router daemon (`twistd -n
routervm`) inside a router network namespace:

* Debian's cloud-init (22.4, unpatched) runs its own CloudStack datasource inside each guest's
  namespace with ``/usr/bin/python3``; it finds the router by resolving ``data-server`` through
  the router's DNS (``/etc/netns/<ns>/resolv.conf``, bind-mounted by ``ip netns exec``), crawls
  the metadata service on port 80 and fetches and acknowledges the password on port 8080 with
  ``wget``.
* NAT with a "public" namespace: source NAT, a port forward and an egress rule, exercised with
  TCP connections through the router, and the kernel's rule set unchanged by a kill -9 and a
  start that re-applies the persisted state.

Needs root, ``ip netns``, curl, wget and iptables (and cloud-init for the first test); otherwise
the tests skip and say why.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import re
import shutil
import sys
from typing import Any

from twisted.trial.unittest import SkipTest

from tests.integration.router_daemon import RouterDaemonCase
from tests.util.netns import IP, require_commands

SYSTEM_PYTHON = "/usr/bin/python3"
CLOUD_INIT_CS = "/usr/lib/python3/dist-packages/cloudinit/sources/DataSourceCloudStack.py"
PATH_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "LANG": "C.UTF-8"}

MAC1 = "02:00:00:00:b0:01"
MAC2 = "02:00:00:00:b0:02"
UUID1 = "21111111-2222-4333-8444-555555555501"
UUID2 = "21111111-2222-4333-8444-555555555502"
SUBNET = "10.78.0"
ROUTER = f"{SUBNET}.1"
IP1 = f"{SUBNET}.50"
IP2 = f"{SUBNET}.51"
DOMAIN = "guests.internal"
SECRET = "Pw-vm1-cloudinit-9Zq"
KEYS1 = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuest1KeyOne alice@example",
         "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQGuest1KeyTwo bob@example"]
USER_DATA1 = b"#cloud-config\nruncmd:\n - [echo, hello]\n# binary tail: \x00\x01\xfe\xff\r\n"

# Public side (TEST-NET-2): the router puts the source-NAT IP on its public veth itself; the
# public namespace has an allowed and a blocked address.
PUBLIC_IP = "198.51.100.10"
OUTSIDE_OK = "198.51.100.2"
OUTSIDE_BLOCKED = "198.51.100.3"
FORWARD_PORT = 8022
GUEST_PORT = 22
OUTSIDE_PORT = 9000
DNAT_TARGET = f"--to-destination {IP1}:{GUEST_PORT}"

CLOUD_INIT_SCRIPT = r"""
import base64, json, sys
from cloudinit import distros, helpers
from cloudinit.sources import DataSourceCloudStack as cs

d = sys.argv[1]
paths = helpers.Paths({"cloud_dir": d, "run_dir": d + "/run"})
distro = distros.fetch("debian")("debian", {}, paths)
sys_cfg = {"datasource": {"CloudStack": {"max_wait": 30, "timeout": 10, "retries": 2}}}
ds = cs.DataSourceCloudStack(sys_cfg, distro, paths)
ok = ds.get_data()
ud = ds.get_userdata_raw()
if isinstance(ud, str):
    ud = ud.encode("utf-8")
out = {"ok": ok, "vr_addr": ds.vr_addr, "metadata": ds.metadata,
       "instance_id": ds.get_instance_id() if ok else None,
       "local_hostname": (ds.metadata or {}).get("local-hostname"),
       "public_keys": ds.get_public_ssh_keys() if ok else None,
       "user_data": base64.b64encode(ud or b"").decode("ascii"),
       "password": ds.get_config_obj().get("password")}
print(json.dumps(out, default=str))
"""

LISTENER = r"""
import socket, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(("%s %s\n" % (name, peer[0])).encode())
    c.close()
"""

CONNECT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.makefile().readline().strip())
except OSError as e:
    print("ERR %s" % type(e).__name__)
"""


def vm(uuid: str, mac: str, ip: str, hostname: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": uuid, "instance_name": f"i-2-{hostname}-VM", "hostname": hostname,
            "nics": [{"mac": mac, "ip": ip, "default": True, "interface": "br0"}], **extra}


def network() -> dict[str, Any]:
    return {"interface": "br0", "cidr": f"{SUBNET}.0/24", "gateway": ROUTER, "router_ip": ROUTER,
            "domain": DOMAIN, "dns_servers": []}


def normalised_rules(text: str) -> list[str]:
    """`iptables-save` output without its comment lines and packet/byte counters."""
    return [re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


_EMPTY_TABLES = "".join(
    f"*{table}\n" + "".join(f":{chain} ACCEPT [0:0]\n" for chain in chains) + "COMMIT\n"
    for table, chains in (("filter", ("INPUT", "FORWARD", "OUTPUT")),
                          ("nat", ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")),
                          ("mangle", ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"))))


class _RouterDaemon(RouterDaemonCase):
    """A router namespace with guests on bridge ``br0`` (router ``ROUTER/24``) and the real
    daemon in it."""

    def password(self, ns: str, request: str) -> str:
        """One password-server request with curl from `ns` (the status and curl's error kept)."""
        argv = ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}",
                "-H", f"DomU_Request: {request}", f"http://{ROUTER}:8080/"]
        done = self.topo.run_in(ns, argv, check=False, timeout=30)
        text, _, code = done.stdout.rpartition("\n")
        self.assertEqual(code, "200", f"{done.stdout!r} {done.stderr!r}\n{self.app.log()}")
        return text

    def make_router(self, guests: int, public: bool = False, default_route: bool = True) -> None:
        self.build((MAC1, MAC2)[:guests], f"{ROUTER}/24", public=public)
        for i, address in zip(range(1, guests + 1), (IP1, IP2), strict=False):
            ns = self.topo.guest(i).ns
            self.topo.address(ns, "eth0", f"{address}/24")
            if default_route:
                self.topo.route(ns, "default", "via", ROUTER)


class CloudInitTests(_RouterDaemon):
    """cloud-init's own CloudStack datasource, unpatched, in two guest namespaces."""

    def setUp(self) -> None:
        if not os.path.exists(SYSTEM_PYTHON) or not os.path.exists(CLOUD_INIT_CS):
            raise SkipTest("needs Debian's cloud-init (apt-get install cloud-init) and /usr/bin/python3")
        require_commands("wget")
        # No default route: the datasource's gateway fallback finds nothing, so reaching the
        # router proves it resolved data-server through the router's DNS.
        self.make_router(guests=2, default_route=False)
        # ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.
        if not os.path.isdir("/etc/netns"):
            os.makedirs("/etc/netns")
            self.addCleanup(self.remove_if_empty, "/etc/netns")
        for i in (1, 2):
            etc = os.path.join("/etc/netns", self.topo.guest(i).ns)
            os.makedirs(etc)
            self.addCleanup(shutil.rmtree, etc, True)
            with open(os.path.join(etc, "resolv.conf"), "w") as f:
                f.write(f"nameserver {ROUTER}\noptions timeout:2 attempts:2\n")
        self.script = os.path.join(self.dir, "cloudstack_ds.py")
        with open(self.script, "w") as f:
            f.write(CLOUD_INIT_SCRIPT)

    @staticmethod
    def remove_if_empty(path: str) -> None:
        try:
            os.rmdir(path)
        except OSError:
            pass  # another user's namespace configuration is in it

    def cloud_init(self, index: int) -> dict[str, Any]:
        work = os.path.join(self.dir, f"cloud-{index}")
        os.makedirs(work)
        done = self.topo.run_in(self.topo.guest(index).ns, [SYSTEM_PYTHON, self.script, work],
                                check=False, timeout=120, env=PATH_ENV)
        self.assertEqual(done.returncode, 0, f"{done.stdout}\n{done.stderr}\n{self.app.log()}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        self.assertTrue(result["ok"], f"{result}\n{done.stderr}\n{self.app.log()}")
        return result

    def test_cloudstack_datasource(self) -> None:
        """Guest 1 gets VM 1's metadata, exact user data, keys and password (and acknowledges it);
        guest 2 gets VM 2's metadata and no password."""
        self.start()
        state = {"generation": 1, "network": network(), "rules": None,
                 "vms": [vm(UUID1, MAC1, IP1, "vm1", public_keys=KEYS1,
                            user_data=base64.b64encode(USER_DATA1).decode("ascii"),
                            availability_zone="zone-a", service_offering="Small"),
                         # no zone: cloud-init reads availability-zone unconditionally (a
                         # KeyError without it), so the router lists it, empty
                         vm(UUID2, MAC2, IP2, "vm2")]}
        self.assertEqual(self.control("PUT", "/v1/state", state)[1], {"generation": 1, "applied": True})
        self.assertTrue(self.control("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET})[1]["pending"])
        g1, g2 = self.topo.guest(1).ns, self.topo.guest(2).ns

        one = self.cloud_init(1)
        self.assertEqual(one["vr_addr"], ROUTER)  # found through DNS data-server
        self.assertEqual(one["instance_id"], UUID1)
        self.assertEqual(one["local_hostname"], "vm1")
        self.assertEqual(one["metadata"]["local-ipv4"], IP1)
        self.assertEqual(one["metadata"]["availability-zone"], "zone-a")
        self.assertEqual(one["metadata"]["service-offering"], "Small")
        self.assertEqual(sorted(one["public_keys"]), sorted(KEYS1))
        self.assertEqual(base64.b64decode(one["user_data"]), USER_DATA1)
        self.assertEqual(one["password"], SECRET)
        # cloud-init acknowledged it: nothing pending, the router says saved_password
        self.assertEqual(self.password(g1, "send_my_password"), "saved_password")
        self.assertFalse(next(v for v in self.control("GET", "/v1/state")[1]["vms"]
                              if v["uuid"] == UUID1)["password_pending"])

        two = self.cloud_init(2)
        self.assertEqual(two["vr_addr"], ROUTER)
        self.assertEqual(two["instance_id"], UUID2)
        self.assertEqual(two["local_hostname"], "vm2")
        self.assertEqual(two["metadata"]["local-ipv4"], IP2)
        self.assertEqual(two["metadata"]["availability-zone"], "")
        self.assertEqual(two["public_keys"], [])
        self.assertEqual(base64.b64decode(two["user_data"]), b"")
        self.assertIsNone(two["password"])
        self.assertEqual(self.password(g2, "send_my_password"), "saved_password")


class NatTests(_RouterDaemon):
    """Source NAT, a port forward and an egress rule with iptables in the router namespace,
    between a guest and a "public" namespace."""

    def setUp(self) -> None:
        require_commands("iptables-save", "iptables-restore")
        self.make_router(guests=1, public=True)
        router, public = self.topo.router, self.topo.public_ns
        assert public is not None
        self.public = public
        self.topo.address(public, "eth0", f"{OUTSIDE_OK}/24")
        self.topo.address(public, "eth0", f"{OUTSIDE_BLOCKED}/24")
        self.topo.run_in(router, ["sysctl", "-w", "net.ipv4.ip_forward=1"])
        self.listeners = os.path.join(self.dir, "listener.py")
        with open(self.listeners, "w") as f:
            f.write(LISTENER)

    def listen(self, ns: str, name: str, host: str, port: int) -> None:
        proc = self.topo.spawn_in(ns, [sys.executable, "-u", self.listeners, name, host, str(port)])
        self.topo.wait_for_line(proc, "ready")

    def public_addresses(self) -> list[str]:
        out = self.topo.run_in(self.topo.router, [IP, "-j", "-4", "addr", "show", "dev", "pub"]).stdout
        return sorted(f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link["addr_info"])

    def connect(self, ns: str, host: str, port: int, timeout: float = 3) -> str:
        done = self.topo.run_in(ns, [sys.executable, "-c", CONNECT, host, str(port), str(timeout)],
                                timeout=timeout + 30)
        return done.stdout.strip()

    def iptables_save(self) -> list[str]:
        return normalised_rules(self.topo.run_in(self.topo.router, ["iptables-save"]).stdout)

    def complete_rules(self) -> list[str] | None:
        """The rule set once all three tables hold the daemon's rules and two reads agree
        (`iptables-save` reads the tables one by one, so one read may straddle an apply)."""
        first = self.iptables_save()
        markers = (DNAT_TARGET, "-j FW_EGRESS_RULES", f"-j FIREWALL_{PUBLIC_IP}")
        if not all(any(m in line for line in first) for m in markers):
            return None
        return first if self.iptables_save() == first else None

    def test_nat_port_forward_egress_and_restart(self) -> None:
        """The router puts its public IP on the public interface; a connection to public_ip:8022
        reaches guest 1's port 22; guest 1 reaches an allowed outside address as the source-NAT IP
        and not the blocked one; after kill -9 (and the kernel's tables and the public address
        emptied) a start re-applies exactly the same rules and address."""
        rules = {
            "public_addresses": [{"interface": "pub", "ip": PUBLIC_IP, "prefix_length": 24, "source_nat": True}],
            "ingress_rules": [{"public_ip": PUBLIC_IP, "protocol": "tcp", "ports": FORWARD_PORT,
                               "source_cidrs": ["0.0.0.0/0"]}],
            "port_forwards": [{"public_ip": PUBLIC_IP, "protocol": "tcp", "public_ports": FORWARD_PORT,
                               "guest_ip": IP1, "guest_ports": GUEST_PORT}],
            "egress_policy": "allow",
            "egress_rules": [{"protocol": "all", "destination_cidrs": [f"{OUTSIDE_BLOCKED}/32"]}],
        }
        state = {"generation": 1, "network": network(), "rules": rules,
                 "vms": [vm(UUID1, MAC1, IP1, "vm1")]}
        self.start()
        self.assertEqual(self.control("PUT", "/v1/state", state)[1], {"generation": 1, "applied": True})
        applied = self.wait_for("the rules in the kernel", self.complete_rules)
        self.wait_for("the public address", lambda: self.public_addresses() == [f"{PUBLIC_IP}/24"],
                      lambda: str(self.public_addresses()))

        g1 = self.topo.guest(1).ns
        # the filter lets guests reach the password server on any router address of their network
        self.topo.run_in(self.topo.router, [IP, "addr", "add", f"{SUBNET}.254/24", "dev", "br0"])
        for host in (ROUTER, f"{SUBNET}.254"):
            asked = self.topo.run_in(g1, ["curl", "-sS", "--max-time", "5", "-H", "DomU_Request: send_my_password",
                                          f"http://{host}:8080/"], check=False, timeout=30)
            self.assertEqual(asked.stdout, "saved_password", f"{host}: {asked.stderr}")
        self.listen(g1, "guest1", IP1, GUEST_PORT)
        self.listen(self.public, "outside", "0.0.0.0", OUTSIDE_PORT)

        # port forward: the guest sees the outside client's own address
        self.assertEqual(self.connect(self.public, PUBLIC_IP, FORWARD_PORT), f"guest1 {OUTSIDE_OK}")
        # no forward on other ports of the public IP (ingress firewall drops them)
        self.assertEqual(self.connect(self.public, PUBLIC_IP, GUEST_PORT), "ERR TimeoutError")
        # egress: allowed destination, seen as the source-NAT IP; the blocked one never answers
        self.assertEqual(self.connect(g1, OUTSIDE_OK, OUTSIDE_PORT), f"outside {PUBLIC_IP}")
        self.assertEqual(self.connect(g1, OUTSIDE_BLOCKED, OUTSIDE_PORT), "ERR TimeoutError")

        # kill -9, empty the kernel's tables, start: the persisted rules come back identically
        self.kill()
        self.topo.run_in(self.topo.router, ["iptables-restore"], input=_EMPTY_TABLES)
        self.topo.run_in(self.topo.router, [IP, "addr", "flush", "dev", "pub"])
        self.assertFalse(any("DNAT" in line for line in self.iptables_save()))
        self.assertEqual(self.public_addresses(), [])
        self.start()
        self.wait_for("the same rules after the restart", lambda: self.iptables_save() == applied,
                      lambda: "\n".join(difflib.unified_diff(applied, self.iptables_save(), lineterm="")))
        self.assertEqual(self.iptables_save(), applied)
        self.wait_for("the public address again", lambda: self.public_addresses() == [f"{PUBLIC_IP}/24"],
                      lambda: str(self.public_addresses()))
        self.assertEqual(self.connect(self.public, PUBLIC_IP, FORWARD_PORT), f"guest1 {OUTSIDE_OK}")
        self.assertEqual(self.connect(g1, OUTSIDE_OK, OUTSIDE_PORT), f"outside {PUBLIC_IP}")
        self.assertEqual(self.connect(g1, OUTSIDE_BLOCKED, OUTSIDE_PORT), "ERR TimeoutError")
