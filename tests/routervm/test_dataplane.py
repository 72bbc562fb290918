"""`DataPlane`: snapshots bind and update DHCP, DNS, metadata and the password server, and apply
the rules one at a time (latest wins); errors are logged, never raised.  Real listeners, moved to
127.0.0.1 with `listen_address`; a fake DHCP bind and a fake rule runner."""

from __future__ import annotations

import copy
import datetime
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import globalLogPublisher
from twisted.names import client
from twisted.trial.unittest import TestCase

from cloudd.pki import CertificateAuthority
from routervm import tap
from routervm.dataplane import DataPlane, Ports
from routervm.dhcp.server import DhcpServerProtocol
from routervm.nat.apply import RuleApplier
from routervm.neighbours import StaticNeighbours
from routervm.records import VmRecord
from routervm.service import RouterService
from routervm.state import RouterState, StateKeeper
from tests.routervm.test_state import UUID1, UUID2, state, vm

MAC1 = "02:00:4c:5e:00:02"
MAC2 = "02:00:4c:5e:00:03"


def loopback_state(generation: int, hostname: str = "web1", forward_port: str = "2222") -> dict[str, Any]:
    """`test_state.state` (guest network eth0, 10.1.1.0/24, router 10.1.1.1) without upstreams,
    with the first VM called `hostname` and the port forward on `forward_port`."""
    document = copy.deepcopy(state(generation, vms=[
        vm(UUID1, MAC1, "10.1.1.50", hostname), vm(UUID2, MAC2, "10.1.1.51", "web2")]))
    document["network"].update(dns_servers=[])
    document["rules"]["port_forwards"][0]["public_ports"] = forward_port
    return document


class FakeListening:
    def __init__(self, proto: DhcpServerProtocol) -> None:
        self.proto = proto
        self.stopped = False

    def stopListening(self) -> None:  # noqa: N802
        self.stopped = True


