"""`AddressApplier`: the public interfaces hold exactly the rules' public addresses (router.md
§6.2), shown with a scripted runner and with the real `ip` in a fresh network namespace (root)."""

from __future__ import annotations

import json
import shutil

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from routervm.nat.addresses import AddressApplier, wanted_addresses
from routervm.nat.apply import ApplyError
from routervm.nat.rules import PublicAddress, RuleError
from routervm.process import RunProcess
from tests.routervm.test_nat_apply import InNamespace, rules, run
from tests.util.netns import IP, Topology

SNAT = {"interface": "eth2", "ip": "203.0.113.10", "prefix_length": 24, "source_nat": True}
EXTRA = {"interface": "eth2", "ip": "203.0.113.11", "prefix_length": 24}
OTHER = {"interface": "eth3", "ip": "198.51.100.7"}


def shown(*cidrs: str) -> bytes:
    """``ip -j -4 addr show`` output for one link holding `cidrs` (and a link-local one)."""
    infos = [{"family": "inet", "local": c.split("/")[0], "prefixlen": int(c.split("/")[1]), "scope": "global"}
             for c in cidrs]
    infos.append({"family": "inet", "local": "169.254.1.1", "prefixlen": 16, "scope": "link"})
    return json.dumps([{"ifname": "eth2", "addr_info": infos}]).encode()


class ScriptedRunner:
    """Answers ``addr show`` from a per-interface table it keeps up to date with the adds and dels
    it sees; records every argv."""

    def __init__(self, held: dict[str, set[str]] | None = None, arping: bool = True) -> None:
        self.held = held or {}
        self.arping = arping
        self.calls: list[list[str]] = []

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        self.calls.append(argv)
        if argv[0] == "arping":
            if not self.arping:
                raise FileNotFoundError("arping: not found")
            return 0, b"", b""
        interface = argv[-1]
        if argv[1:4] == ["-j", "-4", "addr"]:
            return 0, shown(*sorted(self.held.get(interface, ()))), b""
        if argv[1:3] == ["addr", "add"]:
            self.held.setdefault(interface, set()).add(argv[3])
        elif argv[1:3] == ["addr", "del"]:
            self.held[interface].discard(argv[3])
        return 0, b"", b""

    def changes(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] == "arping" or c[1] in ("addr", "link") and c[2] != "show"]


