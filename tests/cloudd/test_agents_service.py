"""Unit tests of the appliance agents (`cloudd.agents.service`) and the ssvm supervisor
(`cloudd.agents.supervisor`): a fake clock, fake control clients and a fake process spawner, so
every delay is counted on the clock and no process, socket or sleep is involved."""

from __future__ import annotations

import datetime
import os
import signal
import stat
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost, ConnectionRefusedError, ProcessDone, ProcessTerminated
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from cloudd.agents.control import ControlError
from cloudd.agents.service import AgentsService, AgentState, ApplianceAgent, describe, is_transient
from cloudd.agents.supervisor import (
    BOOTSTRAP,
    PARENT_ENV,
    SsvmEndpoint,
    SsvmSupervisor,
    SupervisorError,
    VmState,
    is_ssvm_command,
)
from cloudd.pki import CertificateAuthority
from tests.util.reactor import FakeReactor

EPOCH = 1_750_000_000.0


class FakeClient:
    """A control client whose health answers are scripted: `up` answers, else connection refused;
    `hold` keeps the next health call pending until the test fires it."""

    def __init__(self, url: str = "https://127.0.0.1:1") -> None:
        self.url = url
        self.up = True
        self.hold: Deferred[Any] | None = None
        self.health_calls = 0
        self.closed = False

    async def health(self) -> Any:
        self.health_calls += 1
        if self.hold is not None:
            return await self.hold
        if not self.up:
            raise ConnectionRefusedError("127.0.0.1")
        return {"service": "ssvm", "status": "ok"}

    async def close(self) -> None:
        self.closed = True