class SlowRunner:
    """A runner whose runs finish when the test says so."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.waiting: list[Deferred[tuple[int, bytes, bytes]]] = []

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        self.calls.append(stdin)
        d: Deferred[tuple[int, bytes, bytes]] = Deferred()
        self.waiting.append(d)
        return await d

    def finish(self, result: tuple[int, bytes, bytes] = (0, b"", b"")) -> None:
        self.waiting.pop(0).callback(result)


class DataPlaneTests(TestCase):
    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.keeper = StateKeeper(os.path.join(directory, "state.json"), reactor, b"k" * 32)
        self.addCleanup(self.keeper.passwords.clear)
        self.dhcp_binds: list[tuple[int, FakeListening]] = []
        self.runner = SlowRunner()
        self.neighbours = StaticNeighbours({("eth0", "10.1.1.50"): MAC1})
        self.plane = DataPlane(self.keeper, reactor, applier=RuleApplier(self.runner),
                               neighbours=self.neighbours,
                               ports=Ports(dns=0, dhcp=6767, metadata=0, password=0), dhcp_listen=self._listen,
                               listen_address="127.0.0.1")
        self.plane.startService()
        self.addCleanup(self._stop)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def _stop(self) -> Deferred[None]:
        while self.runner.waiting:
            self.runner.finish()
        return self.plane.stopService()

    def _listen(self, port: int, proto: DhcpServerProtocol) -> IListeningPort:
        listening = FakeListening(proto)
        self.dhcp_binds.append((port, listening))
        return listening  # type: ignore[return-value]

    def apply(self, document: dict[str, Any]) -> None:
        self.keeper.replace(RouterState.from_json(document))

    def test_first_snapshot_binds(self) -> None:
        """The first state binds DNS (UDP+TCP), metadata and passwords on the router address and
        DHCP on the interface; it serves the state's records."""
        self.assertIsNone(self.plane.bound)
        self.apply(loopback_state(1))
        self.assertEqual(self.plane.bound, ("eth0", "10.1.1.1", ()))
        self.assertEqual(len(self.plane.listening), 4)
        for port in self.plane.listening:
            self.assertEqual(port.getHost().host, "127.0.0.1")  # type: ignore[attr-defined]
        self.assertEqual([(p, listening.proto.device) for p, listening in self.dhcp_binds], [(6767, "eth0")])
        assert self.plane.metadata is not None and self.plane.dns is not None
        status, _, body = self.plane.metadata.respond("eth0", "GET", "/latest/meta-data/instance-id", "10.1.1.50")
        self.assertEqual((status, body.strip()), (200, UUID1.encode()))
        self.assertIsNotNone(self.plane.dns.table.lookup("web1.cs1cloud.internal"))

    def test_updates_in_place(self) -> None:
        """Later states update every server without rebinding."""
        self.apply(loopback_state(1))
        ports = list(self.plane.listening)
        dhcp = self.plane.dhcp
        self.apply(loopback_state(2, hostname="renamed"))
        self.assertEqual(self.plane.listening, ports)
        self.assertIs(self.plane.dhcp, dhcp)
        assert self.plane.dns is not None and self.plane.metadata is not None and dhcp is not None
        renamed = self.plane.dns.table.lookup("renamed.cs1cloud.internal")
        self.assertEqual(renamed.addresses if renamed is not None else None, ("10.1.1.50",))
        record = self.plane.metadata.index.by_uuid(UUID1)
        assert isinstance(record, VmRecord)
        self.assertEqual(record.hostname, "renamed")
        server = dhcp.server_for("eth0")
        assert server is not None
        self.assertIs(server.logic.table, self.keeper.snapshot.reservations)  # type: ignore[union-attr]

    def test_password_server(self) -> None:
        """The password server uses the keeper's store."""
        self.apply(loopback_state(1))
        self.keeper.set_password(UUID1, "s3cret-pw")
        assert self.plane.password is not None
        headers = {"domu_request": ["send_my_password"]}
        status, _, body = self.plane.password.respond("eth0", "GET", headers, "10.1.1.50")
        self.assertEqual((status, body), (200, b"s3cret-pw"))
        status, _, body = self.plane.password.respond("eth0", "GET", headers, "10.1.1.51")
        self.assertEqual(body, b"saved_password")

    def test_dns_answers(self) -> Deferred[None]:
        """A real query to the bound UDP port gets the VM's address."""
        self.apply(loopback_state(1))
        assert self.plane.dns is not None
        port = self.plane.listening[0].getHost().port  # type: ignore[attr-defined]
        resolver = client.Resolver(servers=[("127.0.0.1", port)], reactor=reactor)

        async def go() -> None:
            answers, _, _ = await resolver.lookupAddress("web1.cs1cloud.internal", timeout=[2])
            self.assertEqual([a.payload.dottedQuad() for a in answers], ["10.1.1.50"])
        return ensureDeferred(go())

    def test_rules_serialised_latest_wins(self) -> None:
        """One apply at a time; of the rules that arrive meanwhile only the latest is applied."""
        self.apply(loopback_state(1))
        self.assertEqual(len(self.runner.calls), 1)
        self.apply(loopback_state(2, forward_port="2223"))
        self.apply(loopback_state(3, forward_port="2224"))
        self.assertEqual(len(self.runner.calls), 1)
        self.runner.finish()
        self.assertEqual(len(self.runner.calls), 2)
        self.assertIn(b"2224", self.runner.calls[1])
        self.runner.finish()
        self.assertTrue(self.plane.idle)
        self.apply(loopback_state(4, forward_port="2224"))  # the same rules: nothing to run
        self.assertEqual(len(self.runner.calls), 2)

    def test_rule_failure_logged(self) -> None:
        """A refused rule set is logged; the daemon goes on and the next state is applied."""
        self.apply(loopback_state(1))
        self.runner.finish((1, b"", b"iptables-restore: line 3 failed"))
        self.assertTrue(any("line 3 failed" in str(e.get("error", "")) for e in self.events))
        self.apply(loopback_state(2, forward_port="2223"))
        self.assertEqual(len(self.runner.calls), 2)

    def test_unbindable_address(self) -> Deferred[None]:
        """When the router address is not this host's (10.1.1.1 here), nothing is bound and no rule
        is applied; the error is logged and a later state that can bind does."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        keeper = StateKeeper(os.path.join(directory, "state.json"), reactor, b"k" * 32)
        runner = SlowRunner()
        plane = DataPlane(keeper, reactor, applier=RuleApplier(runner), neighbours=self.neighbours,
                          ports=Ports(dns=0, dhcp=6767, metadata=0, password=0), dhcp_listen=self._listen)
        plane.startService()
        document = loopback_state(1)
        keeper.replace(RouterState.from_json(document))
        self.assertIsNone(plane.bound)
        self.assertEqual((plane.listening, self.dhcp_binds, runner.calls), ([], [], []))
        self.assertTrue(any(e.get("log_format", "").startswith("data plane: cannot serve") for e in self.events))
        plane.listen_address = "127.0.0.1"  # as if the address had been configured meanwhile
        keeper.replace(RouterState.from_json(loopback_state(2)))
        self.assertEqual(plane.bound, ("eth0", "10.1.1.1", ()))
        self.assertEqual(len(runner.calls), 1)
        runner.finish()
        return plane.stopService()

    def test_stop_unbinds(self) -> Deferred[None]:
        self.apply(loopback_state(1))
        self.runner.finish()
        ports = list(self.plane.listening)
        fake = self.dhcp_binds[0][1]

        async def go() -> None:
            await self.plane.stopService()
            self.assertEqual(self.plane.listening, [])
            self.assertTrue(fake.stopped)
            self.assertIsNone(self.plane.bound)
            for port in ports:
                self.assertFalse(port.connected)  # type: ignore[attr-defined]
            self.plane.startService()  # for the cleanup; the held state binds again
            self.assertIsNotNone(self.plane.bound)
        return ensureDeferred(go())


class TapTests(TestCase):
    def test_flag(self) -> None:
        """The data plane is attached after the state and the control API by default; with
        `--no-data-plane` only those two are there."""
        now = datetime.datetime.now(datetime.UTC)
        basedir = os.path.abspath(self.mktemp())
        CertificateAuthority.create(now).issue_appliance("routervm", ["127.0.0.1"], now).write(
            os.path.join(basedir, "tls"))
        for argv, names in (([], ["writer", "state", "control", "data-plane"]),
                            (["--no-data-plane"], ["writer", "state", "control"])):
            options = tap.Options()
            options.parseOptions(["--basedir", basedir, "--control-listen", "tcp:0:interface=127.0.0.1", *argv])
            service = tap.makeService(options)
            assert isinstance(service, RouterService)
            self.assertEqual([child.name for child in service], names)
            if "data-plane" in names:
                self.assertIsInstance(service.getServiceNamed("data-plane"), DataPlane)