class AddressApplierTests(SynchronousTestCase):
    def test_model(self) -> None:
        """prefix_length defaults to 32, is checked, and is part of the JSON form."""
        self.assertEqual(PublicAddress("eth2", "203.0.113.10").cidr, "203.0.113.10/32")
        self.assertEqual(PublicAddress("eth2", "203.0.113.10", prefix_length=24).to_json()["prefix_length"], 24)
        for bad, reason in ((0, "outside 1-32"), (33, "outside 1-32"), ("24", "expected an integer")):
            with self.assertRaises(RuleError) as caught:
                PublicAddress("eth2", "203.0.113.10", prefix_length=bad)  # type: ignore[arg-type]
            self.assertIn(reason, str(caught.exception))
        with self.assertRaises(RuleError) as caught:
            PublicAddress("eth2", "203.0.113.0", prefix_length=24)
        self.assertIn("network or broadcast", str(caught.exception))
        self.assertEqual(wanted_addresses(rules(public_addresses=[SNAT, EXTRA, OTHER])),
                         {"eth2": frozenset({"203.0.113.10/24", "203.0.113.11/24"}),
                          "eth3": frozenset({"198.51.100.7/32"})})

    def test_adds_missing_and_announces(self) -> None:
        runner = ScriptedRunner({"eth2": {"203.0.113.10/24"}})
        run(AddressApplier(runner).apply(rules(public_addresses=[SNAT, EXTRA])))
        self.assertEqual(runner.changes(), [
            ["ip", "link", "set", "dev", "eth2", "up"],
            ["ip", "addr", "add", "203.0.113.11/24", "brd", "+", "dev", "eth2"],
            ["arping", "-A", "-U", "-c", "1", "-I", "eth2", "203.0.113.11"],
        ])

    def test_authoritative_and_converges(self) -> None:
        """A stray address and a wrong prefix on a public interface are replaced; the same rules
        again cost nothing; a fresh applier (a restart) changes nothing already right."""
        runner = ScriptedRunner({"eth2": {"203.0.113.10/32", "203.0.113.99/24"}})
        applier = AddressApplier(runner)
        run(applier.apply(rules(public_addresses=[SNAT])))
        self.assertEqual(runner.held["eth2"], {"203.0.113.10/24"})
        self.assertEqual(len(runner.changes()), 5)  # two deletions, link up, the add, the ARP
        count = len(runner.calls)
        run(applier.apply(rules(public_addresses=[SNAT])))
        self.assertEqual(len(runner.calls), count)
        run(AddressApplier(runner).apply(rules(public_addresses=[SNAT])))
        self.assertEqual(len(runner.changes()), 5)
        self.assertEqual(runner.held["eth2"], {"203.0.113.10/24"})

    def test_interface_dropped(self) -> None:
        """An interface no longer named by the rules loses what the applier had put there."""
        runner = ScriptedRunner()
        applier = AddressApplier(runner)
        run(applier.apply(rules(public_addresses=[SNAT, OTHER])))
        self.assertEqual(runner.held, {"eth2": {"203.0.113.10/24"}, "eth3": {"198.51.100.7/32"}})
        run(applier.apply(rules(public_addresses=[SNAT])))
        self.assertEqual(runner.held, {"eth2": {"203.0.113.10/24"}, "eth3": set()})

    def test_no_arping(self) -> None:
        """Without arping the addresses are still set, and arping is not tried again."""
        runner = ScriptedRunner(arping=False)
        applier = AddressApplier(runner)
        run(applier.apply(rules(public_addresses=[SNAT])))
        run(applier.apply(rules(public_addresses=[SNAT, EXTRA])))
        self.assertEqual(runner.held["eth2"], {"203.0.113.10/24", "203.0.113.11/24"})
        self.assertEqual(sum(1 for c in runner.calls if c[0] == "arping"), 1)

    def test_failure_retried(self) -> None:
        """A failing `ip` raises with its message, and the next apply tries again."""
        class Failing(ScriptedRunner):
            fail = True

            async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
                if self.fail and argv[1:3] == ["addr", "add"]:
                    return 2, b"", b"RTNETLINK answers: Operation not permitted\n"
                return await super().run(argv, stdin, timeout)

        runner = Failing()
        applier = AddressApplier(runner)
        with self.assertRaises(ApplyError) as caught:
            run(applier.apply(rules(public_addresses=[SNAT])))
        self.assertIn("Operation not permitted", str(caught.exception))
        runner.fail = False
        run(applier.apply(rules(public_addresses=[SNAT])))
        self.assertEqual(runner.held["eth2"], {"203.0.113.10/24"})


class RealAddressTests(TestCase):
    """The real `ip` on a veth public interface in a fresh network namespace (root only)."""

    timeout = 60

    def test_kernel_holds_exactly_the_rules_addresses(self) -> Deferred[None]:
        topo = Topology.for_test(self, guests=[])
        if shutil.which("ip") is None:
            self.skipTest("iproute2's ip is not installed")
        topo.run_in(topo.router, [IP, "link", "add", "eth2", "type", "veth", "peer", "name", "eth2p"])
        topo.run_in(topo.router, [IP, "addr", "add", "192.0.2.9/24", "dev", "eth2"])

        def held() -> set[str]:
            out = topo.run_in(topo.router, [IP, "-j", "-4", "addr", "show", "dev", "eth2"]).stdout
            return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link["addr_info"]}

        async def go() -> None:
            runner = InNamespace(RunProcess(reactor), topo.router)
            await AddressApplier(runner).apply(rules(public_addresses=[SNAT, EXTRA]))
            self.assertEqual(held(), {"203.0.113.10/24", "203.0.113.11/24"})
            state = topo.run_in(topo.router, [IP, "-j", "link", "show", "dev", "eth2"]).stdout
            self.assertNotIn("DOWN", json.loads(state)[0]["flags"])
            self.assertIn("UP", json.loads(state)[0]["flags"])
            # a restarted daemon with fewer addresses
            await AddressApplier(runner).apply(rules(public_addresses=[SNAT]))
            self.assertEqual(held(), {"203.0.113.10/24"})
            # the broadcast address is the subnet's
            show = topo.run_in(topo.router, [IP, "-j", "-4", "addr", "show", "dev", "eth2"]).stdout
            self.assertEqual(json.loads(show)[0]["addr_info"][0]["broadcast"], "203.0.113.255")

        return ensureDeferred(go())