class Resyncs:
    """An owner's resync callback: counts calls; `fail` makes the next ones raise, `gate` holds them."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: Deferred[None] | None = None

    async def __call__(self, agent: ApplianceAgent[Any]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate
        if self.fail:
            raise ControlError(500, "error", "disk full")


class AgentCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = FakeReactor()
        self.clock.advance(EPOCH)
        self.client = FakeClient()
        self.resyncs = Resyncs()
        self.states: list[AgentState] = []

    def agent(self, **kw: Any) -> ApplianceAgent[FakeClient]:
        agent = ApplianceAgent("r-1-VM", self.client, self.clock, resync=self.resyncs,
                               on_state=lambda a, s: self.states.append(s), **kw)
        self.addCleanup(lambda: agent.stopService() if agent.running else None)
        return agent


class HealthTests(AgentCase):
    def test_first_connect_is_up_and_resyncs(self) -> None:
        """The first check runs at start; its answer makes the agent Up and runs one full resync."""
        agent = self.agent()
        self.assertEqual(agent.state, AgentState.CONNECTING)
        agent.startService()
        self.assertEqual(agent.state, AgentState.UP)
        self.assertEqual(self.resyncs.calls, 1)
        health = agent.health
        self.assertEqual((health.last_answer, health.last_answer_at, health.since, health.resyncs),
                         ({"service": "ssvm", "status": "ok"}, EPOCH, EPOCH, 1))
        self.clock.advance(10)
        self.assertEqual(self.client.health_calls, 2)
        self.assertEqual(self.resyncs.calls, 1, "a check that finds the appliance Up again does not resync")

    def test_lost_and_back_resyncs_on_every_reconnect(self) -> None:
        """A failed check turns Up into Lost (with the error and its time); the next answer makes it Up
        again and resyncs again, every time."""
        agent = self.agent(interval=10)
        agent.startService()
        for round_ in (1, 2):
            self.client.up = False
            self.clock.advance(10)
            self.assertEqual(agent.state, AgentState.LOST)
            health = agent.health
            self.assertIn("Connection was refused", health.last_error or "")
            self.assertEqual(health.since, self.clock.seconds())
            self.client.up = True
            self.clock.advance(0.5)  # the first quick re-check
            self.assertEqual(agent.state, AgentState.UP)
            self.assertEqual(self.resyncs.calls, 1 + round_)
        self.assertEqual(self.states, [AgentState.UP, AgentState.LOST, AgentState.UP, AgentState.LOST,
                                       AgentState.UP])

    def test_reconnect_backoff(self) -> None:
        """An appliance that never answers stays Connecting; it is looked at again after 0.5, 1, 2, 4
        and 8 s, then at the regular interval only."""
        self.client.up = False
        agent = self.agent(interval=10)
        agent.startService()
        times = []
        calls = self.client.health_calls
        for _ in range(400):
            self.clock.advance(0.25)
            if self.client.health_calls != calls:
                calls = self.client.health_calls
                times.append(self.clock.seconds() - EPOCH)
        self.assertEqual(times, [0.5, 1.5, 3.5, 7.5, 10.0, 15.5] + [10.0 * n for n in range(2, 11)])
        self.assertEqual(agent.state, AgentState.CONNECTING)
        self.assertEqual(self.states, [])
        self.assertEqual(self.resyncs.calls, 0)

    def test_health_timeout(self) -> None:
        """A check that gets no answer within the health timeout counts as failed."""
        agent = self.agent(interval=10, health_timeout=3)
        agent.startService()
        self.client.hold = Deferred()
        self.clock.advance(10)
        self.assertEqual(agent.state, AgentState.UP)
        self.clock.advance(3)
        self.assertEqual(agent.state, AgentState.LOST)
        self.assertIn("TimeoutError", agent.health.last_error or "")

    def test_failed_resync_tried_again(self) -> None:
        """A resync that fails stays owed and is run at the next check until it succeeds."""
        self.resyncs.fail = True
        agent = self.agent(interval=10)
        agent.startService()
        self.assertEqual((agent.state, self.resyncs.calls, agent.health.resync_pending), (AgentState.UP, 1, True))
        self.assertIn("disk full", agent.health.last_error or "")
        self.resyncs.fail = False
        self.clock.advance(10)
        self.assertEqual((self.resyncs.calls, agent.health.resyncs, agent.health.resync_pending), (2, 1, False))
        self.clock.advance(10)
        self.assertEqual(self.resyncs.calls, 2)

    def test_lost_from_owner(self) -> None:
        """`lost()` (the owner saw the process die) makes an Up agent Lost at once and looks again soon."""
        agent = self.agent(interval=10)
        agent.startService()
        agent.lost("the ssvm process exited (signal 9)")
        self.assertEqual((agent.state, agent.health.last_error), (AgentState.LOST, "the ssvm process exited (signal 9)"))
        self.clock.advance(0.5)
        self.assertEqual((agent.state, self.resyncs.calls), (AgentState.UP, 2))

    def test_stop_cancels_pending_check_and_closes_client(self) -> None:
        """Stopping an agent whose check waits for an answer ends at once and closes the client; no
        check runs afterwards."""
        agent = self.agent()
        self.client.hold = Deferred()
        agent.startService()
        d = agent.stopService()
        self.successResultOf(d)
        self.assertTrue(self.client.closed)
        calls = self.client.health_calls
        self.clock.advance(100)
        self.assertEqual(self.client.health_calls, calls)

    def test_checks_go_on_during_resync(self) -> None:
        """A long resync does not hold the health checks up: the appliance going away meanwhile is
        seen; stopping the agent ends the resync."""
        self.resyncs.gate = Deferred()
        agent = self.agent(interval=10)
        agent.startService()
        self.assertEqual((agent.state, self.resyncs.calls, agent.health.resync_pending), (AgentState.UP, 1, True))
        self.client.up = False
        self.clock.advance(10)
        self.assertEqual(agent.state, AgentState.LOST)
        self.successResultOf(agent.stopService())
        self.assertTrue(self.client.closed)
        self.assertEqual(self.resyncs.calls, 1)

    def test_bad_arguments(self) -> None:
        """Nonsense timing arguments are refused when the agent is built."""
        for kw in ({"interval": 0}, {"retry_attempts": 0}, {"retry_factor": 0.5}, {"health_timeout": -1}):
            self.assertRaises(ValueError, ApplianceAgent, "x", self.client, self.clock, **kw)


class GenerationTests(AgentCase):
    def test_mismatch_resyncs_once_while_one_runs(self) -> None:
        """`generation_mismatch()` runs a resync; mismatches reported while it runs are folded into
        one more resync after it."""
        agent = self.agent()
        agent.startService()
        self.resyncs.gate = Deferred()
        first = agent.generation_mismatch()
        second = agent.generation_mismatch()
        agent.generation_mismatch()
        self.assertEqual(self.resyncs.calls, 2)
        self.assertNoResult(first)
        gate, self.resyncs.gate = self.resyncs.gate, None
        gate.callback(None)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual((self.resyncs.calls, agent.health.resyncs), (3, 3))

    def test_mismatch_while_lost_waits_for_up(self) -> None:
        """A mismatch reported while the appliance is Lost resyncs when it answers again (once)."""
        agent = self.agent(interval=10)
        agent.startService()
        self.client.up = False
        self.clock.advance(10)
        self.successResultOf(agent.generation_mismatch())
        self.assertEqual(self.resyncs.calls, 1)
        self.client.up = True
        self.clock.advance(0.5)
        self.assertEqual(self.resyncs.calls, 2)

    def test_stale_generation_answer_resyncs(self) -> None:
        """A 409 `conflict` answer to a call is raised to the caller (not retried) and triggers a resync."""
        agent = self.agent()
        agent.startService()
        calls = []

        async def put(client: FakeClient) -> Any:
            calls.append(1)
            raise ControlError(409, "conflict", "generation 4 is older than the 5 held")

        failure = self.failureResultOf(Deferred.fromCoroutine(agent.call(put)), ControlError)
        self.assertEqual(failure.value.status, 409)
        self.assertEqual((len(calls), self.resyncs.calls), (1, 2))


class CallTests(AgentCase):
    def test_retry_with_backoff(self) -> None:
        """Connection refused and 5xx answers are retried after base·factor^n seconds on the clock,
        until the call succeeds."""
        agent = self.agent(retry_base=1, retry_factor=3, retry_attempts=4)
        agent.startService()
        times = []
        errors: list[Exception] = [ConnectionRefusedError("x"), ControlError(503, "error", "busy"),
                                   ControlError(500, "error", "oops")]

        async def put(client: FakeClient) -> str:
            times.append(self.clock.seconds() - EPOCH)
            if errors:
                raise errors.pop(0)
            return "done"

        d = Deferred.fromCoroutine(agent.call(put))
        self.clock.advance(0.999)
        self.assertEqual(times, [0])
        self.clock.advance(0.001)
        self.assertEqual(times, [0, 1])
        self.clock.advance(3)
        self.assertEqual(times, [0, 1, 4])
        self.assertNoResult(d)
        self.clock.advance(9)
        self.assertEqual(times, [0, 1, 4, 13])
        self.assertEqual(self.successResultOf(d), "done")

    def test_gives_up_after_max_attempts(self) -> None:
        """After `retry_attempts` tries the last error is raised, and the health shows it."""
        agent = self.agent(retry_base=1, retry_factor=2, retry_attempts=3)
        agent.startService()
        tries = []

        async def put(client: FakeClient) -> None:
            tries.append(1)
            raise ControlError(502, "error", "bad gateway")

        d = Deferred.fromCoroutine(agent.call(put))
        self.clock.advance(1)
        self.clock.advance(2)
        self.failureResultOf(d, ControlError)
        self.assertEqual(len(tries), 3)
        self.assertIn("502", agent.health.last_error or "")
        self.clock.advance(100)
        self.assertEqual(len(tries), 3)

    def test_client_errors_not_retried(self) -> None:
        """A 4xx answer (the request itself is wrong) is raised at once, never sent again; so is a bug."""
        agent = self.agent()
        agent.startService()
        for exc in (ControlError(400, "bad_request", "hostname missing"), ControlError(404, "not_found", "x"),
                    TypeError("bug")):
            tries: list[int] = []

            async def put(client: FakeClient, exc: Exception = exc, tries: list[int] = tries) -> None:
                tries.append(1)
                raise exc

            self.failureResultOf(Deferred.fromCoroutine(agent.call(put)), type(exc))
            self.clock.advance(60)
            self.assertEqual(len(tries), 1, exc)

    def test_what_is_retried(self) -> None:
        """No answer (refused, lost before or under the response, a timeout) and 5xx may pass later;
        4xx, a 409 and other exceptions may not; the health text names the reason."""
        lost = Failure(ConnectionLost("gone"))
        for exc in (ConnectionRefusedError("x"), ResponseNeverReceived([lost]), ResponseFailed([lost]),
                    defer.TimeoutError(), ControlError(500, "error", "x"), ControlError(503, "error", "x")):
            self.assertTrue(is_transient(exc), exc)
        for other in (ControlError(400, "bad_request", "x"), ControlError(409, "conflict", "x"),
                      ControlError(200, "bad_answer", "x"), ValueError("x")):
            self.assertFalse(is_transient(other), other)
        self.assertIn("gone", describe(ResponseNeverReceived([lost])))
        self.assertEqual(describe(ControlError(404, "not_found", "no such VM")), "404 not_found: no such VM")

    def test_call_passes_client(self) -> None:
        """`call` hands the agent's client to the function and returns its result."""
        agent = self.agent()
        agent.startService()

        async def whoami(client: FakeClient) -> str:
            return client.url

        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(agent.call(whoami))), self.client.url)

    def test_stop_ends_retry_wait(self) -> None:
        """Stopping the agent ends a call waiting to retry instead of leaving it pending."""
        agent = self.agent()
        agent.startService()

        async def put(client: FakeClient) -> None:
            raise ConnectionRefusedError("x")

        d = Deferred.fromCoroutine(agent.call(put))
        self.assertNoResult(d)
        self.successResultOf(agent.stopService())
        self.failureResultOf(d)


