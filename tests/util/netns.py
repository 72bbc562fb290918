"""Network-namespace topologies for tests that run real clients against real servers.

A `Topology` is one router namespace, N guest namespaces and optionally a "public" namespace,
all named ``cdt-<random>-r``, ``-g1``, ``-g2``…, ``-p``. Each guest gets a veth pair created
directly inside the namespaces (``ip link add g1 netns R type veth peer name eth0 netns G``), so
nothing ever appears on the host's own interfaces. Addresses are only assigned inside the
namespaces. `destroy()` stops every process started through `spawn_in`, kills whatever is left in
the namespaces (by PID), and deletes them; it runs on failure too (`create()` cleans up after a
partial setup, and `Topology.for_test` registers `destroy` with ``addCleanup``).

    topo = Topology.for_test(self, guests=[GuestSpec(mac="02:00:00:00:00:01")])
    topo.address(topo.router, "g1", "10.9.0.1/24")
    server = topo.spawn_in(topo.router, [sys.executable, "-m", "..."])
    result = topo.run_in(topo.guest(1).ns, ["udhcpc", ...], check=False)
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from twisted.trial.unittest import SkipTest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IP = shutil.which("ip") or "/usr/sbin/ip"


class _HasCleanup(Protocol):
    def addCleanup(self, f: Any, *args: Any, **kwargs: Any) -> None: ...  # noqa: N802


def require_root_and_netns() -> None:
    """Raise SkipTest, saying why, unless this process is root and can create namespaces."""
    if os.geteuid() != 0:
        raise SkipTest("network-namespace tests need root (ip netns add)")
    if not os.path.exists(IP):
        raise SkipTest("network-namespace tests need iproute2's `ip` command")
    name = f"cdt-{secrets.token_hex(4)}-probe"
    probe = subprocess.run([IP, "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SkipTest(f"`ip netns add` is not available here: {probe.stderr.strip()}")
    subprocess.run([IP, "netns", "delete", name], capture_output=True)


def require_commands(*names: str) -> None:
    """Raise SkipTest naming the missing programs (and nothing else)."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SkipTest(f"missing programs: {', '.join(missing)}")


def repo_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment with the repository first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


@dataclass
class GuestSpec:
    """One guest: its MAC (random locally administered when None), its interface name inside
    the guest namespace, and an optional address (CIDR) to configure there."""

    mac: str | None = None
    ifname: str = "eth0"
    address: str | None = None


@dataclass
class Guest:
    index: int
    ns: str
    ifname: str
    mac: str
    router_ifname: str  # the peer's name inside the router namespace, e.g. "g1"


def random_mac() -> str:
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in raw)


