"""Benchmark of the router's idle memory with many VM records, ours against dnsmasq.

Run as root from a clone (needs ``ip netns``, curl and dnsmasq, Debian package ``dnsmasq-base``)::

    python bench/router_memory.py [--vms 10000] [--rounds 5] [--breakdown]

Each round, in a router network namespace joined to one guest namespace by a veth pair (the
router's side holds the guest network's router address, so the data plane binds as in
production):

* the real ``twistd -n routervm`` (data plane on, ``--no-data-plane`` with ``--no-netns``) starts
  from a state of 1 VM; once idle its memory is read (the one-VM baseline).  Then cloudd's full
  sync is replayed: ``PUT /v1/state`` through the control API (curl, mutual TLS) with ``--vms``
  VMs (`bench/router.py`'s start-up records: typical metadata, an SSH key, a little user data),
  and its memory is read again once idle ("after sync");
* the same daemon is restarted on that base directory, so it loads the ``--vms`` VMs from its
  state file, and is read once idle ("after restart");
* dnsmasq, configured as the CloudStack router configures it, with a ``dhcp-hostsfile`` of 1 and
  then ``--vms`` reservations and an ``addn-hosts`` file of 2 and then ``2 * --vms`` names
  (``vmNNNNN`` and ``vmNNNNN.<domain>`` per VM), DNS on, is read once idle.

Memory is read from ``/proc/<pid>/status`` (VmRSS) and ``/proc/<pid>/smaps_rollup`` (USS =
Private_Clean + Private_Dirty, and Anonymous); "idle" means two readings 0.5 s apart within 1 %.
Per VM is ``(with N VMs - with 1 VM) / (N - 1)``.  Each figure is printed per round, then as a
median with its spread (min-max) over the rounds; the target (the issue) is routervm's RSS per VM
after sync under 2 KiB.  ``--breakdown`` also prints, from tracemalloc, where the in-process
load path (state file decoded VM by VM, DNS tables, DHCP tables) allocates, and what the
metadata service adds once every VM has fetched its metadata (a cached view per VM; no guest
asks in the daemon runs).

Exit status 0 whatever the figures; non-zero only if the setup fails.  Every process started
here is stopped by its PID and the namespaces are deleted on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (ROOT, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from router import DOMAIN, GUEST_IF, ROUTER_IP, STARTUP_NET, startup_state, vm_address, vm_mac  # noqa: E402

from bench.measure import MIN_ROUNDS, Spread, rounds_note  # noqa: E402
from tests.util.appliance import RouterAppliance  # noqa: E402
from tests.util.daemon import twistd_argv, twistd_env  # noqa: E402
from tests.util.netns import GuestSpec, Topology, require_root_and_netns  # noqa: E402

#: The issue's target: routervm's RSS per VM above its one-VM baseline, bytes.
TARGET_PER_VM = 2048
BASE_GENERATION = 7
SYNC_GENERATION = 8
DNSMASQ_DNS_PORT = 5353  # routervm is stopped while dnsmasq runs, but keep clear of it anyway


@dataclass(frozen=True)
class Memory:
    """One reading of one process, in bytes."""

    rss: int
    uss: int
    anon: int

    def minus(self, other: Memory, count: int) -> Memory:
        """Bytes per unit of `count` above `other`."""
        return Memory(*((a - b) // count for a, b in zip(self.fields(), other.fields(), strict=True)))

    def fields(self) -> tuple[int, int, int]:
        return self.rss, self.uss, self.anon


def read_memory(pid: int) -> Memory:
    """VmRSS from ``/proc/<pid>/status``; USS and anonymous memory from ``smaps_rollup``."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                values[parts[0][:-1]] = int(parts[1]) * 1024
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                values["VmRSS"] = int(line.split()[1]) * 1024
    return Memory(rss=values["VmRSS"], uss=values["Private_Clean"] + values["Private_Dirty"],
                  anon=values["Anonymous"])


