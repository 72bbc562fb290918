"""`RuleApplier`: one `iptables-restore` run per changed document (fake runner), and the real tool
in a fresh network namespace (root), where a restart re-applying the same rules changes nothing."""

from __future__ import annotations

import re
import shutil
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from routervm.nat.apply import ApplyError, RuleApplier
from routervm.nat.render import render
from routervm.nat.rules import RouterRules
from routervm.process import ProcessTimeout, RunProcess
from routervm.state import RouterState
from tests.routervm.test_state import state
from tests.util.netns import IP, Topology


def rules(**changes: Any) -> RouterRules:
    document = state(1)
    document["rules"].update(changes)
    parsed = RouterState.from_json(document).rules
    assert parsed is not None
    return parsed


class FakeRunner:
    def __init__(self, result: tuple[int, bytes, bytes] = (0, b"", b"")) -> None:
        self.result = result
        self.calls: list[tuple[list[str], bytes]] = []

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        self.calls.append((argv, stdin))
        return self.result


def run(coro: Any) -> Any:
    d = ensureDeferred(coro)
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the fake runner never waits"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


class ApplierTests(SynchronousTestCase):
    def test_whole_document_on_stdin(self) -> None:
        """The rendered document goes whole to iptables-restore's stdin; nothing on the argv."""
        runner = FakeRunner()
        applier = RuleApplier(runner, iptables_restore="/sbin/iptables-restore")
        run(applier.apply(rules()))
        self.assertEqual(runner.calls, [(["/sbin/iptables-restore"], render(rules()).encode())])
        self.assertIn("COMMIT", runner.calls[0][1].decode())

    def test_same_text_skipped(self) -> None:
        """The same rules again are not re-applied; different rules are."""
        runner = FakeRunner()
        applier = RuleApplier(runner)
        run(applier.apply(rules()))
        run(applier.apply(rules()))
        self.assertEqual(len(runner.calls), 1)
        run(applier.apply(rules(public_addresses=[{"interface": "eth2", "ip": "203.0.113.10",
                                                     "source_nat": True},
                                                    {"interface": "eth2", "ip": "203.0.113.11"}])))
        self.assertEqual(len(runner.calls), 2)

    def test_failure(self) -> None:
        """A refused document raises with the exit code and stderr, and is tried again next time."""
        runner = FakeRunner((2, b"", b"iptables-restore: line 7 failed\n"))
        applier = RuleApplier(runner)
        with self.assertRaises(ApplyError) as caught:
            run(applier.apply(rules()))
        self.assertIn("exit code 2", str(caught.exception))
        self.assertIn("line 7 failed", str(caught.exception))
        runner.result = (0, b"", b"")
        run(applier.apply(rules()))
        self.assertEqual(len(runner.calls), 2)
        self.assertEqual(applier.applied, render(rules()))

    def test_runner_error(self) -> None:
        class Broken:
            async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
                raise FileNotFoundError("iptables-restore: not found")

        with self.assertRaises(ApplyError) as caught:
            run(RuleApplier(Broken()).apply(rules()))
        self.assertIn("could not run", str(caught.exception))


class RunProcessTests(TestCase):
    """`RunProcess` against real short-lived children."""

    def test_output_and_code(self) -> Deferred[None]:
        async def go() -> None:
            runner = RunProcess(reactor, env={"PATH": "/usr/bin:/bin"})
            code, out, err = await runner.run(
                [sys.executable, "-c", "import os,sys; d=sys.stdin.read(); print(d.upper()); "
                 "print(sorted(os.environ), file=sys.stderr); sys.exit(3)"], stdin=b"abc")
            self.assertEqual((code, out.strip()), (3, b"ABC"))
            self.assertIn(b"'PATH'", err)
            self.assertNotIn(b"HOME", err)
        return ensureDeferred(go())

    def test_timeout(self) -> Deferred[None]:
        async def go() -> None:
            with self.assertRaises(ProcessTimeout):
                await RunProcess(reactor).run(["sleep", "30"], timeout=0.2)
        return ensureDeferred(go())

    def test_missing(self) -> Deferred[None]:
        async def go() -> None:
            with self.assertRaises(FileNotFoundError):
                await RunProcess(reactor).run(["no-such-tool-here"])
        return ensureDeferred(go())


class InNamespace:
    """A runner that runs every argv inside network namespace `ns`."""

    def __init__(self, runner: RunProcess, ns: str) -> None:
        self.runner = runner
        self.ns = ns

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        return await self.runner.run([IP, "netns", "exec", self.ns, *argv], stdin=stdin, timeout=timeout)


def saved(topo: Topology) -> str:
    """iptables-save of the router namespace without its comment lines."""
    text = topo.run_in(topo.router, ["iptables-save"]).stdout
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


class RealApplyTests(TestCase):
    """iptables-restore in a fresh network namespace (root only)."""

    timeout = 60

    def test_restart_applies_the_same(self) -> Deferred[None]:
        """After applying, iptables-save shows our chains; a fresh applier (a restarted daemon)
        applying the same rules leaves iptables-save byte for byte the same."""
        topo = Topology.for_test(self, guests=[])
        if shutil.which("iptables-restore") is None or shutil.which("iptables-save") is None:
            self.skipTest("iptables-restore/iptables-save are not installed")

        async def go() -> None:
            runner = InNamespace(RunProcess(reactor), topo.router)
            await RuleApplier(runner).apply(rules())
            first = saved(topo)
            self.assertIn("-A POSTROUTING", first)
            self.assertIn("203.0.113.10", first)
            self.assertRegex(first, re.compile(r"DNAT.*10\.1\.1\.50:22"))
            await RuleApplier(runner).apply(rules())
            self.assertEqual(saved(topo), first)
        return ensureDeferred(go())
