"""The real router daemon (`twistd -n routervm`) under a hostile guest, in network namespaces.

Guest 1 attacks: it opens 20,000 TCP connections across ports 53, 80 and 8080 of the router
(non-blocking sockets, in two processes whose ``RLIMIT_NOFILE`` is raised to the hard limit),
holds slow heads on those the router keeps (a byte every two seconds), opens new ones as the
router closes them (1,000 a second), and floods queries (1,000 a second) for random outside
names, which the router forwards to an upstream that never answers (a UDP socket in the
"public" namespace).  The attacking processes run at the lowest CPU priority: a guest's CPU is
not the router's, but here they share the machine's cores.  Meanwhile guest 2 fetches its
metadata and password and resolves its name (UDP and TCP), and a cloudd-like client calls the
control API over mutual TLS from the router namespace: like cloudd's agent, it keeps its connection
alive, and every 20th call it opens a new one (its handshakes must all succeed; their times are
printed, not bounded, since they are mostly the client's own TLS work).

Asserted: none of their requests fails; their 99th percentile latency stays under 50 ms
(``CLOUDD_HOSTILE_P99_MS`` changes the bound on a loaded machine; the same requests without an
attack are measured and printed beside); the log grows by less than a bound and has no
traceback, and a repeated password fetch logs one line; the daemon's resident memory returns to
within 10% of its level before the attack.

Needs root, ``ip netns`` and curl; otherwise the test skips and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from tests.integration.router_daemon import RouterDaemonCase
from tests.util.netns import IP

MAC1 = "02:00:00:00:c0:01"
MAC2 = "02:00:00:00:c0:02"
UUID1 = "31111111-2222-4333-8444-555555555501"
UUID2 = "31111111-2222-4333-8444-555555555502"
SUBNET = "10.79.0"
ROUTER = f"{SUBNET}.1"
ATTACKER = f"{SUBNET}.50"
VICTIM = f"{SUBNET}.51"
DOMAIN = "hostile.internal"
SECRET = "Pw-vm2-under-attack-7Qx"
ROUTER_PUBLIC = "198.51.100.1"
UPSTREAM = "198.51.100.53"

CONNECTIONS = 20_000
#: Attacking processes in guest 1, each opening its share (the hard RLIMIT_NOFILE may be 20,000).
ATTACKERS = 2
ATTACK_SECONDS = 45.0
MEASURE_SECONDS = 30.0
#: The attack's query flood, and the connections it opens again each second as the router closes them.
QUERIES_PER_SECOND = 1000
REOPEN_PER_SECOND = 1000
BASELINE_SECONDS = 10.0
P99_MS = float(os.environ.get("CLOUDD_HOSTILE_P99_MS", "50"))
#: What the attack may add to the log (the rotated files included).
LOG_BOUND = 160 * 1024

# Every helper prints one JSON line when done.
SILENT_UPSTREAM = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    s.recvfrom(4096)  # never answers
"""

COMMON = r"""
import json, os, random, socket, struct, sys, time

def dns_query(name, qid):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)
"""