class AgentsServiceTests(SynchronousTestCase):
    def test_add_get_remove_and_stop(self) -> None:
        """Agents are held by appliance id, started with the service, and stopped (clients closed) when
        removed or when the service stops; an id cannot be held twice."""
        clock = FakeReactor()
        service = AgentsService()
        self.assertEqual(service.name, "agents")
        clients = [FakeClient(), FakeClient()]
        a = service.add(ApplianceAgent("s-1-VM", clients[0], clock))
        b = service.add(ApplianceAgent("r-2-VM", clients[1], clock))
        self.assertRaises(KeyError, service.add, ApplianceAgent("s-1-VM", FakeClient(), clock))
        self.assertIs(service.get("s-1-VM"), a)
        self.assertIsNone(service.get("nope"))
        self.assertEqual(set(service), {a, b})
        service.startService()
        self.assertEqual((a.state, b.state), (AgentState.UP, AgentState.UP))
        self.successResultOf(service.remove("s-1-VM"))
        self.assertTrue(clients[0].closed)
        self.assertNotIn("s-1-VM", service)
        self.successResultOf(service.remove("s-1-VM"))
        self.successResultOf(service.stopService())
        self.assertTrue(clients[1].closed)
        self.assertFalse(b.running)


# -- the supervisor ------------------------------------------------------------------------------


