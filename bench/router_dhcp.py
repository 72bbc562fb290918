"""Benchmark of the router's DHCP server: DORA exchanges per second, ours against dnsmasq.

Run as root from a clone (needs ``ip netns`` and dnsmasq, Debian package ``dnsmasq-base``)::

    python bench/router_dhcp.py [--sizes 1000 5000] [--rounds 3] [--duration 5] [--window 64]

For each reservation-table size it builds one topology (tests/util/netns.py: a router namespace
and a client namespace joined by a veth pair, a /16 guest subnet), writes the same N static
reservations for both servers, and in each round runs, one after the other:

* ``python -m routervm.dhcp.standalone`` on the router's veth, and
* ``dnsmasq`` with the same hosts as ``dhcp-host`` entries (a ``dhcp-hostsfile``, static range,
  ``dhcp-ignore=tag:!known``, a lease file, DNS off), as the CloudStack router configures it,

each pinned to core 1, against a raw-socket (AF_PACKET) load generator pinned to core 0 in the
client namespace. The generator keeps ``--window`` exchanges in flight: it broadcasts a DISCOVER
(broadcast flag set, so both servers broadcast their replies) from one MAC after another, answers
each OFFER with a REQUEST for the offered address, and counts ACKs for ``--duration`` seconds.
An exchange with no answer within 1 s is abandoned and counted as lost.

It prints each run's rate, the per-round ratio ours/dnsmasq, and the medians; targets (the
issue): ratio at least 2 at 1,000 reservations and at least 5 at 5,000. Exit status 0 whatever the
figures; non-zero only if the setup fails. Everything it starts is stopped by PID and the
namespaces are deleted on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.util.netns import GuestSpec, Topology, repo_env, require_root_and_netns  # noqa: E402

SUBNET = IPv4Network("10.233.0.0/16")
ROUTER = IPv4Address("10.233.0.1")
SERVER_CORE = 1
CLIENT_CORE = 0
ETH_P_IP = 0x0800


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


def generate(interface: str, count: int, duration: float, window: int) -> dict[str, Any]:
    """DORA from `count` MACs (xid = index) for `duration` seconds; return counts and rate."""
    discover = []
    request = []
    params = bytes((55, 4, 1, 3, 6, 15))
    for i in range(count):
        mac = mac_of(i)
        discover.append(_frame(mac, _bootp(mac, i, b"\x35\x01\x01" + params)))
        req_opts = (b"\x35\x01\x03" + b"\x32\x04" + ip_of(i).packed + b"\x36\x04" + ROUTER.packed + params)
        request.append(_frame(mac, _bootp(mac, i, req_opts)))

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    sock.bind((interface, ETH_P_IP))
    sock.setblocking(False)

    state = bytearray(count)  # 0 idle, 1 DISCOVER sent, 2 REQUEST sent
    sent_at = [0.0] * count
    in_flight: set[int] = set()
    next_index = 0
    acks = offers = lost = 0
    buf = bytearray(2048)
    view = memoryview(buf)

    def start_one() -> None:
        nonlocal next_index
        for _ in range(count):
            i = next_index
            next_index = (next_index + 1) % count
            if i not in in_flight:
                state[i] = 1
                sent_at[i] = now
                in_flight.add(i)
                sock.send(discover[i])
                return

    now = time.monotonic()
    begin = now
    end = begin + duration
    last_sweep = now
    for _ in range(min(window, count)):
        start_one()
    while now < end:
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
                    state[xid] = 0
                    in_flight.discard(xid)
                    start_one()
        if now - last_sweep > 0.1:
            last_sweep = now
            for i in [i for i in in_flight if now - sent_at[i] > 1.0]:
                lost += 1
                state[i] = 0
                in_flight.discard(i)
                start_one()
    elapsed = time.monotonic() - begin
    sock.close()
    return {"acks": acks, "offers": offers, "lost": lost, "seconds": elapsed, "rate": acks / elapsed}


# --- servers ------------------------------------------------------------------------------------------


def write_reservations(directory: str, count: int) -> tuple[str, str]:
    ours = os.path.join(directory, "hosts.json")
    with open(ours, "w") as f:
        json.dump([{"mac": fmt_mac(mac_of(i)), "ip": str(ip_of(i)), "hostname": f"vm-{i}"}
                   for i in range(count)], f)
    hostsfile = os.path.join(directory, "dhcphosts.txt")
    with open(hostsfile, "w") as f:
        for i in range(count):
            f.write(f"{fmt_mac(mac_of(i))},{ip_of(i)},vm-{i},infinite\n")
    return ours, hostsfile


def dnsmasq_conf(directory: str, hostsfile: str, interface: str) -> str:
    path = os.path.join(directory, "dnsmasq.conf")
    leases = os.path.join(directory, "dnsmasq.leases")
    open(leases, "w").close()
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
            f"dhcp-leasefile={leases}",
            f"dhcp-option=option:router,{ROUTER}",
            f"dhcp-option=6,{ROUTER},192.0.2.53",
            "dhcp-option=15,cloudnine.internal",
            "domain=cloudnine.internal",
            "quiet-dhcp",
            f"pid-file={os.path.join(directory, 'dnsmasq.pid')}",
            "",
        ]))
    return path


def start_ours(topo: Topology, hosts: str, interface: str) -> subprocess.Popen[Any]:
    argv = [sys.executable, "-m", "routervm.dhcp.standalone", "--quiet", "--interface", interface,
            "--router-ip", str(ROUTER), "--cidr", str(SUBNET), "--reservations", hosts,
            "--domain", "cloudnine.internal", "--dns", "192.0.2.53"]
    proc = topo.spawn_in(topo.router, argv, env=repo_env(), pin_cpu=SERVER_CORE)
    topo.wait_for_line(proc, "READY", timeout=60)
    return proc


def start_dnsmasq(topo: Topology, conf: str) -> subprocess.Popen[Any]:
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    return topo.spawn_in(topo.router, [dnsmasq, "-k", f"--conf-file={conf}"], pin_cpu=SERVER_CORE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_generator(topo: Topology, interface: str, count: int, duration: float, window: int) -> dict[str, Any]:
    argv = ["taskset", "-c", str(CLIENT_CORE), sys.executable, os.path.abspath(__file__), "--generate",
            "--interface", interface, "--count", str(count), "--duration", str(duration),
            "--window", str(window)]
    result = topo.run_in(topo.guest(1).ns, argv, timeout=duration + 120, env=repo_env())
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def measure(topo: Topology, start: Any, count: int, args: argparse.Namespace) -> float:
    proc = start()
    try:
        # Warm-up (and readiness for dnsmasq): short runs until a full exchange succeeds.
        for _ in range(40):
            if run_generator(topo, "eth0", count, 0.5, 4)["acks"] > 0:
                break
        else:
            raise RuntimeError("the server never answered")
        result = run_generator(topo, "eth0", count, args.duration, args.window)
    finally:
        topo.stop(proc)
    print(f"    {result['acks']} ACKs in {result['seconds']:.2f} s = {result['rate']:.0f}/s "
          f"(offers {result['offers']}, lost {result['lost']})", flush=True)
    return float(result["rate"])


def target_for(count: int) -> float:
    """The issue's target ratio for a table of `count` reservations."""
    return 2.0 if count <= 1000 else 5.0