ATTACK_SCRIPT = COMMON + r"""
import errno, resource
router, total, duration, rate, reopen = (sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]),
                                         int(sys.argv[5]))
# A guest's CPU is not the router's: on this shared machine the attacker yields to everyone else.
os.nice(19)
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # root may not raise the hard limit in a container
ports = (53, 80, 8080)
live = []  # (socket, port)
stats = {"opened": 0, "closed_by_router": 0, "max_open": 0, "queries": 0, "answers": 0, "open_errors": 0}

def open_one(i):
    port = ports[i % 3]
    s = socket.socket()
    s.setblocking(False)
    err = s.connect_ex((router, port))
    if err not in (0, errno.EINPROGRESS):
        s.close()
        stats["open_errors"] += 1
        return
    stats["opened"] += 1
    live.append((s, port))

for i in range(total):
    open_one(i)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setblocking(False)
udp.connect((router, 53))
start = time.monotonic()
next_trickle = start
sent_queries = 0
i = 0
while time.monotonic() - start < duration:
    now = time.monotonic()
    # the query flood: random outside names, forwarded to a silent upstream
    due = int((now - start) * rate) - sent_queries
    for _ in range(min(due, 500)):
        name = "r%08x.attack.example.net" % random.getrandbits(32)
        try:
            udp.send(dns_query(name, random.getrandbits(16)))
            stats["queries"] += 1
        except OSError:
            pass
        sent_queries += 1
    try:
        while True:
            udp.recv(4096)
            stats["answers"] += 1
    except OSError:
        pass
    if now >= next_trickle:
        # slow heads: one byte on every connection still open; reopen those the router closed
        next_trickle = now + 2.0
        kept = []
        for s, port in live:
            try:
                if s.recv(65536, socket.MSG_DONTWAIT) == b"":
                    raise ConnectionError
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                stats["closed_by_router"] += 1
                continue
            try:
                s.send(b"G" if port != 53 else b"\x01")
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                stats["closed_by_router"] += 1
                continue
            kept.append((s, port))
        live[:] = kept
        stats["max_open"] = max(stats["max_open"], len(live))
        for _ in range(min(total - len(live), reopen * 2)):
            open_one(i)
            i += 1
    time.sleep(0.01)
stats["open_at_end"] = len(live)
print(json.dumps(stats), flush=True)
"""

VICTIM_SCRIPT = COMMON + r"""
router, duration, name, uuid, secret = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
times = {"metadata": [], "password": [], "dns": [], "dns_tcp": []}
failures = []

def http(port, request):
    with socket.create_connection((router, port), timeout=5) as c:
        c.sendall(request)
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return data
            data += chunk

def metadata():
    data = http(80, b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
    if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(uuid.encode()):
        raise ValueError(data[:80])

def password():
    data = http(8080, b"GET / HTTP/1.0\r\nDomU_Request: send_my_password\r\n\r\n")
    if not data.endswith(secret.encode()):
        raise ValueError(data[:80])

def check_answer(answer, qid):
    ident, flags, qd, an = struct.unpack("!HHHH", answer[:8])
    if ident != qid or flags & 0xF != 0 or an < 1:
        raise ValueError(answer[:16])

def dns():
    qid = random.getrandbits(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(dns_query(name, qid), (router, 53))
        check_answer(s.recv(4096), qid)

def dns_tcp():
    qid = random.getrandbits(16)
    query = dns_query(name, qid)
    with socket.create_connection((router, 53), timeout=5) as c:
        c.sendall(struct.pack("!H", len(query)) + query)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = c.recv(4096)
            if not chunk:
                raise ValueError("closed")
            data += chunk
        check_answer(data[2:], qid)

start = time.monotonic()
while time.monotonic() - start < duration:
    for kind, call in (("metadata", metadata), ("password", password), ("dns", dns), ("dns_tcp", dns_tcp)):
        t = time.perf_counter()
        try:
            call()
        except Exception as e:
            failures.append("%s: %s %s" % (kind, type(e).__name__, e))
            continue
        times[kind].append(time.perf_counter() - t)
    time.sleep(0.02)
print(json.dumps({"times": times, "failures": failures}), flush=True)
"""

CONTROL_SCRIPT = COMMON + r"""
import ssl
host, port, tls, client, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
context = ssl.create_default_context(cafile=os.path.join(tls, "ca.pem"))
context.load_cert_chain(os.path.join(client, "cert.pem"), os.path.join(client, "key.pem"))
REQUEST = b"GET /health HTTP/1.1\r\nHost: router\r\n\r\n"


def connect():
    raw = socket.create_connection((host, port), timeout=5)
    return context.wrap_socket(raw, server_hostname=host)


def exchange(conn):
    # one request on a kept-alive connection: the head, then exactly Content-Length bytes
    conn.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the router")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200 "):
        raise ValueError(head[:80])
    length = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
              if line.lower().startswith(b"content-length:")][0]
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the router")
        body += chunk


# cloudd's agent keeps its connections (a persistent HTTPConnectionPool): requests are timed on
# one kept-alive connection; every 20th request opens a new connection (TLS handshake with the
# client certificate included), timed apart, so new connections are shown to be accepted too.
times, fresh, failures = [], [], []
conn = None
start = time.monotonic()
count = 0
while time.monotonic() - start < duration:
    count += 1
    t = time.perf_counter()
    try:
        if conn is None or count % 20 == 0:
            if conn is not None:
                conn.close()
            conn = None
            conn = connect()
            exchange(conn)
            fresh.append(time.perf_counter() - t)
        else:
            exchange(conn)
            times.append(time.perf_counter() - t)
    except Exception as e:
        failures.append("control: %s %s" % (type(e).__name__, e))
        conn = None
    time.sleep(0.02)
print(json.dumps({"times": {"control": times}, "fresh": fresh, "failures": failures}), flush=True)
"""


