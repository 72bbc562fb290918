"""Benchmark of the router's metadata service: our lean HTTP/1.1 responder against nginx.

Run as root from a clone after ``pip install .[test]``::

    python bench/router_metadata.py [--rounds 5] [--duration 10] [--connections 32]

Installs ``nginx-light`` and ``wrk`` with apt-get when they are missing.  One VM's metadata (the
router.md §7.3 example VM: 11 keys, two SSH keys, 2 KiB of user data) is served

* by **nginx**: the files written from `MetadataView` (the manifest as the directory's index),
  ``default_type text/plain``, one process (``master_process off``), ``open_file_cache`` on,
  keep-alive without a request limit, access log off;
* by **routervm**: `MetadataFactory` on the epoll reactor, in a child process started from this
  file (``--serve``), with the daemon's own `ProcArpNeighbours` (its default ``max_age`` and
  ``miss_interval``) reading a copy of an ARP table of a full /24 guest network (254 complete
  entries) plus 127.0.0.1 on ``lo`` mapped to the VM's MAC, so every request goes through the
  full owner lookup and the table is re-read and parsed once a second, as in the router.

Both listen on 127.0.0.1 pinned to core 1 (``taskset``); ``wrk -t1 -c32 -d10s --latency`` pinned
to core 0 requests a rotating set of metadata paths (cloud-init's sequence, a Lua script written
by the bench).  Before timing, every path is fetched from both servers and the bodies compared.
Each round measures both, each on a freshly started server, nginx first in odd rounds and ours
first in even ones (so a drift in the machine's load favours neither); the figures are medians
over the rounds (at least five) with their min-max spread, and the ratios the medians of the
per-round ratios.  Beside requests/s it prints each server's CPU time per request (from
``/proc/<pid>/stat`` before and after the round, bench/measure.py) and the ratio nginx's / ours,
and says when wrk itself used nearly a full core (the rate is then wrk's, not the server's).
Target (DESIGN.md §6 and the issue): ours ≥ 0.5× nginx by CPU per request (and by requests/s),
our p99 ≤ 5 ms.  Exit status 0 whether or not the target is met;
non-zero when a tool is missing or fails.  Servers are stopped by their PIDs.
"""

from __future__ import annotations

import argparse
import json
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
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.measure import MIN_ROUNDS, Sample, Series, ServerCpu, rounds_note, run_load  # noqa: E402
from routervm.metadata.content import MetadataView  # noqa: E402
from routervm.records import Nic, VmRecord  # noqa: E402

MAC = "02:00:4c:5e:00:02"
INTERFACE = "lo"
ADDRESS = "127.0.0.1"
KEYS = (
    "service-offering",
    "availability-zone",
    "local-ipv4",
    "local-hostname",
    "public-ipv4",
    "public-hostname",
    "instance-id",
    "vm-id",
    "public-keys",
    "cloud-identifier",
    "hypervisor-host-name",
)
PATHS = (
    "/latest/meta-data/instance-id",
    "/latest/user-data",
    "/latest/meta-data/",
    *(f"/latest/meta-data/{key}" for key in KEYS),
    "/latest/public-keys",
)
SERVER_CORE = "1"
CLIENT_CORE = "0"


def bench_record() -> VmRecord:
    return VmRecord(
        uuid="9f1c2b7e-1111-4222-8333-444455556666",
        instance_name="i-2-5-VM",
        hostname="web1",
        nics=(Nic(mac=MAC, ip=ADDRESS, default=True, interface=INTERFACE),),
        service_offering="Small Instance",
        availability_zone="zone1",
        public_ipv4="203.0.113.10",
        public_hostname="203.0.113.10",
        cloud_identifier="0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff",
        hypervisor_host_name="kvm-host-07",
        user_data=b"#cloud-config\n" + b"# padding line for a typical user-data size\n" * 46,
        public_keys=(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob@desk",
        ),
    )


# -- the lean server child ---------------------------------------------------------------------


def arp_table() -> str:
    """The text of ``/proc/net/arp`` on a router with a full /24 guest network on ``eth1``, plus the
    bench's VM on ``lo``."""
    lines = ["IP address       HW type     Flags       HW address            Mask     Device"]
    row = "{ip:<16} 0x1         0x2         {mac}     *        {device}"
    for i in range(1, 255):
        lines.append(row.format(ip=f"10.1.1.{i}", mac=f"02:00:0a:01:01:{i:02x}", device="eth1"))
    lines.append(row.format(ip=ADDRESS, mac=MAC, device=INTERFACE))
    return "\n".join(lines) + "\n"


