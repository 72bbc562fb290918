"""All of the router appliance's performance targets in one run, each beside its reference.

Run as root from a clone after ``pip install .[test]`` (needs ``ip netns``, dnsmasq, dnsperf,
nginx, wrk and curl; the DNS and metadata benches install theirs with apt-get when missing)::

    python bench/router.py [--quick] [--rounds N] [--skip dns,dhcp,metadata,startup,memory]

It runs, in turn, with the existing benches' functions (so the same records serve both sides of
each comparison, measured back to back in this run):

* DNS (`bench/router_dns.py`): known-name queries/s with 1,000 names, ours against dnsmasq,
  without and with EDNS (dig's OPT record); target ratio >= 0.75 for both;
* DHCP (`bench/router_dhcp.py`): first leases/s and renewals/s at 1,000 and 5,000 reservations,
  with CPU per ACK, ours against dnsmasq; targets >= 2x and >= 5x;
* metadata (`bench/router_metadata.py`): requests/s, CPU per request and p99 against nginx;
  target >= 0.5x (by CPU per request) and p99 <= 5 ms;
* start-up (here): a state with ``--vms`` (10,000) VMs is written into a routervm base directory
  with `routervm.state.StateKeeper`, control-channel files are issued by a test
  `cloudd.pki.CertificateAuthority`, and the real ``twistd -n routervm`` is started; the figure is
  the wall time from starting the process until ``GET /v1/state`` (curl with the client
  certificate) answers 200 with that generation.  Measured twice: with ``--no-data-plane`` on the
  host's loopback, and with the data plane inside a router network namespace where the guest
  address exists (a veth to a guest namespace holding VM 0's MAC and address), where it also
  records when the metadata service first answers VM 0's ``instance-id`` to a curl in the guest
  namespace.  Target < 2 s.  The reference is the in-process load path alone
  (`StateKeeper.load` + the DNS table + the DHCP fast table), broken down in the output;
* memory (`bench/router_memory.py`): idle RSS per VM above the one-VM baseline with ``--vms``
  VMs synced through the control API, beside dnsmasq with as many reservations and twice as many
  names; target < 2,048 bytes per VM.

Every figure is a median over ``--rounds`` rounds (default 5; the benches print the min-max spread
and, beside each rate, the server's CPU time per request and its ratio to the reference's, from
bench/measure.py).  ``--quick`` shortens the runs (2 rounds, DNS 3 s, DHCP 2 s, metadata 3 s,
start-up 3 rounds): a smoke run, not figures.  ``--profile`` also prints cProfile's top of the
in-process load path.  A summary table ends the output.  Exit status 0 whether or not the targets
are met.  Every process started here is stopped by its PID; the namespaces are deleted at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (ROOT, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import router_dhcp  # noqa: E402
import router_dns  # noqa: E402
import router_metadata  # noqa: E402

from bench.measure import MIN_ROUNDS  # noqa: E402
from tests.util.daemon import free_port  # noqa: E402
from tests.util.netns import IP, GuestSpec, Topology, require_root_and_netns  # noqa: E402

STARTUP_TARGET = 2.0
STARTUP_GENERATION = 7
GUEST_IF = "g1"  # the router-side veth of guest 1 (tests/util/netns.py)
STARTUP_NET = "10.40"  # a /16; the router is .0.1
ROUTER_IP = f"{STARTUP_NET}.0.1"
DOMAIN = "cloud.internal"


@dataclass
class Row:
    what: str
    figure: str
    reference: str
    ratio: str
    target: str
    met: bool | None  # None: not measured


# -- start-up ------------------------------------------------------------------------------------


def vm_address(i: int) -> str:
    n = i + 10
    return f"{STARTUP_NET}.{n // 250}.{n % 250 + 2}"


def vm_mac(i: int) -> str:
    return f"02:00:00:28:{i // 256:02x}:{i % 256:02x}"


def vm_uuid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def startup_state(count: int, interface: str) -> Any:
    """A `RouterState` with `count` VMs (typical metadata, an SSH key, a little user data)."""
    from routervm.records import Nic, VmRecord
    from routervm.state import NetworkSettings, RouterState

    vms = tuple(
        VmRecord(uuid=vm_uuid(i), instance_name=f"i-2-{i}-VM", hostname=f"vm{i:05d}",
                 nics=(Nic(mac=vm_mac(i), ip=vm_address(i), default=True, interface=interface),),
                 service_offering="Small Instance", availability_zone="zone1",
                 public_ipv4="203.0.113.10", cloud_identifier="0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff",
                 public_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop",),
                 user_data=b"#cloud-config\n" + b"# padding\n" * 20)
        for i in range(count))
    network = NetworkSettings(interface=interface, cidr=f"{STARTUP_NET}.0.0/16", router_ip=ROUTER_IP,
                              gateway=ROUTER_IP, domain=DOMAIN, dns_servers=("192.0.2.53",))
    return RouterState(generation=STARTUP_GENERATION, network=network, vms=vms)


class Appliance:
    """A routervm base directory holding `state` and TLS files from a test authority."""

    def __init__(self, basedir: str, state: Any) -> None:
        from twisted.internet.task import Clock

        from cloudd.pki import CertificateAuthority
        from routervm.service import STATE_FILE
        from routervm.state import KEY_FILE, StateKeeper, load_or_create_key

        self.basedir = basedir
        now = datetime.datetime.now(datetime.UTC)
        authority = CertificateAuthority.create(now)
        self.tls_dir = os.path.join(basedir, "tls")
        self.client_dir = os.path.join(basedir, "client")
        authority.issue_appliance("routervm", ["127.0.0.1"], now).write(self.tls_dir)
        authority.issue_client("cloudd", now).write(self.client_dir)
        state_dir = os.path.join(basedir, "state")
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        key = load_or_create_key(os.path.join(state_dir, KEY_FILE))
        keeper = StateKeeper(os.path.join(state_dir, STATE_FILE), Clock(), key)
        keeper.replace(state)
        self.state_bytes = os.path.getsize(keeper.path)
        self.log_path = os.path.join(basedir, "routervm.log")
        self.port = free_port()

    def argv(self, data_plane: bool) -> list[str]:
        return [sys.executable, "-c",
                "import sys; from twisted.scripts.twistd import run; sys.argv = ['twistd'] + sys.argv[1:]; run()",
                "-n", "--pidfile=", "--logfile", self.log_path, "routervm", "--basedir", self.basedir,
                "--control-listen", f"tcp:{self.port}:interface=127.0.0.1",
                *([] if data_plane else ["--no-data-plane"])]

    def control_poll(self) -> str:
        """A shell loop: curl ``GET /v1/state`` until it answers 200 with our generation."""
        curl = (f"curl -sS --max-time 5 --cacert {self.tls_dir}/ca.pem --cert {self.client_dir}/cert.pem "
                f"--key {self.client_dir}/key.pem -o /dev/null -D - https://127.0.0.1:{self.port}/v1/state")
        return poll_loop(curl, f"grep -qi 'router-generation: {STARTUP_GENERATION}'")


def poll_loop(command: str, check: str) -> str:
    return (f"while :; do out=$({command} 2>/dev/null); "
            f"if printf '%s' \"$out\" | {check}; then echo READY; exit 0; fi; sleep 0.005; done")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def _stamp_ready(proc: subprocess.Popen[Any], out: dict[str, float], name: str) -> threading.Thread:
    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "READY":
                out[name] = time.monotonic()
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def start_once(app: Appliance, pollers: Sequence[tuple[str, list[str]]], daemon: list[str],
               env: dict[str, str], timeout: float = 60.0) -> dict[str, float]:
    """Start the `pollers` (name, argv), then the daemon; return each poller's seconds from the
    daemon's start until it printed READY."""
    stamps: dict[str, float] = {}
    polls = [subprocess.Popen(["timeout", str(int(timeout) + 10), *argv], stdout=subprocess.PIPE, text=True,
                              start_new_session=True) for _, argv in pollers]
    threads = [_stamp_ready(p, stamps, name) for p, (name, _) in zip(polls, pollers, strict=True)]
    time.sleep(0.5)  # the pollers are polling (and failing) before the daemon starts
    proc: subprocess.Popen[Any] | None = None
    try:
        begin = time.monotonic()
        proc = subprocess.Popen(daemon, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for thread in threads:
            thread.join(max(0.0, begin + timeout - time.monotonic()))
            if proc.poll() is not None:
                raise RuntimeError(f"routervm exited with {proc.returncode}:\n{_tail(app.log_path)}")
        missing = [name for name, _ in pollers if name not in stamps]
        if missing:
            raise RuntimeError(f"no answer for {', '.join(missing)} within {timeout} s:\n{_tail(app.log_path)}")
        return {name: stamps[name] - begin for name, _ in pollers}
    finally:
        if proc is not None:
            _stop(proc)
        for p in polls:
            _stop(p)


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def load_path(count: int, profile: bool) -> dict[str, float]:
    """The in-process load path on a state with `count` VMs: seconds for `StateKeeper.load` (JSON,
    records, `derive`), the DNS table and the DHCP fast table."""
    from twisted.internet.task import Clock

    from routervm.dataplane import _dns_table
    from routervm.dhcp.logic import DhcpLogic
    from routervm.state import StateKeeper

    with tempfile.TemporaryDirectory(prefix="bench-router-load-") as workdir:
        clock = Clock()
        key = b"k" * 32
        path = os.path.join(workdir, "state.json")
        StateKeeper(path, clock, key).replace(startup_state(count, GUEST_IF))
        keeper = StateKeeper(path, clock, key)
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        snapshot = keeper.load()
        t1 = time.perf_counter()
        assert snapshot is not None
        _dns_table(snapshot)
        t2 = time.perf_counter()
        DhcpLogic(snapshot.reservations, snapshot.dhcp, clock)  # builds the DHCP fast table
        t3 = time.perf_counter()
        if profiler is not None:
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(20)
            print(text.getvalue(), flush=True)
    return {"load": t1 - t0, "dns": t2 - t1, "dhcp": t3 - t2, "total": t3 - t0}


def run_startup(count: int, rounds: int, netns: bool, profile: bool) -> dict[str, float]:
    """Median seconds from process start to answers; keys ``control`` (no data plane, loopback),
    ``control_dp`` and ``metadata_dp`` (data plane in a namespace), ``inprocess``."""
    result: dict[str, float] = {}
    breakdowns = [load_path(count, profile and n == 0) for n in range(rounds)]
    for part in ("load", "dns", "dhcp", "total"):
        result[f"inprocess_{part}"] = statistics.median(b[part] for b in breakdowns)
    print(f"  in-process load path, {count} VMs: StateKeeper.load {result['inprocess_load']:.3f} s, "
          f"DNS table {result['inprocess_dns']:.3f} s, DHCP fast table {result['inprocess_dhcp']:.3f} s",
          flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    workdir = tempfile.mkdtemp(prefix="bench-router-startup-")
    try:
        app = Appliance(os.path.join(workdir, "plain"), startup_state(count, "eth0"))
        print(f"  state file: {app.state_bytes / 1e6:.1f} MB", flush=True)
        times = []
        for n in range(rounds):
            got = start_once(app, [("control", ["sh", "-c", app.control_poll()])], app.argv(False), env)
            times.append(got["control"])
            print(f"  round {n + 1}: --no-data-plane: GET /v1/state answers after {got['control']:.3f} s",
                  flush=True)
        result["control"] = statistics.median(times)
        if netns:
            result.update(_startup_in_namespace(workdir, count, rounds, env))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _startup_in_namespace(workdir: str, count: int, rounds: int, env: dict[str, str]) -> dict[str, float]:
    require_root_and_netns()
    topo = Topology(guest_specs=[GuestSpec(mac=vm_mac(0), address=f"{vm_address(0)}/16")])
    try:
        topo.create()
        topo.address(topo.router, GUEST_IF, f"{ROUTER_IP}/16")
        app = Appliance(os.path.join(workdir, "netns"), startup_state(count, GUEST_IF))
        guest = topo.guest(1).ns
        metadata = poll_loop(f"curl -sS --max-time 5 http://{ROUTER_IP}/latest/meta-data/instance-id",
                             f"grep -qx '{vm_uuid(0)}'")
        control, served = [], []
        for n in range(rounds):
            got = start_once(app, [("control", [IP, "netns", "exec", topo.router, "sh", "-c", app.control_poll()]),
                                   ("metadata", [IP, "netns", "exec", guest, "sh", "-c", metadata])],
                             [IP, "netns", "exec", topo.router, *app.argv(True)], env)
            control.append(got["control"])
            served.append(got["metadata"])
            print(f"  round {n + 1}: data plane in a namespace: GET /v1/state after {got['control']:.3f} s, "
                  f"metadata instance-id after {got['metadata']:.3f} s", flush=True)
        return {"control_dp": statistics.median(control), "metadata_dp": statistics.median(served)}
    finally:
        topo.destroy()


# -- the whole run --------------------------------------------------------------------------------


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def _guarded(rows: list[Row], fallback: list[Row], job: Callable[[], list[Row]]) -> None:
    """Run one section; a failure is printed and its rows show as not measured."""
    try:
        rows.extend(job())
    except (Exception, SystemExit) as exc:
        print(f"  FAILED: {exc!r}", flush=True)
        rows.extend(fallback)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (2 rounds, a few seconds each)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"rounds per comparison (default {MIN_ROUNDS}, quick 2: a smoke run)")
    parser.add_argument("--vms", type=int, default=10000, help="VM records for the start-up figure")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out: dns,dhcp,metadata,startup,memory")
    parser.add_argument("--no-netns", action="store_true", help="start-up: only the --no-data-plane measurement")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top of the in-process load path")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else MIN_ROUNDS)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    rows: list[Row] = []

    if "dns" not in skip:
        _section("DNS: known names, 1,000 names, dnsperf, without and with EDNS")

        def dns() -> list[Row]:
            r = router_dns.run(rounds=rounds, duration=3 if args.quick else 10, names=1000)
            return [Row("DNS q/s, 1,000 names", f"{r['plain_ours']:,.0f}", f"dnsmasq {r['plain_reference']:,.0f}",
                        f"{r['plain_ratio']:.2f}x", f">= {router_dns.TARGET}x", r["plain_ratio"] >= router_dns.TARGET),
                    Row("DNS q/s, EDNS", f"{r['edns_ours']:,.0f}", f"dnsmasq {r['edns_reference']:,.0f}",
                        f"{r['edns_ratio']:.2f}x", f">= {router_dns.TARGET}x", r["edns_ratio"] >= router_dns.TARGET)]

        _guarded(rows, [Row("DNS q/s, 1,000 names", "-", "-", "-", ">= 0.75x", None),
                        Row("DNS q/s, EDNS", "-", "-", "-", ">= 0.75x", None)], dns)

    if "dhcp" not in skip:
        _section("DHCP: first leases and renewals at 1,000 and 5,000 reservations")

        def dhcp() -> list[Row]:
            phases = router_dhcp.run(sizes=(1000, 5000), rounds=rounds, duration=2.0 if args.quick else 5.0)
            return [Row(f"DHCP {p.name}/s, {p.count:,} res.",
                        f"{p.ours.rate.median:,.0f} ({p.ours.cpu_us.median:.0f} us)",
                        f"dnsmasq {p.theirs.rate.median:,.0f} ({p.theirs.cpu_us.median:.0f} us)",
                        f"{p.ratio:.2f}x (cpu {p.cpu_ratio:.2f}x)", f">= {p.target:g}x", p.ratio >= p.target)
                    for p in phases]

        _guarded(rows, [Row(f"DHCP {name}/s, {c:,} res.", "-", "-", "-", f">= {router_dhcp.target_for(c):g}x", None)
                        for c in (1000, 5000) for name in ("first leases", "renewals")], dhcp)

    if "metadata" not in skip:
        _section("metadata: wrk, 32 connections")

        def metadata() -> list[Row]:
            r = router_metadata.run(rounds=rounds, duration=3 if args.quick else 10)
            print("  " + r["ours"].report(reference=r["nginx"], width=10))
            print("  " + r["nginx"].report(width=10))
            return [Row("metadata req/s", f"{r['ours_rate']:,.0f}", f"nginx {r['nginx_rate']:,.0f}",
                        f"{r['ratio']:.2f}x", ">= 0.5x", r["ratio"] >= 0.5),
                    Row("metadata CPU/req", f"{r['ours_cpu_us']:.1f} us", f"nginx {r['nginx_cpu_us']:.1f} us",
                        f"{r['cpu_ratio']:.2f}x", ">= 0.5x", r["cpu_ratio"] >= 0.5),
                    Row("metadata p99", f"{r['ours_p99']:.2f} ms", f"nginx {r['nginx_p99']:.2f} ms", "-",
                        "<= 5 ms", r["ours_p99"] <= 5.0)]

        _guarded(rows, [Row("metadata req/s", "-", "-", "-", ">= 0.5x", None),
                        Row("metadata CPU/req", "-", "-", "-", ">= 0.5x", None),
                        Row("metadata p99", "-", "-", "-", "<= 5 ms", None)], metadata)

    if "startup" not in skip:
        _section(f"start-up: twistd -n routervm with {args.vms:,} VMs")
        startup_rounds = 3 if args.quick else max(rounds, 5)

        def startup() -> list[Row]:
            r = run_startup(args.vms, startup_rounds, not args.no_netns, args.profile)
            ref = f"load path {r['inprocess_total']:.2f} s"
            out = [Row("start -> GET /v1/state, no DP", f"{r['control']:.2f} s", ref, "-",
                       f"< {STARTUP_TARGET:g} s", r["control"] < STARTUP_TARGET)]
            if "control_dp" in r:
                out.append(Row("start -> GET /v1/state, DP", f"{r['control_dp']:.2f} s", ref, "-",
                               f"< {STARTUP_TARGET:g} s", r["control_dp"] < STARTUP_TARGET))
                out.append(Row("start -> metadata answers, DP", f"{r['metadata_dp']:.2f} s", ref, "-",
                               f"< {STARTUP_TARGET:g} s", r["metadata_dp"] < STARTUP_TARGET))
            return out

        _guarded(rows, [Row("start -> GET /v1/state", "-", "-", "-", f"< {STARTUP_TARGET:g} s", None)], startup)

    if "memory" not in skip:
        _section(f"memory: idle routervm with {args.vms:,} VMs beside dnsmasq")

        def memory() -> list[Row]:
            import router_memory  # here: it imports this module's start-up records

            r = router_memory.run(vms=args.vms, rounds=3 if args.quick else max(rounds, 5), netns=not args.no_netns)
            ours, theirs = r["routervm after sync"][0].median, r["dnsmasq"][0].median
            target = router_memory.TARGET_PER_VM
            return [Row("idle RSS per VM", f"{ours:,.0f} B", f"dnsmasq {theirs:,.0f} B", "-", f"< {target:,} B",
                        ours < target)]

        _guarded(rows, [Row("idle RSS per VM", "-", "-", "-", "< 2,048 B", None)], memory)

    _section("summary")
    header = ("figure", "ours", "reference", "ratio", "target", "")
    table = [header] + [(r.what, r.figure, r.reference, r.ratio, r.target,
                         "not measured" if r.met is None else "met" if r.met else "NOT met") for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(f"(medians of {rounds} rounds per comparison; ratio = median of the per-round ratios; "
          f"{'quick' if args.quick else 'full'} mode)")


if __name__ == "__main__":
    main()