@dataclass
class Topology:
    guest_specs: Sequence[GuestSpec] = (GuestSpec(),)
    public: bool = False
    prefix: str = field(default_factory=lambda: f"cdt-{secrets.token_hex(3)}")

    def __post_init__(self) -> None:
        self.router = f"{self.prefix}-r"
        self.public_ns: str | None = f"{self.prefix}-p" if self.public else None
        self.guests: list[Guest] = []
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[Any]] = []

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def for_test(cls, testcase: _HasCleanup, guests: Sequence[GuestSpec] = (GuestSpec(),),
                 public: bool = False) -> Topology:
        """Skip unless root with netns, build the topology, and delete it when the test ends."""
        require_root_and_netns()
        topo = cls(guest_specs=list(guests), public=public)
        testcase.addCleanup(topo.destroy)
        topo.create()
        return topo

    def create(self) -> Topology:
        try:
            self._add_ns(self.router)
            for i, spec in enumerate(self.guest_specs, start=1):
                self.add_guest(spec, i)
            if self.public_ns is not None:
                self._add_ns(self.public_ns)
                self.ip("link", "add", "pub", "netns", self.router, "type", "veth",
                        "peer", "name", "eth0", "netns", self.public_ns)
                self.run_in(self.router, [IP, "link", "set", "pub", "up"])
                self.run_in(self.public_ns, [IP, "link", "set", "eth0", "up"])
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_ns(self, name: str) -> None:
        self.ip("netns", "add", name)
        self.namespaces.append(name)
        self.run_in(name, [IP, "link", "set", "lo", "up"])

    def add_guest(self, spec: GuestSpec, index: int | None = None) -> Guest:
        index = index if index is not None else len(self.guests) + 1
        ns = f"{self.prefix}-g{index}"
        peer = f"g{index}"
        mac = spec.mac or random_mac()
        self._add_ns(ns)
        self.ip("link", "add", peer, "netns", self.router, "type", "veth",
                "peer", "name", spec.ifname, "netns", ns)
        self.run_in(ns, [IP, "link", "set", spec.ifname, "address", mac])
        self.run_in(ns, [IP, "link", "set", spec.ifname, "up"])
        self.run_in(self.router, [IP, "link", "set", peer, "up"])
        if spec.address:
            self.address(ns, spec.ifname, spec.address)
        guest = Guest(index, ns, spec.ifname, mac, peer)
        self.guests.append(guest)
        return guest

    def guest(self, index: int) -> Guest:
        return self.guests[index - 1]

    def address(self, ns: str, ifname: str, cidr: str) -> None:
        """Add an address (``10.9.0.1/24``) to an interface inside namespace `ns`."""
        if ns not in self.namespaces:
            raise ValueError(f"{ns} is not one of this topology's namespaces")
        self.run_in(ns, [IP, "addr", "add", cidr, "dev", ifname])

    def route(self, ns: str, *args: str) -> None:
        """``ip route add ARGS`` inside namespace `ns`, e.g. ``route(g, "default", "via", gw)``."""
        self.run_in(ns, [IP, "route", "add", *args])

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([IP, *args], check=True, timeout=30)

    # --- processes ------------------------------------------------------------------------------

    def run_in(self, ns: str, argv: Sequence[str], check: bool = True, timeout: float = 60,
               env: Mapping[str, str] | None = None, input: str | None = None,
               ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside `ns` to completion; stdout and stderr are captured as text."""
        return _run([IP, "netns", "exec", ns, *argv], check=check, timeout=timeout, env=env, input=input)

    def spawn_in(self, ns: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 stdout: int | IO[Any] | None = subprocess.PIPE,
                 stderr: int | IO[Any] | None = subprocess.PIPE,
                 pin_cpu: int | None = None) -> subprocess.Popen[Any]:
        """Start `argv` in the background inside `ns`; `destroy` (or `stop`) ends it by PID."""
        cmd = [IP, "netns", "exec", ns, *argv]
        if pin_cpu is not None:
            cmd = ["taskset", "-c", str(pin_cpu), *cmd]
        proc = subprocess.Popen(cmd, env=dict(env) if env is not None else None,
                                stdout=stdout, stderr=stderr, text=True)
        self.processes.append(proc)
        return proc

    @staticmethod
    def wait_for_line(proc: subprocess.Popen[Any], wanted: str, timeout: float = 20) -> None:
        """Read `proc`'s stdout until a line equal to `wanted`; raise if it exits or times out."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(proc.stdout.fileno(), True)
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = proc.stdout.readline()
                if not line:
                    err = proc.stderr.read() if proc.stderr is not None else ""
                    raise RuntimeError(f"process exited before {wanted!r}: {err}")
                if line.strip() == wanted:
                    return
        raise RuntimeError(f"timed out waiting for {wanted!r}")

    @staticmethod
    def stop(proc: subprocess.Popen[Any], timeout: float = 5) -> int:
        """SIGTERM `proc` by PID, then SIGKILL after `timeout`; return its exit status."""
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def pids_in(self, ns: str) -> list[int]:
        out = _run([IP, "netns", "pids", ns], check=False, timeout=10).stdout
        return [int(x) for x in out.split()]

    # --- teardown -------------------------------------------------------------------------------

    def destroy(self) -> None:
        """Stop our processes, kill what is left in our namespaces, delete the namespaces."""
        for proc in self.processes:
            self.stop(proc)
        self.processes = []
        for ns in self.namespaces:
            for pid in self.pids_in(ns):  # daemons a test started that outlived their parent
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in reversed(self.namespaces):
            _run([IP, "netns", "delete", ns], check=False, timeout=30)
        self.namespaces = []

    def __enter__(self) -> Topology:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def _run(argv: Sequence[str], check: bool, timeout: float, env: Mapping[str, str] | None = None,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            env=dict(env) if env is not None else None, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


# A dhclient `-sf` script that records every invocation (reason and the new_/old_ variables, then
# "--") into {out}, and configures the address so that unicast renewals can work.
DHCLIENT_SCRIPT = """#!/bin/sh
{{ echo "reason=$reason"; env | grep -E '^(new|old)_' | sort; echo "--"; }} >> {out}
case "$reason" in
  BOUND|RENEW|REBOOT|REBIND)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
exit 0
"""


#: The argv prefix that runs ``dhcpcd`` with empty private /run and /var/lib/dhcpcd: it keeps its
#: lease, DUID and pid files there, shared with the host otherwise (`ip netns exec` gives the
#: command a mount namespace of its own, `unshare --mount` a private one on top);
#: ``--pid --fork --kill-child`` reaps its privilege-separated helpers with it.  Append dhcpcd's
#: own arguments.
DHCPCD_PRIVATE = ("unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c",
                  'mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/dhcpcd && exec dhcpcd "$@"',
                  "dhcpcd")


def script_records(path: str) -> list[dict[str, str]]:
    """What a recording client script wrote: one dict of NAME -> value per invocation."""
    if not os.path.exists(path):
        return []
    result: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line == "--":
                result.append(current)
                current = {}
            elif "=" in line:
                name, _, value = line.partition("=")
                current[name] = value.strip("'")
    return result