def idle_memory(pid: int, timeout: float = 30.0) -> Memory:
    """The process's memory once two readings 0.5 s apart agree within 1 % (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    last = read_memory(pid)
    while True:
        time.sleep(0.5)  # a real process settling
        now = read_memory(pid)
        if abs(now.rss - last.rss) <= last.rss // 100 or time.monotonic() > deadline:
            return now
        last = now


# --- routervm -------------------------------------------------------------------------------------


class Router:
    """The real daemon in the topology's router namespace (or on the host's loopback)."""

    def __init__(self, topo: Topology | None, basedir: str) -> None:
        self.topo = topo
        # Default settings: a full state of 10,000 VMs (about 9 MB here) is within the state's own
        # body limit (`Config.control_max_state_body`), as cloudd's sync of such a network is.
        self.app = RouterAppliance(basedir, data_plane=topo is not None)
        self.proc: subprocess.Popen[Any] | None = None

    def _in_ns(self, argv: Sequence[str]) -> list[str]:
        if self.topo is None:
            return list(argv)
        return ["ip", "netns", "exec", self.topo.router, *argv]

    def start(self) -> int:
        argv = self._in_ns(twistd_argv("-n", "--pidfile=", "--logfile", self.app.log_path, "routervm",
                                       *self.app.plugin_args()))
        self.proc = subprocess.Popen(argv, env=twistd_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"routervm exited with {self.proc.returncode}:\n{self.app.log()}")
            if self.control("GET", "/health")[0] == 200:
                return self.proc.pid  # `ip netns exec` execs: the daemon's own PID
            time.sleep(0.2)  # polling a real process
        raise RuntimeError(f"routervm did not answer:\n{self.app.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            Topology.stop(self.proc, timeout=20)
            self.proc = None

    def control(self, method: str, path: str, body_file: str | None = None) -> tuple[int | None, str]:
        app = self.app
        argv = ["curl", "-sS", "--max-time", "120", "--cacert", os.path.join(app.tls_dir, "ca.pem"),
                "--cert", os.path.join(app.client_dir, "cert.pem"),
                "--key", os.path.join(app.client_dir, "key.pem"),
                "-X", method, "-o", "-", "-w", "\n%{http_code}"]
        if body_file is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", f"@{body_file}"]
        argv.append(app.control_url + path)
        done = subprocess.run(self._in_ns(argv), capture_output=True, text=True, timeout=180)
        text, _, code = done.stdout.rpartition("\n")
        return (int(code) if code.strip().isdigit() and int(code) else None), text

    def put_state(self, path: str) -> None:
        status, text = self.control("PUT", "/v1/state", path)
        if status != 200:
            raise RuntimeError(f"PUT /v1/state answered {status}: {text}\n{self.app.log()}")


def state_file(directory: str, name: str, count: int, generation: int, interface: str) -> str:
    """The JSON body of ``PUT /v1/state`` with `count` VMs."""
    state = startup_state(count, interface)
    state = type(state)(generation=generation, network=state.network, vms=state.vms)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(state.to_json(), f)
    return path


def measure_router(topo: Topology | None, directory: str, count: int,
                   bodies: tuple[str, str]) -> tuple[Memory, Memory, Memory]:
    """(one VM, after the sync to `count` VMs, after a restart with `count` VMs)."""
    basedir = tempfile.mkdtemp(prefix="router-", dir=directory)
    router = Router(topo, basedir)
    try:
        pid = router.start()
        router.put_state(bodies[0])
        one = idle_memory(pid)
        router.put_state(bodies[1])
        synced = idle_memory(pid)
        router.stop()
        pid = router.start()
        status, text = router.control("GET", "/health")
        if status != 200 or json.loads(text).get("generation") != SYNC_GENERATION:
            raise RuntimeError(f"the restarted daemon does not hold generation {SYNC_GENERATION}: {text}")
        restarted = idle_memory(pid)
    finally:
        router.stop()
        shutil.rmtree(basedir, ignore_errors=True)
    return one, synced, restarted


# --- dnsmasq --------------------------------------------------------------------------------------


def dnsmasq_files(directory: str, count: int, interface: str) -> str:
    """A dnsmasq configuration with `count` reservations and `2 * count` names; returns its path."""
    prefix = os.path.join(directory, f"dnsmasq-{count}")
    hostsfile, addn, leases = f"{prefix}.dhcphosts", f"{prefix}.hosts", f"{prefix}.leases"
    with open(hostsfile, "w") as f:
        for i in range(count):
            f.write(f"{vm_mac(i)},{vm_address(i)},vm{i:05d},infinite\n")
    with open(addn, "w") as f:
        for i in range(count):
            f.write(f"{vm_address(i)} vm{i:05d}.{DOMAIN} vm{i:05d}\n")
    open(leases, "w").close()
    conf = f"{prefix}.conf"
    with open(conf, "w") as f:
        f.write("\n".join([
            f"port={DNSMASQ_DNS_PORT}", "user=root", f"interface={interface}", "bind-interfaces",
            "no-hosts", "no-resolv", "domain-needed", "bogus-priv", f"domain={DOMAIN}",
            f"local=/{DOMAIN}/", f"addn-hosts={addn}",
            f"dhcp-range=set:guest,{STARTUP_NET}.0.0,static,255.255.0.0,infinite",
            f"dhcp-hostsfile={hostsfile}", "dhcp-ignore=tag:!known", f"dhcp-lease-max={count + 10}",
            f"dhcp-leasefile={leases}", f"dhcp-option=option:router,{ROUTER_IP}", "quiet-dhcp",
            f"pid-file={prefix}.pid", "log-facility=-", "",
        ]))
    return conf


def measure_dnsmasq(topo: Topology, conf: str) -> Memory:
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    proc = topo.spawn_in(topo.router, [dnsmasq, "-k", f"--conf-file={conf}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        seen: list[str] = []
        while time.monotonic() < deadline:  # "read <prefix>.hosts - N names" once the names are loaded
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"dnsmasq exited: {''.join(seen)}")
            seen.append(line)
            if ".hosts - " in line:
                break
        return idle_memory(proc.pid)
    finally:
        topo.stop(proc)


# --- in-process breakdown ---------------------------------------------------------------------------


def breakdown(count: int, top: int = 25) -> None:
    """Print tracemalloc's top allocation sites of the in-process load path with `count` VMs."""
    import gc
    import tracemalloc

    from twisted.internet.task import Clock

    from routervm.dataplane import _dns_table
    from routervm.dhcp.logic import DhcpLogic
    from routervm.dns import lean
    from routervm.metadata.content import MetadataView
    from routervm.state import StateKeeper

    with tempfile.TemporaryDirectory(prefix="bench-router-memory-") as workdir:
        path = os.path.join(workdir, "state.json")
        StateKeeper(path, Clock(), b"k" * 32).replace(startup_state(count, GUEST_IF))
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        snapshot = StateKeeper(path, Clock(), b"k" * 32).load()
        assert snapshot is not None
        table = _dns_table(snapshot)
        views = (table, lean.compile_table(table, recursion_available=True),
                 DhcpLogic(snapshot.reservations, snapshot.dhcp, Clock()))
        gc.collect()
        after = tracemalloc.take_snapshot()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"in-process load path, {count} VMs: {held / count:.0f} bytes/VM held, peak {peak / 1e6:.1f} MB")
    for stat in after.compare_to(before, "lineno")[:top]:
        print(f"  {stat.size_diff / count:8.0f} B/VM  {stat.count_diff:8d} blocks  {stat.traceback}")
    # Not in the daemon figures (no guest asks there): what the metadata service adds once every
    # VM has fetched its metadata (one cached view per VM).
    tracemalloc.start(1)
    metadata = [MetadataView(record) for record in snapshot.state.vms]
    gc.collect()
    print(f"metadata views, one per VM once each has asked: {tracemalloc.get_traced_memory()[0] / count:.0f} "
          f"bytes/VM more", flush=True)
    tracemalloc.stop()
    del views, metadata


