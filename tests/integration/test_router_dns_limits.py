"""The router's DNS under a hostile or careless guest, against the real daemon (`twistd -n
routervm`) in a router network namespace, guests in namespaces of their own on its bridge:

* DNS over TCP: ``dig +tcp +keepopen`` gets every answer on one connection; queries written
  before the client's half-close are all answered (a forwarded one included) and then the server
  closes; an idle connection, and one trickling a byte at a time, are closed by the server
  (RFC 7766 idle timeout);
* forwarding to upstreams that fail: one that refuses (ICMP port unreachable) gives SERVFAIL, a
  silent one SERVFAIL within the upstream timeout; a flood of random names from one guest at the
  silent upstream is answered (SERVFAIL), holds few descriptors, logs a bounded number of lines
  and no traceback, while another guest's queries keep being answered.

Needs root, ``ip netns``, curl and dig; otherwise the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from tests.integration.router_daemon import RouterDaemonCase
from tests.util.netns import require_commands

MAC1 = "02:00:00:00:c1:01"
MAC2 = "02:00:00:00:c1:02"
SUBNET = "10.81.0"
ROUTER = f"{SUBNET}.1"
IP1 = f"{SUBNET}.50"
IP2 = f"{SUBNET}.51"
DOMAIN = "limits.internal"

# Public side (TEST-NET-2): the router's public veth and three would-be upstreams.
PUBLIC_IP = "198.51.100.10"
UPSTREAM = "198.51.100.53"  # answers (the stub below)
SILENT = "198.51.100.54"  # reads every query and never answers
CLOSED = "198.51.100.55"  # nothing listens: the kernel answers ICMP port unreachable
OUTSIDE_NAME = "www.example.org"
OUTSIDE_ADDRESS = "203.0.113.7"

# A guest-side DNS client (stdlib only), one JSON line on stdout:
#   tcp-half-close NAME...   queries on one connection, then shutdown(SHUT_WR), reads to EOF:
#                            {"answers": [[id, rcode, ancount], ...], "eof": bool}
#   tcp-idle                 connects and sends nothing: {"closed": bool, "seconds": float}
#   tcp-trickle              sends a query one byte every 2 s: {"closed": bool, "sent": n}
#   udp-flood COUNT RATE     COUNT random names at RATE/s, then waits 4 s for the answers:
#                            {"rcodes": {rcode: n}, "unanswered": n}
CLIENT = r"""
import json, os, random, socket, struct, sys, time
server, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]

def query(ident, name):
    body = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
    return struct.pack("!6H", ident, 0x0100, 1, 0, 0, 0) + body

def framed(data):
    return struct.pack("!H", len(data)) + data

if mode == "tcp-half-close":
    c = socket.create_connection((server, 53), timeout=15)
    c.sendall(b"".join(framed(query(i + 1, name)) for i, name in enumerate(args)))
    c.shutdown(socket.SHUT_WR)
    data = b""
    eof = False
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                eof = True
                break
            data += chunk
    except OSError:
        pass
    answers = []
    while len(data) >= 2:
        n, = struct.unpack("!H", data[:2])
        m, data = data[2:2 + n], data[2 + n:]
        answers.append([struct.unpack("!H", m[:2])[0], m[3] & 15, struct.unpack("!H", m[6:8])[0]])
    print(json.dumps({"answers": answers, "eof": eof}))
elif mode == "tcp-idle":
    c = socket.create_connection((server, 53), timeout=40)
    started = time.monotonic()
    try:
        closed = c.recv(1) == b""
    except OSError:
        closed = True
    print(json.dumps({"closed": closed, "seconds": time.monotonic() - started}))
elif mode == "tcp-trickle":
    c = socket.create_connection((server, 53), timeout=5)
    data = framed(query(1, "slow.example.org")) * 20
    sent, closed = 0, False
    for byte in data:
        try:
            c.send(bytes([byte]))
            sent += 1
            c.settimeout(2)
            if c.recv(1) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    print(json.dumps({"closed": closed, "sent": sent}))
elif mode == "udp-flood":
    count, rate = int(args[0]), float(args[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 53))
    s.setblocking(False)
    waiting, rcodes = set(), {}
    started = time.monotonic()

    def drain():
        while True:
            try:
                m = s.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                return
            ident = struct.unpack("!H", m[:2])[0]
            if ident in waiting:
                waiting.discard(ident)
                rcodes[m[3] & 15] = rcodes.get(m[3] & 15, 0) + 1

    for i in range(count):
        while time.monotonic() < started + i / rate:
            drain()
            time.sleep(0.0005)
        ident = i + 1
        waiting.add(ident)
        s.send(query(ident, "r%08x.flood.example.org" % random.getrandbits(32)))
    deadline = time.monotonic() + 4
    while waiting and time.monotonic() < deadline:
        drain()
        time.sleep(0.01)
    print(json.dumps({"rcodes": rcodes, "unanswered": len(waiting)}))
