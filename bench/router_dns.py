"""Benchmark of the router's DNS for known names: queries per second, ours against dnsmasq.

Run as root from a clone after ``pip install .[test]``::

    python bench/router_dns.py [--rounds 3] [--duration 10] [--names 1000]

Installs Debian's ``dnsmasq`` and ``dnsperf`` with apt-get when missing.  Builds ``--names`` VMs
(``vm0000`` … with addresses in 10.1.0.0/16, domain ``cloud.internal``) and serves them twice on
127.0.0.1, each server pinned to core 1 (``--server-cpu``):

* **ours**: ``routervm.dns.server.DnsServer`` in a child process (``python bench/router_dns.py
  serve``), default reactor, no upstreams, so every query is a known A name answered by the lean
  path;
* **dnsmasq**: ``dnsmasq --no-daemon --port P --listen-address 127.0.0.1 --bind-interfaces
  --no-resolv --no-hosts --addn-hosts FILE --domain cloud.internal --local=/cloud.internal/`` with
  the same names (hosts file lines ``<ip> vmNNNN.cloud.internal vmNNNN``).

Each is loaded in turn by ``dnsperf`` pinned to core 0 (``--client-cpu``) with the query file
``vmNNNN.cloud.internal A`` for ``--duration`` seconds.  Each round measures both back to back, alternating which goes first;
the figures are medians over the rounds, the ratio the median of the per-round ratios.  Target
(DESIGN.md §6): ours at least 0.75x dnsmasq.  Exit status 0 whether or not the target is met;
non-zero only when a tool is missing or fails.  Both servers are stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from routervm.dns.table import DnsTable  # noqa: E402
from routervm.records import Nic, VmRecord  # noqa: E402

DOMAIN = "cloud.internal"
ROUTER_IP = "10.1.0.1"
TARGET = 0.75


def vm_ip(i: int) -> str:
    n = i + 10
    return f"10.1.{n // 250}.{n % 250 + 2}"


def records(count: int) -> list[VmRecord]:
    return [
        VmRecord(
            uuid=f"uuid-{i}",
            instance_name=f"i-2-{i}-VM",
            hostname=f"vm{i:04d}",
            nics=(
                Nic(
                    mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                    ip=vm_ip(i),
                    default=True,
                    interface="eth0",
                ),
            ),
        )
        for i in range(count)
    ]


def serve(port: int, count: int) -> None:
    """The child process: our server on 127.0.0.1:`port` until SIGTERM."""
    from twisted.internet import reactor

    from routervm.dns.server import DnsServer

    srv = DnsServer(DnsTable.build(DOMAIN, ROUTER_IP, records(count)), reactor=reactor)
    srv.listen(port, "127.0.0.1")
    reactor.callWhenRunning(lambda: print("ready", flush=True))
    reactor.run()


def ensure_tools() -> None:
    missing = [
        pkg for pkg, tool in (("dnsmasq", "dnsmasq"), ("dnsperf", "dnsperf")) if not shutil.which(tool)
    ]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL)
    for tool in ("dnsmasq", "dnsperf", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answering(port: int, name: str, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Poll until the server at `port` answers an A query for `name`."""
    query = b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                sys.exit(f"server exited with {proc.returncode}")
            s.sendto(query, ("127.0.0.1", port))
            try:
                data = s.recv(512)
            except TimeoutError:
                continue
            if data[:2] == b"\x00\x07" and data[3] & 0x0F == 0 and data[7] >= 1:
                return
            sys.exit(f"bad answer from port {port}: {data!r}")
    sys.exit(f"server on port {port} does not answer")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def dnsperf(port: int, query_file: str, duration: int, cpu: int) -> float:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            "dnsperf",
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            query_file,
            "-l",
            str(duration),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    noerror = re.search(r"NOERROR (\d+)", out)
    completed = re.search(r"Queries completed:\s+(\d+)", out)
    if not (qps and lost and completed and noerror) or noerror.group(1) != completed.group(1):
        sys.exit(f"unexpected dnsperf output:\n{out}")
    return float(qps.group(1))


def measure(args: argparse.Namespace, query_file: str, hosts: str, first_ours: bool) -> tuple[float, float]:
    pin = ["taskset", "-c", str(args.server_cpu)]

    def ours() -> float:
        port = free_port()
        proc = subprocess.Popen(
            [
                *pin,
                sys.executable,
                os.path.abspath(__file__),
                "serve",
                "--port",
                str(port),
                "--names",
                str(args.names),
            ],
            stdout=subprocess.PIPE,
        )
        try:
            wait_answering(port, f"vm0000.{DOMAIN}", proc)
            return dnsperf(port, query_file, args.duration, args.client_cpu)
        finally:
            stop(proc)

    def reference() -> float:
        port = free_port()
        proc = subprocess.Popen(
            [
                *pin,
                "dnsmasq",
                "--no-daemon",
                "--port",
                str(port),
                "--listen-address",
                "127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--addn-hosts",
                hosts,
                "--domain",
                DOMAIN,
                f"--local=/{DOMAIN}/",
                "--pid-file=",
                "--user=root",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_answering(port, f"vm0000.{DOMAIN}", proc)
            return dnsperf(port, query_file, args.duration, args.client_cpu)
        finally:
            stop(proc)

    # Alternate which server goes first, so slow drifts of the machine's load cancel out.
    if first_ours:
        o = ours()
        return o, reference()
    r = reference()
    return ours(), r


def run(*, rounds: int = 3, duration: int = 10, names: int = 1000, server_cpu: int = 1,
        client_cpu: int = 0) -> dict[str, float]:
    """Measure both servers `rounds` times on the same `names` records; print each round and return
    the medians: ``ours`` and ``reference`` (queries/s) and ``ratio`` (median of per-round ratios)."""
    args = argparse.Namespace(rounds=rounds, duration=duration, names=names, server_cpu=server_cpu,
                              client_cpu=client_cpu)
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="router-dns-bench-") as workdir:
        hosts = os.path.join(workdir, "hosts")
        query_file = os.path.join(workdir, "queries")
        with open(hosts, "w") as f:
            f.write(f"{ROUTER_IP} data-server.{DOMAIN} data-server\n")
            for i in range(names):
                f.write(f"{vm_ip(i)} vm{i:04d}.{DOMAIN} vm{i:04d}\n")
        with open(query_file, "w") as f:
            for i in range(names):
                f.write(f"vm{i:04d}.{DOMAIN} A\n")
        ours, ref, ratios = [], [], []
        for n in range(rounds):
            o, r = measure(args, query_file, hosts, first_ours=n % 2 == 0)
            ours.append(o)
            ref.append(r)
            ratios.append(o / r)
            print(f"round {n + 1}: ours {o:,.0f} q/s, dnsmasq {r:,.0f} q/s, ratio {o / r:.2f}", flush=True)
    return {"ours": statistics.median(ours), "reference": statistics.median(ref),
            "ratio": statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.names)
        return
    result = run(rounds=args.rounds, duration=args.duration, names=args.names, server_cpu=args.server_cpu,
                 client_cpu=args.client_cpu)
    ratio = result["ratio"]
    print(
        f"median: ours {result['ours']:,.0f} q/s, dnsmasq {result['reference']:,.0f} q/s, "
        f"ratio {ratio:.2f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
