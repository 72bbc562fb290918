"""The ssvm supervisor with real `twistd -n ssvm` children on loopback: the agent reaches the child
over mutual TLS with a certificate from a real authority, a `kill -9` of the child is followed by a
restart and a new resync, a stop leaves no process behind, a stale child recorded in the pidfile is
ended before a new one starts, and a child does not outlive a cloudd killed with SIGKILL."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from cloudd.agents.service import AgentsService, AgentState, ApplianceAgent
from cloudd.agents.supervisor import LinuxProcessTable, SsvmSupervisor, VmState, is_ssvm_command
from cloudd.pki import CertificateAuthority
from tests.util.daemon import ROOT


def alive(pid: int) -> bool:
    return LinuxProcessTable().cmdline(pid) is not None


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def kill_if_alive(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await deferLater(reactor, 0.05, lambda: None)


class SupervisorCase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.basedir = os.path.abspath(self.mktemp())
        self.ca = CertificateAuthority.load_or_create(os.path.join(self.basedir, "pki"), now)
        self.client_material = self.ca.issue_client("cloudd", now)
        self.store = os.path.join(self.basedir, "store")
        self.agents = AgentsService()
        self.agents.startService()
        self.addCleanup(self.agents.stopService)
        self.states: list[VmState] = []
        self.resyncs = 0
        self.supervisor = SsvmSupervisor(reactor, self.basedir, self.ca, agents=self.agents,
                                         client_material=self.client_material, agent_interval=0.5,
                                         on_state=lambda vm_id, state: self.states.append(state))
        self.supervisor.startService()
        self.addCleanup(self._stop_supervisor)

    def _stop_supervisor(self) -> Deferred[None] | None:
        if self.supervisor.running:
            return self.supervisor.stopService()
        return None

    async def resync(self, agent: ApplianceAgent[Any]) -> None:
        # what the owner does: read the appliance's state back through the agent
        await agent.call(lambda client: client.downloads())
        self.resyncs += 1


class SupervisedChildTests(SupervisorCase):
    def test_kill_restart_stop(self) -> Deferred[None]:
        """The child answers the agent's health check over mutual TLS (Running, resynced once); after
        `kill -9` it is restarted, the agent goes Lost then Up and resyncs again; stopping the
        supervisor ends the child and leaves no process."""
        return ensureDeferred(self._kill_restart_stop())

    async def _kill_restart_stop(self) -> None:
        vm = await self.supervisor.start_vm(7, self.store, resync=self.resync)
        self.assertEqual(vm.instance_name, "s-7-VM")
        agent = self.agents.get("s-7-VM")
        assert agent is not None
        await wait_for(lambda: agent.state is AgentState.UP and self.resyncs == 1, what="agent Up")
        answer = agent.health.last_answer  # a dict, or the typed `Health` message
        self.assertEqual(answer["service"] if isinstance(answer, dict) else answer.service, "ssvm")
        first = self.supervisor.get(7)
        assert first is not None and first.pid is not None
        self.assertEqual(first.state, VmState.RUNNING)
        argv = LinuxProcessTable().cmdline(first.pid)
        self.assertTrue(argv and is_ssvm_command(argv), argv)
        directory = self.supervisor.directory(7)
        with open(os.path.join(directory, "twistd.pid")) as f:
            self.assertEqual(int(f.read()), first.pid)

        os.kill(first.pid, signal.SIGKILL)
        await wait_for(lambda: agent.state is AgentState.LOST, what="agent Lost")
        await wait_for(lambda: agent.state is AgentState.UP and self.resyncs == 2, what="agent Up again")
        second = self.supervisor.get(7)
        assert second is not None and second.pid is not None
        self.assertNotEqual(second.pid, first.pid)
        self.assertFalse(alive(first.pid))
        self.assertEqual((second.state, second.restarts, second.last_exit), (VmState.RUNNING, 1, "signal 9"))
        self.assertEqual((second.control_url, second.public_url), (first.control_url, first.public_url))
        self.assertEqual(self.states, [VmState.STARTING, VmState.RUNNING, VmState.ERROR, VmState.STARTING,
                                       VmState.RUNNING])

        await self.supervisor.stopService()
        self.assertFalse(alive(second.pid))
        self.assertEqual(self.states[-2:], [VmState.STOPPING, VmState.STOPPED])
        self.assertFalse(os.path.exists(os.path.join(directory, "twistd.pid")))
        self.assertIsNone(self.agents.get("s-7-VM"))
        with open(os.path.join(directory, "ssvm.log")) as f:
            self.assertIn("/health", f.read())

    def test_stale_child_reclaimed(self) -> Deferred[None]:
        """A `twistd ssvm` process recorded in the VM's pidfile (left by a cloudd that died) is ended
        before the new child starts."""
        return ensureDeferred(self._stale())

    async def _stale(self) -> None:
        directory = self.supervisor.directory(8)
        os.makedirs(directory, mode=0o700)
        stale = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # twistd", "-n", "ssvm"])
        self.addCleanup(stop_process, stale)
        with open(os.path.join(directory, "twistd.pid"), "w") as f:
            f.write(f"{stale.pid}\n")
        await self.supervisor.start_vm(8, self.store)
        self.assertEqual(stale.wait(10), -signal.SIGTERM)
        await wait_for(lambda: self.supervisor.get(8) and self.supervisor.get(8).state is VmState.RUNNING,  # type: ignore[union-attr]
                       what="new child Running")


CLOUDD_STANDIN = """
import datetime, json, os, sys
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from cloudd.agents.service import AgentsService
from cloudd.agents.supervisor import SsvmSupervisor
from cloudd.pki import CertificateAuthority

