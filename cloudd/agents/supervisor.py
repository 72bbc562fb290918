"""The supervised secondary-storage VMs of the embedded setup: one local `twistd -n ssvm` child per
image-store zone, started, watched and restarted by cloudd as CloudStack restarts its system VMs.

For system VM `vm_id` the supervisor owns `<basedir>/systemvms/s-<vm_id>-VM/` (mode 0700):

* `tls/` — the child's serving certificate for 127.0.0.1, issued by cloudd's authority at each
  `start_vm`, and the authority's certificate;
* `endpoint.json` — its two loopback ports (control API, image downloads), kept across restarts of
  the child and of cloudd while they stay free, so URLs handed out keep working;
* `ssvm.toml` — the appliance's settings, when the owner gives any;
* `twistd.pid`, `ssvm.log` (twistd's own, rotated) and `console.log` (the child's stdout and stderr,
  which only hold what is printed before logging starts) — never cloudd's log, which must not get
  the child's output;
* `state/`, `url-signing.key` — the appliance's own files. The image store itself is the store root
  the owner gives (the image store's directory).

A child that exits without `stop_vm` is restarted after 1, 2, 4 … seconds (capped at 60; a child
that ran for 60 seconds or more starts again from 1), with a log line and `on_state(vm_id, state)`
calls the owner stores and raises alerts from (CloudStack's system VM states: Starting, Running,
Stopping, Stopped, Error). Each child gets an `ApplianceAgent` (in the `AgentsService` given),
named by its instance name; the agent's first answer to a health check over mutual TLS makes the
VM Running.

Children do not outlive cloudd: on Linux each asks the kernel to send it SIGTERM when cloudd exits
(and exits at once when cloudd is gone before it asked), and at every start the supervisor reclaims
a stale child recorded in the directory's pidfile, checking in /proc that it is a `twistd ssvm`
before it kills it. `stop_vm` and `stopService` end children with SIGTERM, then SIGKILL after
`kill_timeout` seconds. The child's environment is built here, not inherited: cloudd's own
(which may hold the secrets key) never reaches it.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import random
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IProcessTransport, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

import cloudd
from appliance.files import atomic_write
from appliance.tls import TlsMaterial
from cloudd.agents.service import AgentsService, AgentState, ApplianceAgent
from cloudd.agents.ssvm import StorageClient
from cloudd.pki import CertificateAuthority

SYSTEMVMS_DIR = "systemvms"
PIDFILE = "twistd.pid"
LOGFILE = "ssvm.log"
CONSOLE_LOG = "console.log"
ENDPOINT_FILE = "endpoint.json"
SETTINGS_FILE = "ssvm.toml"
TLS_DIR = "tls"
LOOPBACK = "127.0.0.1"
PARENT_ENV = "CLOUDD_SUPERVISOR_PID"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

RESTART_BASE = 1.0
RESTART_MAX = 60.0
STABLE_AFTER = 60.0
KILL_TIMEOUT = 10.0
RECLAIM_TIMEOUT = 5.0
RECLAIM_POLL = 0.1

# The child's first lines, run by `python -c`: ask for SIGTERM when the parent dies (Linux's
# PR_SET_PDEATHSIG), give up if the parent is gone already, then run twistd with the rest of argv.
BOOTSTRAP = """\
import os, signal, sys
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
except Exception:
    pass
parent = os.environ.pop("CLOUDD_SUPERVISOR_PID", "")
if parent and os.getppid() != int(parent):
    sys.exit("cloudd, which started this ssvm, has exited")
from twisted.scripts.twistd import run
sys.argv = ["twistd"] + sys.argv[1:]
run()
"""


class VmState(enum.Enum):
    """CloudStack's system VM states, as the supervisor knows them."""

    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ERROR = "Error"


class SupervisorError(Exception):
    """A system VM could not be started (bad id, a stale child that would not die, ...)."""


@dataclass(frozen=True)
class SsvmEndpoint:
    control_url: str  # https, mutual TLS
    public_url: str  # base of signed image URLs, as hosts reach it


@dataclass(frozen=True)
class SupervisedVm:
    """One supervised system VM as `list_vms` reports it; times are the clock's epoch seconds."""

    vm_id: int
    instance_name: str
    state: VmState
    pid: int | None  # the running child's, None between runs
    started_at: float | None  # when the current (or last) child was started
    control_url: str
    public_url: str
    directory: str
    store_root: str
    restarts: int  # unexpected exits followed by a restart
    agent_state: AgentState | None
    last_exit: str | None  # how the last child ended, None before the first end


def instance_name(vm_id: int) -> str:
    return f"s-{vm_id}-VM"


