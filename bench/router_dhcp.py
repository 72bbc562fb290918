"""Benchmark of the router's DHCP server: first leases and renewals per second, ours against dnsmasq.

Run as root from a clone (needs ``ip netns`` and dnsmasq, Debian package ``dnsmasq-base``)::

    python bench/router_dhcp.py [--sizes 1000 5000] [--rounds 5] [--duration 5] [--window 64]

For each reservation-table size N it builds one topology (tests/util/netns.py: a router namespace
and a client namespace joined by a veth pair, a /16 guest subnet) and writes the same N static
reservations (plus one warm-up host) for both servers:

* ``python -m routervm.dhcp.standalone`` on the router's veth, and
* ``dnsmasq`` with the same hosts as ``dhcp-host`` entries (a ``dhcp-hostsfile``, static range,
  ``dhcp-ignore=tag:!known``, a lease file, DNS off), as the CloudStack router configures it,

each pinned to core 1, against a raw-socket (AF_PACKET) load generator pinned to core 0 in the
client namespace that keeps ``--window`` exchanges in flight.  Each round starts each server
afresh (dnsmasq on an empty lease file), alternating which goes first, waits until it answers the
warm-up host, then measures two phases:

* first leases: one DORA per host, every host once (DISCOVER with the broadcast flag, REQUEST for
  the offered address, ACK), so each ACK is a host's first lease (dnsmasq records a new lease);
* renewals: for ``--duration`` seconds, one host after another, every one already leased, sends
  the REQUEST of a client that holds its lease (the INIT-REBOOT form: its address requested, no
  server identifier, broadcast flag; one REQUEST and one ACK per renewal).  A RENEWING client's
  unicast form is left out on purpose: its ACK goes to ciaddr, which would need a neighbour
  entry per host in the router namespace, and the kernel's neighbour table is shared by every
  namespace of the machine (1,024 entries by default).

An exchange with no answer within `EXCHANGE_TIMEOUT` is abandoned and counted as lost.  For every
phase it prints, per run, the ACKs per second and the server's CPU time per ACK (utime + stime
from ``/proc/<pid>/stat`` before and after the phase, bench/measure.py), per round the ratios
ours / dnsmasq (by rate, and dnsmasq's CPU per ACK / ours), and at the end the medians with their
spread (min-max) over at least five rounds, noting when the generator's own CPU capped the rate.
Targets (the issue): rate ratio at least 2 at 1,000 reservations and at least 5 at 5,000.  Exit
status 0 whatever the figures; non-zero only if the setup fails.  Everything it starts is stopped
by PID and the namespaces are deleted on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.measure import MIN_ROUNDS, Sample, Series, ServerCpu, rounds_note  # noqa: E402
from tests.util.netns import GuestSpec, Topology, repo_env, require_root_and_netns  # noqa: E402

SUBNET = IPv4Network("10.233.0.0/16")
ROUTER = IPv4Address("10.233.0.1")
SERVER_CORE = 1
CLIENT_CORE = 0
ETH_P_IP = 0x0800
#: Seconds after which an exchange without its answer is abandoned (counted as lost).
EXCHANGE_TIMEOUT = 1.0


def mac_of(i: int) -> bytes:
    return bytes((0x02, 0x10)) + struct.pack("!I", i)


def ip_of(i: int) -> IPv4Address:
    return SUBNET.network_address + 10 + i


def fmt_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# --- the load generator (runs inside the client namespace) ------------------------------------------


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(mac: bytes, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                               bytes(4), b"\xff\xff\xff\xff"))
    struct.pack_into("!H", ip, 10, _ip_checksum(bytes(ip)))
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_IP) + bytes(ip) + udp


def _bootp(mac: bytes, xid: int, options: bytes) -> bytes:
    header = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                         bytes(4), bytes(4), bytes(4), bytes(4), mac, b"", b"")
    body = header + b"\x63\x82\x53\x63" + options + b"\xff"
    return body + bytes(max(0, 300 - len(body)))


def generate(interface: str, count: int, duration: float, window: int, mode: str = "first",
             first: int = 0) -> dict[str, Any]:
    """Exchanges from the `count` MACs of hosts `first`, `first` + 1, ... (xid = the position in
    that run); return the counts, the rate and this process's CPU seconds during the exchanges.

    ``first``: one DORA per MAC, each once (a first lease each), until every exchange is
    answered or abandoned.  ``renew``: for `duration` seconds, one MAC after another sends the
    REQUEST of a client that holds its lease (the INIT-REBOOT form: its address as the requested
    address, no server identifier, ciaddr 0, broadcast flag), answered by a broadcast ACK."""
    discover = []
    request = []
    params = bytes((55, 4, 1, 3, 6, 15))
    for i in range(count):
        mac = mac_of(first + i)
        wanted = b"\x32\x04" + ip_of(first + i).packed
        if mode == "renew":
            discover.append(b"")
            request.append(_frame(mac, _bootp(mac, i, b"\x35\x01\x03" + wanted + params)))
            continue
        discover.append(_frame(mac, _bootp(mac, i, b"\x35\x01\x01" + params)))
        request.append(_frame(mac, _bootp(mac, i, b"\x35\x01\x03" + wanted + b"\x36\x04" + ROUTER.packed + params)))

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    sock.bind((interface, ETH_P_IP))
    sock.setblocking(False)

    state = bytearray(count)  # 0 idle, 1 DISCOVER sent, 2 REQUEST sent, 3 done (first mode)
    sent_at = [0.0] * count
    in_flight: set[int] = set()
    next_index = 0
    started = 0
    acks = offers = lost = 0
    buf = bytearray(2048)
    view = memoryview(buf)
    once = mode == "first"

    def start_one() -> None:
        nonlocal next_index, started
        if once:
            if next_index < count:
                i = next_index
                next_index += 1
                started += 1
                state[i] = 1
                sent_at[i] = now
                in_flight.add(i)
                sock.send(discover[i])
            return
        for _ in range(count):
            i = next_index
            next_index = (next_index + 1) % count
            if i not in in_flight:
                state[i] = 2
                sent_at[i] = now
                in_flight.add(i)
                sock.send(request[i])
                return

    cpu_begin = time.process_time()
    now = time.monotonic()
    begin = now
    end = begin + duration if not once else float("inf")
    last_sweep = now
    for _ in range(min(window, count)):
        start_one()
    while now < end and (not once or in_flight):
        readable, _, _ = select.select([sock], [], [], 0.05)
        now = time.monotonic()
        if readable:
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                # Ethernet(14) + IPv4(ihl) + UDP(8): replies to port 68 with BOOTREPLY.
                if n < 14 + 20 + 8 + 240 or buf[23] != 17:
                    continue
                udp = 14 + (buf[14] & 0x0F) * 4
                if buf[udp + 2] != 0 or buf[udp + 3] != 68:
                    continue
                bootp = udp + 8
                if buf[bootp] != 2:
                    continue
                xid = struct.unpack_from("!I", view, bootp + 4)[0]
                if xid >= count:
                    continue
                kind = 0
                j = bootp + 240
                while j + 1 < n:
                    code = buf[j]
                    if code == 0:
                        j += 1
                        continue
                    if code == 255:
                        break
                    if code == 53:
                        kind = buf[j + 2]
                        break
                    j += 2 + buf[j + 1]
                if kind == 2 and state[xid] == 1:
                    offers += 1
                    state[xid] = 2
                    sent_at[xid] = now
                    sock.send(request[xid])
                elif kind == 5 and state[xid] == 2:
                    acks += 1
                    state[xid] = 3 if once else 0
                    in_flight.discard(xid)
                    start_one()
        if now - last_sweep > 0.1:
            last_sweep = now
            for i in [i for i in in_flight if now - sent_at[i] > EXCHANGE_TIMEOUT]:
                lost += 1
                state[i] = 3 if once else 0
                in_flight.discard(i)
                start_one()
    elapsed = time.monotonic() - begin
    cpu = time.process_time() - cpu_begin
    sock.close()
    return {"acks": acks, "offers": offers, "lost": lost, "seconds": elapsed, "rate": acks / elapsed,
            "cpu": cpu, "started": started}


# --- servers ------------------------------------------------------------------------------------------


def write_reservations(directory: str, count: int) -> tuple[str, str]:
    """Hosts 0 .. `count` - 1 and the warm-up host `count`, for both servers."""
    ours = os.path.join(directory, "hosts.json")
    with open(ours, "w") as f:
        json.dump([{"mac": fmt_mac(mac_of(i)), "ip": str(ip_of(i)), "hostname": f"vm-{i}"}
                   for i in range(count + 1)], f)
    hostsfile = os.path.join(directory, "dhcphosts.txt")
    with open(hostsfile, "w") as f:
        for i in range(count + 1):
            f.write(f"{fmt_mac(mac_of(i))},{ip_of(i)},vm-{i},infinite\n")
    return ours, hostsfile


def dnsmasq_conf(directory: str, hostsfile: str, interface: str) -> str:
    path = os.path.join(directory, "dnsmasq.conf")
    with open(path, "w") as f:
        f.write("\n".join([
            "port=0",
            "user=root",
            f"interface={interface}",
            "bind-interfaces",
            f"dhcp-range=set:bench,{SUBNET.network_address},static,{SUBNET.netmask},infinite",
            f"dhcp-hostsfile={hostsfile}",
            "dhcp-ignore=tag:!known",
            "dhcp-lease-max=20000",
            f"dhcp-leasefile={leases_path(directory)}",
            f"dhcp-option=option:router,{ROUTER}",
            f"dhcp-option=6,{ROUTER},192.0.2.53",
            "dhcp-option=15,cloudnine.internal",
            "domain=cloudnine.internal",
            "quiet-dhcp",
            f"pid-file={os.path.join(directory, 'dnsmasq.pid')}",
            "",
        ]))
    return path


def leases_path(directory: str) -> str:
    return os.path.join(directory, "dnsmasq.leases")


def start_ours(topo: Topology, hosts: str, interface: str) -> subprocess.Popen[Any]:
    argv = [sys.executable, "-m", "routervm.dhcp.standalone", "--quiet", "--interface", interface,
            "--router-ip", str(ROUTER), "--cidr", str(SUBNET), "--reservations", hosts,
            "--domain", "cloudnine.internal", "--dns", "192.0.2.53"]
    proc = topo.spawn_in(topo.router, argv, env=repo_env(), pin_cpu=SERVER_CORE)
    topo.wait_for_line(proc, "READY", timeout=60)
    return proc


def start_dnsmasq(topo: Topology, conf: str, directory: str) -> subprocess.Popen[Any]:
    """dnsmasq on a fresh (empty) lease file: every host's first exchange is a first lease."""
    open(leases_path(directory), "w").close()
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    return topo.spawn_in(topo.router, [dnsmasq, "-k", f"--conf-file={conf}"], pin_cpu=SERVER_CORE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_generator(topo: Topology, interface: str, count: int, duration: float, window: int, mode: str,
                  first: int = 0) -> dict[str, Any]:
    argv = ["taskset", "-c", str(CLIENT_CORE), sys.executable, os.path.abspath(__file__), "--generate",
            "--interface", interface, "--count", str(count), "--duration", str(duration),
            "--window", str(window), "--mode", mode, "--first", str(first)]
    result = topo.run_in(topo.guest(1).ns, argv, timeout=duration + count * EXCHANGE_TIMEOUT + 120, env=repo_env())
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _sample(result: dict[str, Any], server_cpu: float) -> Sample:
    return Sample(requests=int(result["acks"]), seconds=float(result["seconds"]), server_cpu=server_cpu,
                  load_cpu=float(result["cpu"]))


def measure(topo: Topology, start: Callable[[], subprocess.Popen[Any]], count: int,
            args: argparse.Namespace) -> tuple[Sample, Sample]:
    """One server, freshly started: (first leases of hosts 0 .. `count` - 1, then renewals of
    the same hosts for ``args.duration`` seconds)."""
    proc = start()
    try:
        # Readiness (dnsmasq gives no sign): the warm-up host until one exchange succeeds.
        for _ in range(40):
            if run_generator(topo, "eth0", 1, 0, 1, "first", first=count)["acks"] > 0:
                break
        else:
            raise RuntimeError("the server never answered")
        with ServerCpu(proc.pid) as cpu:
            leases = run_generator(topo, "eth0", count, 0, args.window, "first")
        first = _sample(leases, cpu.seconds)
        with ServerCpu(proc.pid) as cpu:
            renewals = run_generator(topo, "eth0", count, args.duration, args.window, "renew")
        renew = _sample(renewals, cpu.seconds)
    finally:
        topo.stop(proc)
    for name, result, sample in (("first leases", leases, first), ("renewals", renewals, renew)):
        print(f"    {name:<12} {result['acks']:6d} ACKs in {result['seconds']:6.2f} s = {sample.rate:7.0f}/s, "
              f"server cpu {sample.cpu_us:6.1f} us/ACK (offers {result['offers']}, lost {result['lost']})",
              flush=True)
    return first, renew


def target_for(count: int) -> float:
    """The issue's target ratio (by rate) for a table of `count` reservations."""
    return 2.0 if count <= 1000 else 5.0


@dataclass
class Phase:
    """One phase at one table size: both servers' rounds."""

    count: int
    name: str  # "first leases" or "renewals"
    ours: Series
    theirs: Series

    @property
    def target(self) -> float:
        return target_for(self.count)

    @property
    def ratio(self) -> float:
        return self.ours.rate_ratio(self.theirs).median

    @property
    def cpu_ratio(self) -> float:
        return self.ours.cpu_ratio(self.theirs).median


def run(*, sizes: Sequence[int] = (1000, 5000), rounds: int = MIN_ROUNDS, duration: float = 5.0,
        window: int = 64) -> list[Phase]:
    """Measure both servers `rounds` times per table size, alternating which goes first; print each
    run and return the phases (first leases, renewals) per size."""
    args = argparse.Namespace(sizes=list(sizes), rounds=rounds, duration=duration, window=window)
    require_root_and_netns()
    if shutil.which("dnsmasq") is None:
        raise SystemExit("dnsmasq is missing (Debian package dnsmasq-base)")
    note = rounds_note(rounds)
    if note:
        print(note, flush=True)
    phases = []
    for count in args.sizes:
        directory = tempfile.mkdtemp(prefix="cdt-bench-dhcp-")
        topo = Topology(guest_specs=[GuestSpec()])
        first = Phase(count, "first leases", Series("routervm"), Series("dnsmasq"))
        renew = Phase(count, "renewals", Series("routervm"), Series("dnsmasq"))
        try:
            topo.create()
            topo.address(topo.router, "g1", f"{ROUTER}/{SUBNET.prefixlen}")
            hosts, hostsfile = write_reservations(directory, count)
            conf = dnsmasq_conf(directory, hostsfile, "g1")
            servers = {"routervm": partial(start_ours, topo, hosts, "g1"),
                       "dnsmasq": partial(start_dnsmasq, topo, conf, directory)}
            for r in range(1, args.rounds + 1):
                print(f"{count} reservations, round {r}:", flush=True)
                for name in ("routervm", "dnsmasq") if r % 2 else ("dnsmasq", "routervm"):
                    print(f"  {name}:", flush=True)
                    leases, renewals = measure(topo, servers[name], count, args)
                    ours = name == "routervm"
                    (first.ours if ours else first.theirs).add(leases)
                    (renew.ours if ours else renew.theirs).add(renewals)
                for phase in (first, renew):
                    o, t = phase.ours.samples[-1], phase.theirs.samples[-1]
                    print(f"  {phase.name}: rate ratio {o.rate / t.rate if t.rate else float('inf'):.2f}, "
                          f"cpu ratio {t.cpu_us / o.cpu_us if o.cpu_us else float('inf'):.2f}", flush=True)
        finally:
            topo.destroy()
            shutil.rmtree(directory, ignore_errors=True)
        phases += [first, renew]
    return phases


def bench(args: argparse.Namespace) -> None:
    phases = run(sizes=args.sizes, rounds=args.rounds, duration=args.duration, window=args.window)
    print()
    print(f"median (min-max) over {args.rounds} rounds; ratios are routervm / dnsmasq per round, by rate "
          f"and by server CPU per ACK (dnsmasq's / ours, higher is better):")
    for phase in phases:
        print(f"{phase.count:,} reservations, {phase.name}:")
        print("  " + phase.ours.report(reference=phase.theirs, unit="ACK/s", per="ACK", width=9))
        print("  " + phase.theirs.report(unit="ACK/s", per="ACK", width=9))
        verdict = "met" if phase.ratio >= phase.target else "NOT met"
        print(f"  target: rate ratio >= {phase.target:g}: {phase.ratio:.2f}, {verdict}")
    print(f"(server on core {SERVER_CORE}, generator on core {CLIENT_CORE}, window {args.window}; first leases: "
          f"one DORA per host on a fresh server and lease file; renewals: REQUESTs of leased hosts for "
          f"{args.duration:g} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--interface", default="eth0", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("first", "renew"), default="first", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(generate(args.interface, args.count, args.duration, args.window, args.mode, args.first)),
              flush=True)
        return
    bench(args)


if __name__ == "__main__":
    main()