def vm(uuid: str, mac: str, ip: str, hostname: str) -> dict[str, Any]:
    return {"uuid": uuid, "instance_name": f"i-2-{hostname}-VM", "hostname": hostname,
            "nics": [{"mac": mac, "ip": ip, "default": True, "interface": "br0"}]}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def latency_report(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    times = {kind: values for r in results for kind, values in r["times"].items()}
    return {kind: {"n": len(values), "p50_ms": round(sorted(values)[len(values) // 2] * 1000, 2),
                   "p99_ms": round(p99(values) * 1000, 2)} for kind, values in times.items() if values}


class HostileGuestTests(RouterDaemonCase):
    timeout = 420

    def setUp(self) -> None:
        self.build((MAC1, MAC2), f"{ROUTER}/24", public=True)
        for index, address in ((1, ATTACKER), (2, VICTIM)):
            ns = self.topo.guest(index).ns
            self.topo.address(ns, "eth0", f"{address}/24")
            self.topo.route(ns, "default", "via", ROUTER)
        public = self.topo.public_ns
        assert public is not None
        self.topo.run_in(self.topo.router, [IP, "addr", "add", f"{ROUTER_PUBLIC}/24", "dev", "pub"])
        self.topo.address(public, "eth0", f"{UPSTREAM}/24")
        self.scripts: dict[str, str] = {}
        for name, text in (("upstream", SILENT_UPSTREAM), ("attack", ATTACK_SCRIPT), ("victim", VICTIM_SCRIPT),
                           ("control", CONTROL_SCRIPT)):
            path = self.scripts[name] = os.path.join(self.dir, f"{name}.py")
            with open(path, "w") as f:
                f.write(text)
        upstream = self.topo.spawn_in(public, [sys.executable, "-u", self.scripts["upstream"], UPSTREAM])
        self.topo.wait_for_line(upstream, "ready")

    # --- measuring ----------------------------------------------------------------------------------

    def rss(self) -> int:
        """The daemon's resident memory in bytes, from /proc."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def cpu_seconds(self) -> float:
        """The daemon's CPU time so far (user and system), from /proc."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_bytes(self) -> int:
        folder, name = os.path.split(self.app.log_path)
        return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
                   if n == name or n.startswith(name + "."))

    def spawn_victim(self, seconds: float) -> subprocess.Popen[Any]:
        return self.topo.spawn_in(self.topo.guest(2).ns, [
            sys.executable, "-u", self.scripts["victim"], ROUTER, str(seconds), f"vm2.{DOMAIN}", UUID2, SECRET])

    def spawn_control(self, seconds: float) -> subprocess.Popen[Any]:
        app = self.app
        return self.topo.spawn_in(self.topo.router, [
            sys.executable, "-u", self.scripts["control"], "127.0.0.1", str(app.port), app.tls_dir,
            app.client_dir, str(seconds)])

    def result(self, proc: subprocess.Popen[Any], timeout: float) -> dict[str, Any]:
        out, err = proc.communicate(timeout=timeout)
        self.assertEqual(proc.returncode, 0, f"{out}\n{err}")
        parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return parsed

    # --- the test -----------------------------------------------------------------------------------

    def test_hostile_guest(self) -> None:
        self.start()
        state = {"generation": 1, "rules": None,
                 "network": {"interface": "br0", "cidr": f"{SUBNET}.0/24", "gateway": ROUTER,
                             "router_ip": ROUTER, "domain": DOMAIN, "dns_servers": [UPSTREAM]},
                 "vms": [vm(UUID1, MAC1, ATTACKER, "vm1"), vm(UUID2, MAC2, VICTIM, "vm2")]}
        self.assertEqual(self.control("PUT", "/v1/state", state)[1], {"generation": 1, "applied": True})
        self.assertTrue(self.control("PUT", f"/v1/vms/{UUID2}/password", {"password": SECRET})[1]["pending"])

        # warm up (and check) every path, measure the same requests without an attack (printed:
        # what this machine's load alone costs), then take the baseline
        warm = [self.spawn_victim(BASELINE_SECONDS), self.spawn_control(BASELINE_SECONDS)]
        quiet = [self.result(proc, 60) for proc in warm]
        self.assertEqual([f for r in quiet for f in r["failures"]], [])
        print(f"without attack: {latency_report(quiet)}")
        rss_before, log_before = self.rss(), self.log_bytes()

        attackers = [self.topo.spawn_in(self.topo.guest(1).ns, [
            sys.executable, "-u", self.scripts["attack"], ROUTER, str(CONNECTIONS // ATTACKERS),
            str(ATTACK_SECONDS), str(QUERIES_PER_SECOND // ATTACKERS), str(REOPEN_PER_SECOND // ATTACKERS)])
            for _ in range(ATTACKERS)]
        time.sleep(8)  # the attack is under way: connections opened, trickling, queries flowing
        cpu_start, wall_start = self.cpu_seconds(), time.monotonic()
        measured = [self.spawn_victim(MEASURE_SECONDS), self.spawn_control(MEASURE_SECONDS)]
        results = [self.result(proc, MEASURE_SECONDS + 60) for proc in measured]
        router_cpu = (self.cpu_seconds() - cpu_start) / (time.monotonic() - wall_start)
        shares = [self.result(attacker, ATTACK_SECONDS + 60) for attacker in attackers]
        attack = {key: sum(share[key] for share in shares) for key in shares[0]}
        rss_attack = self.rss()

        failures = [f for r in results for f in r["failures"]]
        times = {kind: values for r in results for kind, values in r["times"].items()}
        report = latency_report(results)
        fresh = sorted(v for r in results for v in r.get("fresh", []))
        summary = (f"attack: {attack}\nrouter CPU during the measurement: {router_cpu:.0%} of a core; load "
                   f"{os.getloadavg()}\nlatency: {report}\nnew control connections: {len(fresh)}, p50 "
                   f"{fresh[len(fresh) // 2] * 1000 if fresh else 0:.2f} ms, p99 {p99(fresh) * 1000 if fresh else 0:.2f} ms"
                   f"\nfailures: {failures[:20]}")
        print(summary)
        self.assertGreater(attack["opened"], CONNECTIONS, summary)
        self.assertGreater(attack["queries"], 20_000, summary)
        self.assertEqual(failures, [], summary)
        self.assertGreater(len(fresh), 10, summary)  # new control connections are accepted all along
        for kind, values in times.items():
            self.assertGreater(len(values), 100, f"{kind}: {summary}")
            self.assertLess(p99(values) * 1000, P99_MS, f"{kind}: {summary}")

        # the attack over: its connections end (head deadline, DNS idle timeout); memory returns
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.rss() > rss_before * 1.10:
            time.sleep(1)  # polling a real process
        rss_after = self.rss()
        growth = self.log_bytes() - log_before
        print(f"rss before {rss_before}, during {rss_attack}, after {rss_after}; log grew {growth} bytes")
        self.assertLessEqual(rss_after, rss_before * 1.10, f"before {rss_before}, after {rss_after}")

        log = self.app.log()
        # the control client's own calls are logged one access line each, as cloudd's would be: the
        # bound is on what the attack and the guests add
        control_lines = sum(len(line) + 1 for line in log[max(0, len(log) - growth):].splitlines() if '"GET /health HTTP/1.1"' in line)
        print(f"of which the control API's access log: {control_lines} bytes")
        self.assertLess(growth - control_lines, LOG_BOUND, log[-4000:])
        self.assertNotIn("Traceback", log)
        self.assertEqual(log.count("password served to vm"), 1)