# --- the run ------------------------------------------------------------------------------------------


def run(*, vms: int = 10000, rounds: int = MIN_ROUNDS, netns: bool = True) -> dict[str, Any]:
    """Measure `rounds` times; print each round and return the per-VM spreads."""
    require_root_and_netns()
    if shutil.which("dnsmasq") is None:
        raise SystemExit("dnsmasq is missing (Debian package dnsmasq-base)")
    directory = tempfile.mkdtemp(prefix="bench-router-memory-")
    topo = Topology(guest_specs=[GuestSpec(mac=vm_mac(0), address=f"{vm_address(0)}/16")])
    rows: dict[str, list[Memory]] = {name: [] for name in
                                     ("router one", "router synced", "router restarted", "dnsmasq one", "dnsmasq full")}
    try:
        topo.create()
        topo.address(topo.router, GUEST_IF, f"{ROUTER_IP}/16")
        interface = GUEST_IF if netns else "eth0"
        bodies = (state_file(directory, "one.json", 1, BASE_GENERATION, interface),
                  state_file(directory, "all.json", vms, SYNC_GENERATION, interface))
        confs = (dnsmasq_files(directory, 1, GUEST_IF), dnsmasq_files(directory, vms, GUEST_IF))
        for r in range(1, rounds + 1):
            one, synced, restarted = measure_router(topo if netns else None, directory, vms, bodies)
            d_one, d_full = measure_dnsmasq(topo, confs[0]), measure_dnsmasq(topo, confs[1])
            for name, value in zip(rows, (one, synced, restarted, d_one, d_full), strict=True):
                rows[name].append(value)
            print(f"round {r}: routervm RSS {one.rss / 1e6:.1f} MB with 1 VM, {synced.rss / 1e6:.1f} MB after "
                  f"sync, {restarted.rss / 1e6:.1f} MB after restart "
                  f"({synced.minus(one, vms - 1).rss} / {restarted.minus(one, vms - 1).rss} B/VM); dnsmasq "
                  f"{d_one.rss / 1e6:.1f} -> {d_full.rss / 1e6:.1f} MB ({d_full.minus(d_one, vms - 1).rss} B/VM)",
                  flush=True)
    finally:
        topo.destroy()
        shutil.rmtree(directory, ignore_errors=True)

    def per_vm(full: str, base: str, field: int) -> Spread:
        return Spread.of([float(f.minus(b, vms - 1).fields()[field])
                          for f, b in zip(rows[full], rows[base], strict=True)])

    def absolute(name: str, field: int) -> Spread:
        return Spread.of([m.fields()[field] / 1e6 for m in rows[name]])

    print()
    print(f"idle memory with {vms:,} VMs, median (min-max) over {rounds} rounds"
          f"{'' if netns else ' (routervm without its data plane)'}:")
    print(f"{'':<26} {'RSS MB':>22} {'USS MB':>22} {'anon MB':>22}")
    for name in rows:
        print(f"{name:<26} " + " ".join(f"{absolute(name, i).format('.1f'):>22}" for i in range(3)))
    print(f"{'per VM above 1 VM, bytes':<26} {'RSS':>22} {'USS':>22} {'anon':>22}")
    result: dict[str, Any] = {}
    for label, full, base in (("routervm after sync", "router synced", "router one"),
                              ("routervm after restart", "router restarted", "router one"),
                              ("dnsmasq", "dnsmasq full", "dnsmasq one")):
        spreads = [per_vm(full, base, i) for i in range(3)]
        result[label] = spreads
        print(f"{label:<26} " + " ".join(f"{s.format('.0f'):>22}" for s in spreads))
    ours = result["routervm after sync"][0].median
    verdict = "met" if ours < TARGET_PER_VM else "NOT met"
    print(f"target: routervm RSS per VM < {TARGET_PER_VM} B: {ours:.0f} B, {verdict}; "
          f"dnsmasq {result['dnsmasq'][0].median:.0f} B")
    note = rounds_note(rounds)
    if note:
        print(note)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--no-netns", action="store_true",
                        help="run routervm with --no-data-plane on the host's loopback")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print tracemalloc's top allocation sites of the in-process load path")
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.vms)
    run(vms=args.vms, rounds=args.rounds, netns=not args.no_netns)


if __name__ == "__main__":
    main()