basedir = sys.argv[1]
now = datetime.datetime.now(datetime.UTC)
ca = CertificateAuthority.load_or_create(os.path.join(basedir, "pki"), now)
agents = AgentsService()
agents.startService()
supervisor = SsvmSupervisor(reactor, basedir, ca, agents=agents, client_material=ca.issue_client("cloudd", now))

async def main():
    vm = await supervisor.start_vm(9, os.path.join(basedir, "store"))
    print(json.dumps({"pid": vm.pid}), flush=True)

reactor.callWhenRunning(lambda: ensureDeferred(main()))
reactor.run()
"""


class OrphanTests(TestCase):
    timeout = 60

    def test_child_ends_with_cloudd(self) -> None:
        """A child whose cloudd is killed with SIGKILL ends too (it asked the kernel for SIGTERM when
        its parent dies)."""
        basedir = os.path.abspath(self.mktemp())
        os.makedirs(basedir)
        env = dict(os.environ, PYTHONPATH=ROOT)
        standin = subprocess.Popen([sys.executable, "-c", CLOUDD_STANDIN, basedir], stdout=subprocess.PIPE, env=env)
        self.addCleanup(stop_process, standin)
        assert standin.stdout is not None
        line = standin.stdout.readline()
        child = int(json.loads(line)["pid"])
        self.addCleanup(kill_if_alive, child)
        pidfile = os.path.join(basedir, "systemvms", "s-9-VM", "twistd.pid")
        logfile = os.path.join(basedir, "systemvms", "s-9-VM", "ssvm.log")

        def serving() -> bool:
            # the reactor runs (its signal handlers are in place): a SIGTERM before that ends twistd at
            # once, leaving its pidfile for the supervisor's next start to reclaim
            try:
                with open(logfile, errors="replace") as f:
                    return "Starting factory" in f.read()
            except FileNotFoundError:
                return False

        deadline = time.monotonic() + 40
        while not (os.path.exists(pidfile) and serving()) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(pidfile) and serving(), "the ssvm child did not start serving")
        self.assertTrue(alive(child))
        standin.kill()
        standin.wait()
        deadline = time.monotonic() + 20
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(child), "the ssvm child outlived its cloudd")
        # its pidfile may stay when the signal lands while twistd is still starting up; the supervisor's next
        # start reclaims it (SupervisedChildTests.test_stale_child_reclaimed)