# -- the host's processes and ports (replaced by fakes in unit tests) -----------------------------

class ProcessTable(Protocol):
    def cmdline(self, pid: int) -> list[bytes] | None:
        """The arguments of live process `pid`; None when there is none (or only a zombie)."""

    def kill(self, pid: int, sig: int) -> None: ...


class LinuxProcessTable:
    """/proc. Its files live in memory: reading them does not block like disk files."""

    def cmdline(self, pid: int) -> list[bytes] | None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):
                return None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return [a for a in f.read().split(b"\0") if a]
        except OSError:
            return None

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def is_ssvm_command(argv: Sequence[bytes]) -> bool:
    """A `twistd ... ssvm ...` command line (ours runs twistd from `python -c`)."""
    return any(b"twistd" in a for a in argv) and b"ssvm" in argv


class PortPicker(Protocol):
    def free(self, port: int) -> bool: ...

    def pick(self, exclude: set[int]) -> int: ...


class LoopbackPorts:
    """Loopback ports below the kernel's ephemeral range, so no outgoing connection holds the port
    between the choice and the child's bind. Blocking (a file read, binds): call from a thread."""

    def free(self, port: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the child's listener does
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return False
            return True

    def pick(self, exclude: set[int]) -> int:
        low = 32768
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                low = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(max(1024, low - 12000), low)
            if port not in exclude and self.free(port):
                return port
        raise SupervisorError("no free loopback port for a system VM")


Spawn = Callable[..., Any]  # reactor.spawnProcess: returns an IProcessTransport
Resync = Callable[[ApplianceAgent[Any]], Awaitable[None]]


class _ChildProtocol(ProcessProtocol):
    def __init__(self, ended: Callable[[Failure], None]) -> None:
        self._ended = ended

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 (Twisted API)
        self._ended(reason)


class _Child:
    """The supervisor's record of one system VM (mutable, private; `SupervisedVm` is the view)."""

    def __init__(self, vm_id: int, directory: str, store_root: str, settings: str | None,
                 resync: Resync | None) -> None:
        self.vm_id = vm_id
        self.name = instance_name(vm_id)
        self.directory = directory
        self.store_root = store_root
        self.settings = settings
        self.resync = resync
        self.state = VmState.STARTING
        self.control_port = 0
        self.public_port = 0
        self.transport: IProcessTransport | None = None
        self.pid: int | None = None
        self.started_at: float | None = None
        self.next_delay = RESTART_BASE
        self.restart_call: IDelayedCall | None = None
        self.kill_call: IDelayedCall | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.stopping = False
        self.waiters: list[Deferred[None]] = []  # fired when the child process has ended
        self.agent: ApplianceAgent[Any] | None = None

    @property
    def control_url(self) -> str:
        return f"https://{LOOPBACK}:{self.control_port}"

    @property
    def public_url(self) -> str:
        return f"http://{LOOPBACK}:{self.public_port}"

    def path(self, *names: str) -> str:
        return os.path.join(self.directory, *names)


class SsvmSupervisor(Service):
    """Starts and keeps running one local `twistd -n ssvm` per image-store zone.

    `spawn` has `reactor.spawnProcess`'s signature; `client_material` is cloudd's client
    certificate (`cloudd.pki.client_material`); `agents` receives each VM's `ApplianceAgent`.
    """

    log = Logger()

    def __init__(self, reactor: Any, basedir: str, ca: CertificateAuthority, *,
                 agents: AgentsService, client_material: TlsMaterial,
                 spawn: Spawn | None = None, python: str = sys.executable,
                 clock: IReactorTime | None = None, threadpool: Any = None,
                 on_state: Callable[[int, VmState], None] | None = None,
                 client_factory: Callable[[str], Any] | None = None,
                 agent_interval: float = 10.0, env: Mapping[str, str] | None = None,
                 restart_base: float = RESTART_BASE, restart_max: float = RESTART_MAX,
                 stable_after: float = STABLE_AFTER, kill_timeout: float = KILL_TIMEOUT,
                 processes: ProcessTable | None = None, ports: PortPicker | None = None) -> None:
        self.setName("ssvm-supervisor")
        self.reactor = reactor
        self.basedir = os.path.abspath(basedir)
        self.ca = ca
        self.agents = agents
        self.client_material = client_material
        # looked up when a child starts: a reactor without processes can still build the service tree
        self._spawn: Spawn | None = spawn
        self.python = python
        self.clock: IReactorTime = clock if clock is not None else reactor
        self._threadpool = threadpool
        self._on_state = on_state
        self._client_factory = client_factory or (lambda url: StorageClient(reactor, url, client_material))
        self.agent_interval = agent_interval
        self.extra_env = dict(env or {})
        self.restart_base = restart_base
        self.restart_max = restart_max
        self.stable_after = stable_after
        self.kill_timeout = kill_timeout
        self.processes: ProcessTable = processes if processes is not None else LinuxProcessTable()
        self.ports: PortPicker = ports if ports is not None else LoopbackPorts()
        self._children: dict[int, _Child] = {}

    # -- what others read ------------------------------------------------------------------------

    def directory(self, vm_id: int) -> str:
        return os.path.join(self.basedir, SYSTEMVMS_DIR, instance_name(vm_id))

    def endpoint(self, vm_id: int) -> SsvmEndpoint | None:
        child = self._children.get(vm_id)
        if child is None or not child.control_port:
            return None
        return SsvmEndpoint(child.control_url, child.public_url)

    def agent(self, vm_id: int) -> ApplianceAgent[Any] | None:
        child = self._children.get(vm_id)
        return None if child is None else child.agent

    def get(self, vm_id: int) -> SupervisedVm | None:
        child = self._children.get(vm_id)
        return None if child is None else self._view(child)

    def list_vms(self) -> list[SupervisedVm]:
        return [self._view(c) for _, c in sorted(self._children.items())]

    def _view(self, c: _Child) -> SupervisedVm:
        return SupervisedVm(c.vm_id, c.name, c.state, c.pid, c.started_at, c.control_url, c.public_url,
                            c.directory, c.store_root, c.restarts,
                            None if c.agent is None else c.agent.state, c.last_exit)

    # -- start -----------------------------------------------------------------------------------

    async def start_vm(self, vm_id: int, store_root: str, *, settings: str | None = None,
                       resync: Resync | None = None) -> SupervisedVm:
        """Start (and from now on supervise) system VM `vm_id` serving the image store at
        `store_root`; `settings` is the appliance's TOML settings text. Returns once the child is
        spawned (it is Running when its agent is Up). A VM supervised already is left as it is."""
        if not isinstance(vm_id, int) or isinstance(vm_id, bool) or vm_id <= 0:
            raise SupervisorError(f"a system VM id is a positive integer, not {vm_id!r}")
        existing = self._children.get(vm_id)
        if existing is not None:
            if existing.stopping:
                raise SupervisorError(f"{existing.name} is stopping; start it again once it has stopped")
            return self._view(existing)
        child = _Child(vm_id, self.directory(vm_id), os.path.abspath(store_root), settings, resync)
        child.next_delay = self.restart_base
        self._children[vm_id] = child
        self._set_state(child, VmState.STARTING)
        try:
            await self._thread(self._prepare_directory, child, self._now())
            await self._run(child)
        except BaseException:
            if not child.stopping:
                self._children.pop(vm_id, None)
                self._set_state(child, VmState.ERROR)
                if child.agent is not None:
                    await self.agents.remove(child.name)
            raise
        return self._view(child)

    def _prepare_directory(self, child: _Child, now: datetime.datetime) -> None:
        """In a thread: the private directory, the certificate, the settings and the ports."""
        os.makedirs(child.directory, mode=0o700, exist_ok=True)
        os.chmod(child.directory, 0o700)
        os.makedirs(child.store_root, exist_ok=True)
        self.ca.issue_appliance(child.name, [LOOPBACK], now).write(child.path(TLS_DIR))
        if child.settings is not None:
            atomic_write(child.path(SETTINGS_FILE), child.settings.encode(), 0o600)
        elif os.path.exists(child.path(SETTINGS_FILE)):
            os.unlink(child.path(SETTINGS_FILE))
        try:
            with open(child.path(ENDPOINT_FILE)) as f:
                kept = json.load(f)
            child.control_port = int(kept["control_port"])
            child.public_port = int(kept["public_port"])
        except (OSError, ValueError, KeyError, TypeError):
            child.control_port = child.public_port = 0

    def _choose_ports(self, child: _Child) -> bool:
        """In a thread: keep the child's ports while they are free, else pick others; whether they
        changed."""
        taken = {p for c in self._children.values() if c is not child for p in (c.control_port, c.public_port)}
        changed = False
        ports: list[int] = []
        for port in (child.control_port, child.public_port):
            if not port or port in taken or port in ports or not self.ports.free(port):
                port = self.ports.pick(taken | set(ports))
                changed = True
            ports.append(port)
        child.control_port, child.public_port = ports
        if changed:
            atomic_write(child.path(ENDPOINT_FILE),
                         json.dumps({"control_port": ports[0], "public_port": ports[1]}).encode(), 0o600)
        return changed

    def _open_console(self, child: _Child) -> tuple[int, int]:
        """In a thread: /dev/null for the child's stdin, its console log for stdout and stderr."""
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            console = os.open(child.path(CONSOLE_LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            os.close(null)
            raise
        return null, console

    async def _run(self, child: _Child) -> None:
        """Reclaim a stale child, settle the ports, register the agent and spawn the process."""
        await self._reclaim(child)
        if child.stopping:
            return
        changed = await self._thread(self._choose_ports, child)
        if child.stopping:
            return
        if child.agent is None:
            child.agent = ApplianceAgent(child.name, self._client_factory(child.control_url), self.clock,
                                         resync=child.resync, on_state=self._agent_state(child),
                                         interval=self.agent_interval)
            self.agents.add(child.agent)
        elif changed:
            old = child.agent.client
            child.agent.client = self._client_factory(child.control_url)
            await old.close()
        null, console = await self._thread(self._open_console, child)
        try:
            if child.stopping:
                return
            protocol = _ChildProtocol(lambda reason: self._ended(child, reason))
            spawn = self._spawn if self._spawn is not None else self.reactor.spawnProcess
            child.transport = spawn(protocol, self.python, self._argv(child), env=self._env(),
                                          path=child.directory, childFDs={0: null, 1: console, 2: console})
        finally:
            os.close(null)
            os.close(console)
        child.pid = child.transport.pid
        child.started_at = self.clock.seconds()
        self.log.info("started {name} (pid {pid}): control {control}, images {public}", name=child.name,
                      pid=child.pid, control=child.control_url, public=child.public_url)
        if child.agent is not None:
            if child.agent.state is AgentState.UP:  # answered before the spawn: by a child reclaimed just now
                child.agent.lost("the ssvm process was started again")
            child.agent.appliance_restarted()

    def _argv(self, child: _Child) -> list[str]:
        argv = [self.python, "-c", BOOTSTRAP, "-n", "--umask", "0077",
                "--pidfile", child.path(PIDFILE), "--logfile", child.path(LOGFILE),
                "ssvm", "--basedir", child.directory, "--store", child.store_root,
                "--tls-dir", child.path(TLS_DIR),
                "--control-listen", f"tcp:{child.control_port}:interface={LOOPBACK}",
                "--public-listen", f"tcp:{child.public_port}:interface={LOOPBACK}",
                "--public-url", child.public_url]
        if child.settings is not None:
            argv += ["--config", child.path(SETTINGS_FILE)]
        return argv

    def _env(self) -> dict[str, str]:
        # The packages' root (an editable install or site-packages) holds twisted/plugins/ssvm_plugin.py.
        root = os.path.dirname(os.path.dirname(os.path.abspath(cloudd.__file__)))
        env = {"PATH": os.path.dirname(self.python) + os.pathsep + DEFAULT_PATH, "PYTHONPATH": root,
               "LANG": "C.UTF-8", PARENT_ENV: str(os.getpid())}
        env.update(self.extra_env)
        return env

    # -- stale children ----------------------------------------------------------------------------

    def _read_pidfile(self, child: _Child) -> int | None:
        try:
            with open(child.path(PIDFILE)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _remove_pidfile(self, child: _Child) -> None:
        try:
            os.unlink(child.path(PIDFILE))
        except FileNotFoundError:
            pass

    async def _reclaim(self, child: _Child) -> None:
        """End a `twistd ssvm` recorded in the pidfile (one a previous cloudd left running), and drop a
        pidfile naming a dead process or an unrelated one (twistd would refuse to start)."""
        pid = await self._thread(self._read_pidfile, child)
        if pid is None:
            return
        argv = self.processes.cmdline(pid) if pid != os.getpid() else None
        if argv is not None and is_ssvm_command(argv):
            self.log.warn("{name}: ending the stale ssvm process {pid} recorded in its pidfile", name=child.name,
                          pid=pid)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                self.processes.kill(pid, sig)
                deadline = self.clock.seconds() + RECLAIM_TIMEOUT
                while self.processes.cmdline(pid) is not None and self.clock.seconds() < deadline:
                    await deferLater(self.clock, RECLAIM_POLL, lambda: None)
                if self.processes.cmdline(pid) is None:
                    break
            else:
                raise SupervisorError(f"the stale ssvm process {pid} of {child.name} does not end")
        await self._thread(self._remove_pidfile, child)

    # -- exits and restarts ------------------------------------------------------------------------

    def _ended(self, child: _Child, reason: Failure) -> None:
        how = _exit_text(reason)
        child.transport = None
        child.pid = None
        child.last_exit = how
        if child.kill_call is not None and child.kill_call.active():
            child.kill_call.cancel()
        child.kill_call = None
        waiters, child.waiters = child.waiters, []
        if child.stopping:
            self.log.info("{name} stopped ({how})", name=child.name, how=how)
        else:
            ran = self.clock.seconds() - (child.started_at or 0.0)
            if ran >= self.stable_after:
                child.next_delay = self.restart_base
            delay = child.next_delay
            child.next_delay = min(delay * 2, self.restart_max)
            child.restarts += 1
            self.log.warn("{name} exited unexpectedly ({how}) after {ran:.1f} s; restarting it in {delay} s",
                          name=child.name, how=how, ran=ran, delay=delay)
            self._set_state(child, VmState.ERROR)
            if child.agent is not None:
                child.agent.lost(f"the ssvm process exited ({how})")
            child.restart_call = self.clock.callLater(delay, self._restart, child)
        for d in waiters:
            d.callback(None)

    def _restart(self, child: _Child) -> None:
        child.restart_call = None
        if child.stopping:
            return
        self._set_state(child, VmState.STARTING)
        Deferred.fromCoroutine(self._run(child)).addErrback(self._restart_failed, child)

    def _restart_failed(self, failure: Failure, child: _Child) -> None:
        if child.stopping:
            return
        delay = child.next_delay
        child.next_delay = min(delay * 2, self.restart_max)
        child.last_exit = f"could not start: {failure.getErrorMessage()}"
        self.log.failure("{name} could not be restarted; trying again in {delay} s", failure,
                         name=child.name, delay=delay)
        self._set_state(child, VmState.ERROR)
        child.restart_call = self.clock.callLater(delay, self._restart, child)

    def _agent_state(self, child: _Child) -> Callable[[ApplianceAgent[Any], AgentState], None]:
        def changed(agent: ApplianceAgent[Any], state: AgentState) -> None:
            if state is AgentState.UP and child.state is VmState.STARTING and child.transport is not None:
                self._set_state(child, VmState.RUNNING)

        return changed

    def _set_state(self, child: _Child, state: VmState) -> None:
        if child.state is state and state is not VmState.STARTING:
            return
        child.state = state
        if self._on_state is not None:
            try:
                self._on_state(child.vm_id, state)
            except Exception:
                self.log.failure("the state callback for {name} failed", name=child.name)

    # -- stop --------------------------------------------------------------------------------------

    def stop_vm(self, vm_id: int) -> Deferred[None]:
        """End system VM `vm_id` (SIGTERM, then SIGKILL after `kill_timeout`) and stop supervising it;
        fires once the process has ended and its agent has stopped."""
        return Deferred.fromCoroutine(self._stop_vm(vm_id))

    async def _stop_vm(self, vm_id: int) -> None:
        child = self._children.get(vm_id)
        if child is None:
            return
        if child.stopping:
            if child.transport is not None:
                await self._ended_waiter(child)
            return
        child.stopping = True
        if child.restart_call is not None and child.restart_call.active():
            child.restart_call.cancel()
        child.restart_call = None
        self._set_state(child, VmState.STOPPING)
        if child.transport is not None:
            ended = self._ended_waiter(child)
            self._signal(child, "TERM")
            child.kill_call = self.clock.callLater(self.kill_timeout, self._signal, child, "KILL")
            await ended
        if child.agent is not None:
            await self.agents.remove(child.name)
            child.agent = None
        self._children.pop(vm_id, None)
        self._set_state(child, VmState.STOPPED)

    def _ended_waiter(self, child: _Child) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        child.waiters.append(d)
        return d

    def _signal(self, child: _Child, name: str) -> None:
        if child.transport is None:
            return
        if name == "KILL":
            self.log.warn("{name} did not end within {timeout} s of SIGTERM; killing it", name=child.name,
                          timeout=self.kill_timeout)
        try:
            child.transport.signalProcess(name)
        except (ProcessExitedAlready, OSError):  # its end is on the way
            pass

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        super().stopService()
        stops = [self.stop_vm(vm_id) for vm_id in list(self._children)]
        d = gatherResults(stops, consumeErrors=True)
        return d.addCallback(lambda _: None)

    # -- helpers -----------------------------------------------------------------------------------

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    def _thread(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        pool = self._threadpool if self._threadpool is not None else self.reactor.getThreadPool()
        return deferToThreadPool(self.reactor, pool, fn, *args)


def _exit_text(reason: Failure) -> str:
    if reason.check(ProcessDone):
        return "exit status 0"
    value = reason.value
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            return f"signal {value.signal}"
        return f"exit status {value.exitCode}"
    return reason.getErrorMessage()