class FakeProcess:
    def __init__(self, protocol: Any, pid: int) -> None:
        self.protocol = protocol
        self.pid = pid
        self.signals: list[str] = []
        self.ended = False

    def signalProcess(self, name: str) -> None:  # noqa: N802 (Twisted API)
        self.signals.append(name)

    def end(self, sig: int | None = signal.SIGKILL, code: int | None = None) -> None:
        self.ended = True
        if sig is None and code == 0:
            reason = Failure(ProcessDone(0))
        else:
            reason = Failure(ProcessTerminated(exitCode=code, signal=sig))
        self.protocol.processEnded(reason)


class FakeSpawner:
    def __init__(self) -> None:
        self.spawned: list[dict[str, Any]] = []
        self.processes: list[FakeProcess] = []
        self.fail = 0  # how many of the next spawns raise

    def __call__(self, protocol: Any, executable: str, args: list[str], env: dict[str, str], path: str,
                 childFDs: dict[int, Any]) -> FakeProcess:  # noqa: N803 (Twisted API)
        self.spawned.append({"executable": executable, "args": args, "env": env, "path": path, "fds": childFDs})
        if self.fail:
            self.fail -= 1
            raise OSError(2, "No such file or directory")
        process = FakeProcess(protocol, 1000 + len(self.processes))
        self.processes.append(process)
        return process

    @property
    def last(self) -> FakeProcess:
        return self.processes[-1]


