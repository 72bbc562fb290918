"""Benchmark of the router's DNS for known names: queries per second and server CPU per query,
ours against dnsmasq, without and with EDNS.

Run as root from a clone after ``pip install .[test]``::

    python bench/router_dns.py [--rounds 5] [--duration 10] [--names 1000] [--modes plain,edns]

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
``vmNNNN.cloud.internal A`` for ``--duration`` seconds, in two modes: ``plain`` (no EDNS) and
``edns`` (an OPT record with a client cookie option, as dig and systemd-resolved send).  Each
round measures both servers back to back in each mode, alternating which goes first.  Reported
(`bench/measure.py`): queries/s and the server's CPU per query (``/proc/<pid>/stat``), medians with
their min-max spread, the ratios to dnsmasq (per-round medians), and whether dnsperf itself capped
the rate.  Target (DESIGN.md §6, issue 9 item 16): ours at least 0.75x dnsmasq with EDNS.  Exit
status 0 whether or not the target is met; non-zero only when a tool is missing or fails.  Both
servers are stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.measure import MIN_ROUNDS, Sample, Series, ServerCpu, rounds_note, run_load  # noqa: E402
from routervm.dns.table import DnsTable  # noqa: E402
from routervm.records import Nic, VmRecord  # noqa: E402

DOMAIN = "cloud.internal"
ROUTER_IP = "10.1.0.1"
TARGET = 0.75
#: dnsperf's arguments per mode: ``edns`` sends an OPT record with a client cookie, as dig does.
MODES = {"plain": [], "edns": ["-e", "-E", "10:0102030405060708"]}


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


def dnsperf(port: int, query_file: str, duration: int, cpu: int, mode: str, server_pid: int) -> Sample:
    """One dnsperf run against the server at `port` (process `server_pid`)."""
    argv = ["taskset", "-c", str(cpu), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", query_file,
            "-l", str(duration), *MODES[mode]]
    with ServerCpu(server_pid) as server_cpu:
        result = run_load(argv, timeout=duration + 30)
    out = result.stdout
    if result.returncode != 0:
        sys.exit(f"dnsperf failed ({result.returncode}):\n{out}\n{result.stderr}")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    noerror = re.search(r"NOERROR (\d+)", out)
    completed = re.search(r"Queries completed:\s+(\d+)", out)
    run_time = re.search(r"Run time \(s\):\s+([\d.]+)", out)
    if not (lost and completed and noerror and run_time) or noerror.group(1) != completed.group(1):
        sys.exit(f"unexpected dnsperf output:\n{out}")
    return Sample(requests=int(completed.group(1)), seconds=float(run_time.group(1)),
                  server_cpu=server_cpu.seconds, load_cpu=result.cpu)


def measure(args: argparse.Namespace, query_file: str, hosts: str, mode: str,
            first_ours: bool) -> tuple[Sample, Sample]:
    """One round in `mode`: (ours, dnsmasq)."""
    pin = ["taskset", "-c", str(args.server_cpu)]

    def load(argv: list[str], quiet: bool) -> Sample:
        port = free_port()
        argv = [arg.replace("{port}", str(port)) for arg in argv]
        out = subprocess.DEVNULL if quiet else subprocess.PIPE
        proc = subprocess.Popen([*pin, *argv], stdout=out, stderr=subprocess.DEVNULL if quiet else None)
        try:
            wait_answering(port, f"vm0000.{DOMAIN}", proc)
            return dnsperf(port, query_file, args.duration, args.client_cpu, mode, proc.pid)
        finally:
            stop(proc)

    def ours() -> Sample:
        return load([sys.executable, os.path.abspath(__file__), "serve", "--port", "{port}", "--names",
                     str(args.names)], quiet=False)

    def reference() -> Sample:
        return load(["dnsmasq", "--no-daemon", "--port", "{port}", "--listen-address", "127.0.0.1",
                     "--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts", hosts, "--domain", DOMAIN,
                     f"--local=/{DOMAIN}/", "--pid-file=", "--user=root"], quiet=True)

    # Alternate which server goes first, so slow drifts of the machine's load cancel out.
    if first_ours:
        o = ours()
        return o, reference()
    r = reference()
    return ours(), r


def run(*, rounds: int = MIN_ROUNDS, duration: int = 10, names: int = 1000, server_cpu: int = 1,
        client_cpu: int = 0, modes: tuple[str, ...] = ("plain", "edns")) -> dict[str, float]:
    """Measure both servers `rounds` times in each of `modes` on the same `names` records; print
    each round and the summary, and return the medians: for the first mode ``ours`` and
    ``reference`` (queries/s) and ``ratio`` (median of the per-round rate ratios), and for every
    mode ``<mode>_ours``, ``<mode>_reference``, ``<mode>_ratio`` and ``<mode>_cpu_ratio``
    (dnsmasq's CPU per query over ours: higher is better)."""
    args = argparse.Namespace(rounds=rounds, duration=duration, names=names, server_cpu=server_cpu,
                              client_cpu=client_cpu)
    ensure_tools()
    series = {mode: (Series(f"ours, {mode}"), Series(f"dnsmasq, {mode}")) for mode in modes}
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
        for n in range(rounds):
            for mode in modes:
                ours, theirs = series[mode]
                o, r = measure(args, query_file, hosts, mode, first_ours=n % 2 == 0)
                ours.add(o)
                theirs.add(r)
                print(f"round {n + 1} {mode:<5}: ours {o.rate:,.0f} q/s {o.cpu_us:.1f} us/q, dnsmasq "
                      f"{r.rate:,.0f} q/s {r.cpu_us:.1f} us/q, ratio {o.rate / r.rate:.2f}", flush=True)
    result: dict[str, float] = {}
    for mode in modes:
        ours, theirs = series[mode]
        print(ours.report(reference=theirs, unit="q/s", per="q"))
        print(theirs.report(unit="q/s", per="q"))
        result[f"{mode}_ours"] = ours.rate.median
        result[f"{mode}_reference"] = theirs.rate.median
        result[f"{mode}_ratio"] = ours.rate_ratio(theirs).median
        result[f"{mode}_cpu_ratio"] = ours.cpu_ratio(theirs).median
    note = rounds_note(rounds)
    if note:
        print(note)
    first = modes[0]
    result.update(ours=result[f"{first}_ours"], reference=result[f"{first}_reference"],
                  ratio=result[f"{first}_ratio"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve"))
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--modes", default="plain,edns", help="comma-separated: plain (no EDNS), edns")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.names)
        return
    modes = tuple(m for m in args.modes.split(",") if m)
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    result = run(rounds=args.rounds, duration=args.duration, names=args.names, server_cpu=args.server_cpu,
                 client_cpu=args.client_cpu, modes=modes)
    for mode in modes:
        ratio = result[f"{mode}_ratio"]
        target = f" (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})" if mode == "edns" else ""
        print(f"median {mode}: ours {result[f'{mode}_ours']:,.0f} q/s, dnsmasq {result[f'{mode}_reference']:,.0f} "
              f"q/s, rate ratio {ratio:.2f}, cpu ratio {result[f'{mode}_cpu_ratio']:.2f}{target}")


if __name__ == "__main__":
    main()