"""


class DnsLimitsTests(RouterDaemonCase):
    timeout = 180

    def setUp(self) -> None:
        require_commands("dig")
        self.build([MAC1, MAC2], f"{ROUTER}/24", public=True)
        router, public = self.topo.router, self.topo.public_ns
        assert public is not None
        self.topo.address(router, "pub", f"{PUBLIC_IP}/24")
        for address in (UPSTREAM, SILENT, CLOSED):
            self.topo.address(public, "eth0", f"{address}/24")
        self.guest1, self.guest2 = self.topo.guest(1).ns, self.topo.guest(2).ns
        self.topo.address(self.guest1, "eth0", f"{IP1}/24")
        self.topo.address(self.guest2, "eth0", f"{IP2}/24")
        self.start_stub_upstream(public, UPSTREAM, OUTSIDE_NAME, OUTSIDE_ADDRESS)
        self.start_stub_upstream(public, SILENT, OUTSIDE_NAME, OUTSIDE_ADDRESS, silent=True)
        self.client = os.path.join(self.dir, "dns_client.py")
        with open(self.client, "w") as f:
            f.write(CLIENT)
        self.start()
        self.generation = 0

    def put_state(self, upstreams: list[str]) -> None:
        self.generation += 1
        vms = [{"uuid": f"41111111-2222-4333-8444-55555555550{i}", "instance_name": f"i-2-vm{i}-VM",
                "hostname": f"vm{i}", "nics": [{"mac": mac, "ip": ip, "default": True, "interface": "br0"}]}
               for i, (mac, ip) in enumerate(((MAC1, IP1), (MAC2, IP2)), start=1)]
        body = {"generation": self.generation,
                "network": {"interface": "br0", "cidr": f"{SUBNET}.0/24", "gateway": ROUTER, "router_ip": ROUTER,
                            "domain": DOMAIN, "dns_servers": upstreams},
                "vms": vms, "rules": None}
        self.assertEqual(self.control("PUT", "/v1/state", body)[1], {"generation": self.generation, "applied": True})

    def guest_client(self, ns: str, *args: str, timeout: float = 60) -> Any:
        done = self.topo.run_in(ns, [sys.executable, self.client, ROUTER, *args], check=False, timeout=timeout)
        self.assertEqual(done.returncode, 0, f"{args}: {done.stdout} {done.stderr}\n{self.app.log()}")
        return json.loads(done.stdout)

    def dig(self, ns: str, *args: str) -> str:
        return self.topo.run_in(ns, ["dig", "+time=6", "+tries=1", f"@{ROUTER}", *args], check=False,
                                timeout=30).stdout

    def status(self, ns: str, *args: str) -> str:
        found = re.findall(r"status: (\w+)", self.dig(ns, *args))
        return found[0] if found else "no answer"

    def daemon_descriptors(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def daemon_rss(self) -> int:
        """The daemon's resident memory, kB."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]

    def test_tcp(self) -> None:
        """dig +tcp +keepopen gets every answer on one connection; queries written before a
        half-close are all answered (the forwarded one too), then the server closes; idle and
        trickling connections are closed by the server."""
        self.put_state([UPSTREAM])
        out = self.dig(self.guest1, "+tcp", "+keepopen", f"vm1.{DOMAIN}", OUTSIDE_NAME, f"nosuch.{DOMAIN}")
        self.assertEqual(re.findall(r"status: (\w+)", out), ["NOERROR", "NOERROR", "NXDOMAIN"], out)
        self.assertIn(OUTSIDE_ADDRESS, out)

        got = self.guest_client(self.guest1, "tcp-half-close", f"vm2.{DOMAIN}", OUTSIDE_NAME, f"nosuch.{DOMAIN}")
        self.assertEqual(sorted(got["answers"]), [[1, 0, 1], [2, 0, 1], [3, 3, 0]], got)
        self.assertTrue(got["eof"], got)

        idle = self.guest_client(self.guest1, "tcp-idle")
        self.assertTrue(idle["closed"], idle)
        trickle = self.guest_client(self.guest2, "tcp-trickle")
        self.assertTrue(trickle["closed"], trickle)
        self.assertNotIn("Traceback", self.app.log())

    def test_failing_upstreams(self) -> None:
        """A refusing upstream gives SERVFAIL; a silent one SERVFAIL within its timeout; a flood of
        random names at the silent one (1,000/s) is answered, holds few descriptors and little
        memory, logs little, and the other guest is answered meanwhile."""
        self.put_state([CLOSED])
        self.assertEqual(self.status(self.guest1, "+noedns", "refused.example.org"), "SERVFAIL")
        self.wait_for("the refusal logged", lambda: "connection refused" in self.app.log())

        self.put_state([SILENT])
        self.assertEqual(self.status(self.guest1, "silent.example.org"), "SERVFAIL")
        descriptors = self.daemon_descriptors()
        rss = self.daemon_rss()
        log_size = len(self.app.log())
        flood = self.topo.spawn_in(self.guest1, [sys.executable, self.client, ROUTER, "udp-flood", "3000", "1000"])
        for _ in range(5):
            self.assertEqual(self.status(self.guest2, f"vm1.{DOMAIN}"), "NOERROR")
            self.assertEqual(self.status(self.guest2, "+tcp", "data-server"), "NOERROR")
        out, _ = flood.communicate(timeout=60)
        result = json.loads(out)
        self.assertEqual(result["unanswered"], 0, result)
        self.assertEqual(set(result["rcodes"]), {str(2)}, result)  # SERVFAIL only
        self.assertLess(self.daemon_descriptors(), descriptors + 20)
        self.assertLess(self.daemon_rss(), rss * 1.1)  # memory comes back (within 10%)
        log = self.app.log()
        self.assertLess(len(log) - log_size, 20_000)
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled", log)