class FakePorts:
    def __init__(self) -> None:
        self.taken: set[int] = set()
        self.next = 20000

    def free(self, port: int) -> bool:
        return port not in self.taken

    def pick(self, exclude: set[int]) -> int:
        while self.next in exclude or self.next in self.taken:
            self.next += 1
        self.next += 1
        return self.next - 1


class FakeProcessTable:
    """Processes by pid: their argv, and which signal ends them."""

    def __init__(self) -> None:
        self.argv: dict[int, list[bytes]] = {}
        self.dies_on: dict[int, int] = {}
        self.sent: list[tuple[int, int]] = []

    def cmdline(self, pid: int) -> list[bytes] | None:
        return self.argv.get(pid)

    def kill(self, pid: int, sig: int) -> None:
        self.sent.append((pid, sig))
        if self.dies_on.get(pid, signal.SIGKILL) == sig or sig == signal.SIGKILL:
            self.argv.pop(pid, None)


class SupervisorCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(EPOCH)
        now = datetime.datetime.fromtimestamp(EPOCH, datetime.UTC)
        self.ca = CertificateAuthority.create(now)
        self.basedir = os.path.abspath(self.mktemp())
        self.store = os.path.join(self.basedir, "store")
        self.spawner = FakeSpawner()
        self.ports = FakePorts()
        self.table = FakeProcessTable()
        self.clients: list[FakeClient] = []
        self.clients_up = True
        self.states: list[tuple[int, VmState]] = []
        self.resyncs = Resyncs()
        self.agents = AgentsService()
        self.agents.startService()
        self.sup = self.supervisor()

    def supervisor(self) -> SsvmSupervisor:
        def client(url: str) -> FakeClient:
            self.clients.append(FakeClient(url))
            self.clients[-1].up = self.clients_up
            return self.clients[-1]

        sup = SsvmSupervisor(self.reactor, self.basedir, self.ca, agents=self.agents,
                             client_material=self.ca.issue_client("cloudd", datetime.datetime.now(datetime.UTC)),
                             spawn=self.spawner, python="/opt/py/bin/python3", on_state=self.on_state,
                             client_factory=client, processes=self.table, ports=self.ports)
        sup.startService()
        return sup

    def on_state(self, vm_id: int, state: VmState) -> None:
        self.states.append((vm_id, state))

    def start(self, vm_id: int = 3, **kw: Any) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(self.sup.start_vm(vm_id, self.store, **kw)))

    def crash_loop(self, rounds: int, run_for: float = 0.0) -> list[float]:
        """Kill the child `rounds` times, each after `run_for` seconds; the delays before each respawn."""
        delays = []
        for _ in range(rounds):
            self.reactor.advance(run_for)
            spawned = len(self.spawner.spawned)
            self.spawner.last.end()
            waited = 0.0
            while len(self.spawner.spawned) == spawned:
                self.reactor.advance(0.5)
                waited += 0.5
                self.assertLess(waited, 1000)
            delays.append(waited)
        return delays