def run(*, sizes: Sequence[int] = (1000, 5000), rounds: int = 3, duration: float = 5.0,
        window: int = 64) -> list[tuple[int, float, float, float, float]]:
    """Measure both servers `rounds` times per table size; print each run and return, per size,
    (reservations, ours DORA/s, dnsmasq DORA/s, ratio, target) with medians over the rounds (the
    ratio is the median of the per-round ratios)."""
    args = argparse.Namespace(sizes=list(sizes), rounds=rounds, duration=duration, window=window)
    require_root_and_netns()
    if shutil.which("dnsmasq") is None:
        raise SystemExit("dnsmasq is missing (Debian package dnsmasq-base)")
    summary = []
    for count in args.sizes:
        directory = tempfile.mkdtemp(prefix="cdt-bench-dhcp-")
        topo = Topology(guest_specs=[GuestSpec()])
        try:
            topo.create()
            topo.address(topo.router, "g1", f"{ROUTER}/{SUBNET.prefixlen}")
            hosts, hostsfile = write_reservations(directory, count)
            conf = dnsmasq_conf(directory, hostsfile, "g1")
            ours_rates, theirs_rates, ratios = [], [], []
            for r in range(1, args.rounds + 1):
                print(f"{count} reservations, round {r}:", flush=True)
                print("  ours:", flush=True)
                ours = measure(topo, partial(start_ours, topo, hosts, "g1"), count, args)
                print("  dnsmasq:", flush=True)
                theirs = measure(topo, partial(start_dnsmasq, topo, conf), count, args)
                ours_rates.append(ours)
                theirs_rates.append(theirs)
                ratios.append(ours / theirs if theirs else float("inf"))
                print(f"  ratio {ratios[-1]:.2f}", flush=True)
        finally:
            topo.destroy()
            shutil.rmtree(directory, ignore_errors=True)
        summary.append((count, statistics.median(ours_rates), statistics.median(theirs_rates),
                        statistics.median(ratios), target_for(count)))
    return summary


def bench(args: argparse.Namespace) -> None:
    summary = run(sizes=args.sizes, rounds=args.rounds, duration=args.duration, window=args.window)
    print()
    print(f"{'reservations':>12} {'ours DORA/s':>12} {'dnsmasq DORA/s':>15} {'ratio':>6} {'target':>7}")
    for count, ours, theirs, ratio, target in summary:
        verdict = "met" if ratio >= target else "NOT met"
        print(f"{count:>12} {ours:>12.0f} {theirs:>15.0f} {ratio:>6.2f} {'>=' + str(target):>7} {verdict}")
    print(f"(medians of {args.rounds} rounds; ratio = median of per-round ratios; server on core "
          f"{SERVER_CORE}, generator on core {CLIENT_CORE}, window {args.window})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--interface", default="eth0", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(generate(args.interface, args.count, args.duration, args.window)), flush=True)
        return
    bench(args)


if __name__ == "__main__":
    main()