def serve(port: int, ready_file: str) -> None:
    """Child process: our metadata listener on ADDRESS:port until SIGTERM."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from routervm.metadata.server import MetadataFactory, MetadataService
    from routervm.neighbours import ProcArpNeighbours
    from routervm.records import RecordIndex

    arp = os.path.join(os.path.dirname(os.path.abspath(ready_file)), "arp")
    with open(arp, "w") as stream:
        stream.write(arp_table())
    neighbours = ProcArpNeighbours(arp, clock=reactor)
    service = MetadataService(RecordIndex([bench_record()]), neighbours)
    listening = reactor.listenTCP(
        port, MetadataFactory(service, INTERFACE, reactor), backlog=1024, interface=ADDRESS
    )
    with open(ready_file, "w") as stream:
        stream.write(str(listening.getHost().port))  # type: ignore[attr-defined]
    reactor.run()


# -- helpers --------------------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk")) if not find(tool)]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}; run as root to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)
    for tool in ("nginx", "wrk", "taskset"):
        if not find(tool):
            sys.exit(f"{tool} is still missing")


def find(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((ADDRESS, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {ADDRESS}:{port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one server by its PID."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def fetch(port: int, path: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{ADDRESS}:{port}{path}", timeout=5) as response:
        return response.status, response.read()


def write_nginx(workdir: str, view: MetadataView) -> str:
    docroot = os.path.join(workdir, "www")
    for path in PATHS:
        body = view.lookup(path)
        assert body is not None, path
        target = os.path.join(docroot, path.lstrip("/"))
        if path.endswith("/"):
            target = os.path.join(target, "index.txt")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as stream:
            stream.write(body)
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as stream:
        stream.write(
            f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; use epoll; }}
http {{
    types {{ }}
    default_type text/plain;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen {ADDRESS}:PORT;
        root {docroot};
        index index.txt;
    }}
}}
"""
        )
    return conf


def start_nginx(conf: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with open(conf) as stream:
        text = re.sub(r"listen [0-9.]+:\S+;", f"listen {ADDRESS}:{port};", stream.read())
    with open(conf, "w") as stream:
        stream.write(text.replace("PORT", str(port)))
    nginx = find("nginx")
    assert nginx is not None
    proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, nginx, "-c", conf, "-e", "stderr"])
    wait_listening(port, proc)
    return proc, port


def start_lean(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    ready = os.path.join(workdir, "lean.port")
    if os.path.exists(ready):
        os.unlink(ready)
    port = free_port()
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CORE,
            sys.executable,
            os.path.abspath(__file__),
            "--serve",
            str(port),
            ready,
        ],
        cwd=ROOT,
    )
    wait_listening(port, proc)
    return proc, port


def lua_script(workdir: str) -> str:
    path = os.path.join(workdir, "rotate.lua")
    with open(path, "w") as stream:
        stream.write("local paths = {" + ", ".join(json.dumps(p) for p in PATHS) + "}\n")
        stream.write(
            "local i = 0\n"
            "request = function()\n"
            "  i = i + 1\n"
            '  return wrk.format("GET", paths[(i % #paths) + 1])\n'
            "end\n"
        )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, script: str, args: argparse.Namespace, server_pid: int) -> tuple[Sample, float]:
    """One wrk run: the round's `Sample` (the server's CPU and wrk's own) and the p99 latency in ms."""
    wrk = find("wrk")
    assert wrk is not None
    with ServerCpu(server_pid, tree=True) as server:
        out = run_load(
            [
                "taskset",
                "-c",
                CLIENT_CORE,
                wrk,
                "-t1",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--latency",
                "-s",
                script,
                f"http://{ADDRESS}:{port}/",
            ],
            timeout=args.duration + 60,
        )
    if out.returncode != 0:
        sys.exit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    if "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        sys.exit(f"wrk saw errors:\n{out.stdout}")
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out.stdout).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s)\s*$", out.stdout, re.M)
    assert p99 is not None, out.stdout
    sample = Sample(requests, requests / rate, server.seconds, out.cpu)
    return sample, float(p99.group(1)) * _UNITS[p99.group(2)]