class SupervisorStartTests(SupervisorCase):
    def test_start_spawns_twistd_ssvm(self) -> None:
        """The child runs `twistd -n ssvm` from the given python in its private directory with its own
        certificate, loopback ports, pidfile and logs, and an environment built from scratch."""
        os.environ["CLOUDD_SECRETS_KEY_TEST_ONLY"] = "do-not-leak"
        self.addCleanup(os.environ.pop, "CLOUDD_SECRETS_KEY_TEST_ONLY", None)
        vm = self.start(3, settings="[download]\nmax_redirects = 2\n")
        directory = os.path.join(self.basedir, "systemvms", "s-3-VM")
        self.assertEqual((vm.instance_name, vm.directory, vm.pid, vm.started_at), ("s-3-VM", directory, 1000, EPOCH))
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o700)
        spawned = self.spawner.spawned[0]
        args = spawned["args"]
        self.assertEqual((spawned["executable"], args[:3]), ("/opt/py/bin/python3", ["/opt/py/bin/python3", "-c",
                                                                                      BOOTSTRAP]))
        self.assertTrue(is_ssvm_command([a.encode() for a in args]))

        def option(name: str) -> str:
            return str(args[args.index(name) + 1])

        self.assertEqual(args[args.index("ssvm") - 1], os.path.join(directory, "ssvm.log"))
        self.assertEqual(option("--pidfile"), os.path.join(directory, "twistd.pid"))
        self.assertEqual(option("--basedir"), directory)
        self.assertEqual(option("--store"), self.store)
        self.assertEqual(option("--control-listen"), "tcp:20000:interface=127.0.0.1")
        self.assertEqual(option("--public-listen"), "tcp:20001:interface=127.0.0.1")
        self.assertEqual(option("--public-url"), "http://127.0.0.1:20001")
        with open(option("--config")) as f:
            self.assertIn("max_redirects = 2", f.read())
        self.assertEqual(spawned["path"], directory)
        self.assertEqual(set(spawned["env"]), {"PATH", "PYTHONPATH", "LANG", PARENT_ENV})
        self.assertEqual(spawned["env"][PARENT_ENV], str(os.getpid()))
        self.assertTrue(spawned["env"]["PATH"].startswith("/opt/py/bin:"))
        fds = spawned["fds"]
        self.assertEqual(fds[1], fds[2])
        self.assertTrue(os.path.exists(os.path.join(directory, "console.log")))
        # the child's certificate names 127.0.0.1 and chains to cloudd's authority
        from appliance.tls import TlsMaterial

        material = TlsMaterial.from_directory(option("--tls-dir"))
        self.assertEqual(material.ca_pem, self.ca.certificate_pem())
        self.assertIn("127.0.0.1", str(material.certificate().extensions))
        self.assertEqual(self.sup.endpoint(3), SsvmEndpoint("https://127.0.0.1:20000", "http://127.0.0.1:20001"))
        self.assertIsNone(self.sup.endpoint(4))

    def test_running_when_agent_up(self) -> None:
        """The VM is Starting until its agent's health check is answered, then Running; the agent is
        held by the agents service under the instance name, with the control URL."""
        self.clients_up = False
        vm = self.start(3)
        self.assertEqual(vm.state, VmState.STARTING)
        agent = self.agents.get("s-3-VM")
        assert agent is not None
        self.assertEqual(agent.client.url, "https://127.0.0.1:20000")
        self.assertEqual(agent.state, AgentState.CONNECTING)
        self.reactor.advance(0.5)
        self.assertEqual(agent.state, AgentState.CONNECTING)
        agent.client.up = True
        self.reactor.advance(1)
        self.assertEqual(agent.state, AgentState.UP)
        listed = self.sup.list_vms()
        self.assertEqual([(v.vm_id, v.state, v.agent_state, v.pid) for v in listed],
                         [(3, VmState.RUNNING, AgentState.UP, 1000)])
        self.assertEqual(self.states, [(3, VmState.STARTING), (3, VmState.RUNNING)])

    def test_start_twice_is_one_child(self) -> None:
        """Starting a supervised VM again changes nothing."""
        self.start(3)
        self.start(3)
        self.assertEqual(len(self.spawner.spawned), 1)

    def test_bad_id(self) -> None:
        """Only positive integer ids name a VM (they become a directory name)."""
        for bad in (0, -1, "1/../x", True):
            self.failureResultOf(Deferred.fromCoroutine(self.sup.start_vm(bad, self.store)),  # type: ignore[arg-type]
                                 SupervisorError)
        self.assertEqual(self.spawner.spawned, [])

    def test_ports_kept(self) -> None:
        """A restarted cloudd gives the VM the same ports while they are free, and new ones when not;
        the agent then talks to the new control port."""
        self.start(3)
        d = self.sup.stop_vm(3)
        self.spawner.last.end(None, 0)
        self.successResultOf(d)
        self.start(3)
        self.assertIn("tcp:20000:interface=127.0.0.1", self.spawner.spawned[-1]["args"])
        self.ports.taken.add(20000)
        self.spawner.last.end()
        self.reactor.advance(1)
        self.assertIn("tcp:20002:interface=127.0.0.1", self.spawner.spawned[-1]["args"])
        self.assertIn("tcp:20001:interface=127.0.0.1", self.spawner.spawned[-1]["args"])
        agent = self.agents.get("s-3-VM")
        assert agent is not None
        self.assertEqual(agent.client.url, "https://127.0.0.1:20002")
        self.assertTrue(self.clients[-2].closed)

    def test_reclaims_stale_child(self) -> None:
        """A `twistd ssvm` left running by an earlier cloudd (its pid in the pidfile) is ended before the
        new child starts: SIGTERM, then SIGKILL when it does not end within 5 s."""
        directory = self.sup.directory(3)
        os.makedirs(directory)
        with open(os.path.join(directory, "twistd.pid"), "w") as f:
            f.write("4242\n")
        self.table.argv[4242] = [b"/usr/bin/python3", b"-c", b"...twistd...", b"-n", b"ssvm"]
        self.table.dies_on[4242] = signal.SIGKILL
        d = Deferred.fromCoroutine(self.sup.start_vm(3, self.store))
        self.assertEqual(self.table.sent, [(4242, signal.SIGTERM)])
        self.reactor.advance(4.9)
        self.assertNoResult(d)
        self.assertEqual(self.spawner.spawned, [])
        self.reactor.advance(0.2)
        self.assertEqual(self.table.sent, [(4242, signal.SIGTERM), (4242, signal.SIGKILL)])
        self.successResultOf(d)
        self.assertEqual(len(self.spawner.spawned), 1)
        self.assertFalse(os.path.exists(os.path.join(directory, "twistd.pid")))

    def test_unrelated_pid_not_killed(self) -> None:
        """A pidfile naming a process that is not a twistd ssvm (the pid was reused) is removed, and that
        process left alone."""
        directory = self.sup.directory(3)
        os.makedirs(directory)
        with open(os.path.join(directory, "twistd.pid"), "w") as f:
            f.write("4243\n")
        self.table.argv[4243] = [b"/usr/sbin/sshd", b"-D"]
        self.start(3)
        self.assertEqual(self.table.sent, [])
        self.assertFalse(os.path.exists(os.path.join(directory, "twistd.pid")))
        self.assertEqual(len(self.spawner.spawned), 1)