def check_same(nginx_port: int, lean_port: int, view: MetadataView) -> None:
    for path in PATHS:
        ours, theirs = fetch(lean_port, path), fetch(nginx_port, path)
        if ours != theirs or ours != (200, view.lookup(path)):
            sys.exit(f"answers differ for {path}: ours {ours!r}, nginx {theirs!r}")


def run(*, rounds: int = MIN_ROUNDS, duration: int = 10, connections: int = 32) -> dict[str, Any]:
    """Measure nginx and ours `rounds` times, alternating which goes first; print each round and
    return the medians: ``nginx_rate``, ``nginx_p99``, ``ours_rate``, ``ours_p99`` (req/s, ms),
    ``ratio`` (median of the per-round rate ratios), ``nginx_cpu_us``, ``ours_cpu_us`` (server CPU
    per request) and ``cpu_ratio`` (median of the per-round nginx / ours CPU per request), and the
    two `Series` (``nginx``, ``ours``) for the full report."""
    args = argparse.Namespace(rounds=rounds, duration=duration, connections=connections)
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two cores (server on core 1, wrk on core 0)")
    ensure_tools()
    note = rounds_note(rounds)
    if note:
        print(note, flush=True)
    view = MetadataView(bench_record())
    series = {"nginx": Series("nginx"), "ours": Series("routervm")}
    p99s: dict[str, list[float]] = {"nginx": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="bench-metadata-") as workdir:
        conf = write_nginx(workdir, view)
        script = lua_script(workdir)
        for number in range(1, rounds + 1):
            nginx, nginx_port = start_nginx(conf)
            try:
                lean, lean_port = start_lean(workdir)
                try:
                    check_same(nginx_port, lean_port, view)
                finally:
                    stop(lean)
            finally:
                stop(nginx)
            for name in ("nginx", "ours") if number % 2 else ("ours", "nginx"):
                server, port = start_nginx(conf) if name == "nginx" else start_lean(workdir)
                try:
                    sample, p99 = run_wrk(port, script, args, server.pid)
                finally:
                    stop(server)
                series[name].add(sample)
                p99s[name].append(p99)
            theirs, ours = series["nginx"].samples[-1], series["ours"].samples[-1]
            print(
                f"round {number}: nginx {theirs.rate:9.0f} req/s p99 {p99s['nginx'][-1]:6.2f} ms "
                f"cpu {theirs.cpu_us:5.1f} us/req | routervm {ours.rate:9.0f} req/s p99 {p99s['ours'][-1]:6.2f} ms "
                f"cpu {ours.cpu_us:5.1f} us/req | ratio {ours.rate / theirs.rate:.2f} "
                f"(cpu {theirs.cpu_us / ours.cpu_us:.2f})",
                flush=True,
            )
    nginx_s, ours_s = series["nginx"], series["ours"]
    return {
        "nginx_rate": nginx_s.rate.median,
        "nginx_p99": statistics.median(p99s["nginx"]),
        "ours_rate": ours_s.rate.median,
        "ours_p99": statistics.median(p99s["ours"]),
        "ratio": ours_s.rate_ratio(nginx_s).median,
        "nginx_cpu_us": nginx_s.cpu_us.median,
        "ours_cpu_us": ours_s.cpu_us.median,
        "cpu_ratio": ours_s.cpu_ratio(nginx_s).median,
        "nginx": nginx_s,
        "ours": ours_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "READY_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    result = run(rounds=args.rounds, duration=args.duration, connections=args.connections)
    print(
        f"median (min-max) over {args.rounds} rounds (wrk -t1 -c{args.connections} -d{args.duration}s, "
        f"{len(PATHS)} paths); ratios are routervm / nginx per round, by rate and by CPU per request:"
    )
    print("  " + result["ours"].report(reference=result["nginx"], width=10))
    print("  " + result["nginx"].report(width=10))
    print(f"  p99: routervm {result['ours_p99']:.2f} ms, nginx {result['nginx_p99']:.2f} ms")
    ratio = result["cpu_ratio"]
    verdict = "met" if ratio >= 0.5 and result["ours_p99"] <= 5.0 else "NOT met"
    print(
        f"  target >= 0.50x nginx by CPU per request and p99 <= 5 ms: {verdict} "
        f"({ratio:.2f}x by CPU, {result['ratio']:.2f}x by rate)"
    )

if __name__ == "__main__":
    main()