class SupervisorRestartTests(SupervisorCase):
    def test_restart_backoff(self) -> None:
        """A child that keeps dying is restarted after 1, 2, 4 … seconds, capped at 60, with Error then
        Starting reported each time."""
        self.start(3)
        self.assertEqual(self.crash_loop(9), [1, 2, 4, 8, 16, 32, 60, 60, 60])
        self.assertEqual(self.states[:4], [(3, VmState.STARTING), (3, VmState.ERROR), (3, VmState.STARTING),
                                           (3, VmState.ERROR)])
        vm = self.sup.get(3)
        assert vm is not None
        self.assertEqual((vm.restarts, vm.pid, vm.last_exit), (9, 1009, "signal 9"))

    def test_failed_restart_tried_again(self) -> None:
        """A restart that cannot spawn the child (Error, logged) is tried again on the same backoff."""
        self.start(3)
        self.spawner.fail = 2
        self.spawner.last.end()
        self.reactor.advance(1)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.reactor.advance(1.9)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.reactor.advance(0.1)
        self.assertEqual(len(self.spawner.spawned), 3)
        self.reactor.advance(4)
        self.assertEqual(len(self.spawner.spawned), 4)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)
        self.reactor.advance(0.5)
        vm = self.sup.get(3)
        assert vm is not None
        self.assertEqual((vm.pid, vm.state), (self.spawner.last.pid, VmState.RUNNING))
        self.assertEqual([s for _, s in self.states].count(VmState.ERROR), 3)

    def test_backoff_reset_after_long_run(self) -> None:
        """A child that ran for 60 s or more before dying is restarted after 1 s again."""
        self.start(3)
        self.assertEqual(self.crash_loop(3), [1, 2, 4])
        self.assertEqual(self.crash_loop(2, run_for=60), [1, 1])
        self.assertEqual(self.crash_loop(2), [2, 4])

    def test_restart_makes_agent_lost_then_up_with_resync(self) -> None:
        """When the child dies its agent is Lost at once; the restarted child's answer makes it Up and
        Running again, with a new full resync."""
        self.clients_up = False
        self.start(3, resync=self.resyncs)
        agent = self.agents.get("s-3-VM")
        assert agent is not None
        agent.client.up = True
        self.reactor.advance(0.5)
        self.assertEqual((agent.state, self.resyncs.calls), (AgentState.UP, 1))
        self.spawner.last.end(None, 3)
        agent.client.up = False
        self.assertEqual(agent.state, AgentState.LOST)
        self.assertIn("exit status 3", agent.health.last_error or "")
        self.reactor.advance(1)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.assertEqual(agent.state, AgentState.LOST)
        agent.client.up = True
        self.reactor.advance(0.5)
        self.assertEqual((agent.state, self.resyncs.calls), (AgentState.UP, 2))
        self.assertEqual(self.states, [(3, VmState.STARTING), (3, VmState.RUNNING), (3, VmState.ERROR),
                                       (3, VmState.STARTING), (3, VmState.RUNNING)])


class SupervisorStopTests(SupervisorCase):
    def test_stop_vm_not_restarted(self) -> None:
        """`stop_vm` sends SIGTERM, reports Stopping then Stopped when the child ends, drops the agent,
        and never restarts the child."""
        self.start(3)
        process = self.spawner.last
        d = self.sup.stop_vm(3)
        self.assertEqual(process.signals, ["TERM"])
        self.assertNoResult(d)
        process.end(signal.SIGTERM)
        self.successResultOf(d)
        self.assertEqual(self.states[-2:], [(3, VmState.STOPPING), (3, VmState.STOPPED)])
        self.assertIsNone(self.agents.get("s-3-VM"))
        self.assertTrue(self.clients[0].closed)
        self.reactor.advance(600)
        self.assertEqual(len(self.spawner.spawned), 1)
        self.assertEqual(self.sup.list_vms(), [])

    def test_kill_after_timeout(self) -> None:
        """A child still there 10 s after SIGTERM gets SIGKILL."""
        self.start(3)
        process = self.spawner.last
        d = self.sup.stop_vm(3)
        self.reactor.advance(9.9)
        self.assertEqual(process.signals, ["TERM"])
        self.reactor.advance(0.1)
        self.assertEqual(process.signals, ["TERM", "KILL"])
        process.end(signal.SIGKILL)
        self.successResultOf(d)

    def test_stop_while_waiting_to_restart(self) -> None:
        """A VM stopped between a crash and its restart is Stopped at once and not restarted."""
        self.start(3)
        self.spawner.last.end()
        self.successResultOf(self.sup.stop_vm(3))
        self.reactor.advance(600)
        self.assertEqual(len(self.spawner.spawned), 1)
        self.assertEqual(self.states[-2:], [(3, VmState.STOPPING), (3, VmState.STOPPED)])

    def test_stop_service_stops_all(self) -> None:
        """Stopping the supervisor ends every child and restarts none."""
        self.start(3)
        self.start(4)
        self.assertEqual(len({str(s["args"]) for s in self.spawner.spawned}), 2)
        d = self.sup.stopService()
        self.assertEqual([p.signals for p in self.spawner.processes], [["TERM"], ["TERM"]])
        for p in self.spawner.processes:
            p.end(signal.SIGTERM)
        self.successResultOf(d)
        self.reactor.advance(600)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.assertEqual(list(self.agents), [])

    def test_restart_after_stop(self) -> None:
        """A stopped VM can be started again."""
        self.start(3)
        d = self.sup.stop_vm(3)
        self.spawner.last.end(signal.SIGTERM)
        self.successResultOf(d)
        vm = self.start(3)
        self.assertEqual((vm.state, len(self.spawner.spawned)), (VmState.STARTING, 2))
        self.assertIsNotNone(self.agents.get("s-3-VM"))

