"""Tests for `routervm.limits`: the connection caps per source and in all, the factory wrapper
that applies them without coming between a protocol and its transport, the descriptor budget,
and the rate-limited log of bad input."""

from __future__ import annotations

import datetime
import os
import resource
import socket
from typing import Any

from twisted.internet import reactor, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cloudd.pki import CertificateAuthority
from routervm.config import Config, ConfigError, load_config
from routervm.dataplane import DNS_READ_BATCH, DataPlane, Ports
from routervm.device import DeviceTCPPort
from routervm.dhcp.server import DhcpServerProtocol
from routervm.http import LeanHTTPFactory, LeanHTTPProtocol, Reply
from routervm.limits import (
    MAX_ACCEPTS,
    RESERVED_DESCRIPTORS,
    BadInputLog,
    BoundedAcceptPort,
    ConnectionLimiter,
    LimitedFactory,
    guest_connection_budget,
    raise_nofile_limit,
)
from routervm.neighbours import StaticNeighbours
from routervm.service import RouterService
from routervm.state import RouterState, StateKeeper
from tests.routervm.test_dataplane import FakeListening, loopback_state


class Lost(Protocol):
    def __init__(self) -> None:
        self.lost: list[object] = []

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        self.lost.append(reason)


def address(host: str) -> IPv4Address:
    return IPv4Address("TCP", host, 40000)


class LimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.limiter = ConnectionLimiter(self.clock, total=5, per_source=2)
        self.factory = LimitedFactory(ServerFactory.forProtocol(Lost), self.limiter)

    def test_per_source_cap(self) -> None:
        """A third connection from one source is refused (None: Twisted closes the socket);
        another source is still served; closing one makes room again."""
        first = self.factory.buildProtocol(address("10.0.0.5"))
        self.assertIsNotNone(self.factory.buildProtocol(address("10.0.0.5")))
        with capturedLogs() as events:
            self.assertIsNone(self.factory.buildProtocol(address("10.0.0.5")))
            self.assertIsNone(self.factory.buildProtocol(address("10.0.0.5")))
        self.assertEqual(len(events), 1)  # logged once, counted twice
        self.assertEqual(self.limiter.refused, 2)
        self.assertIsNotNone(self.factory.buildProtocol(address("10.0.0.6")))
        first.connectionLost(None)
        self.assertEqual(first.lost, [None])  # the protocol's own connectionLost ran
        self.assertEqual(self.limiter.held_by("10.0.0.5"), 1)
        self.assertIsNotNone(self.factory.buildProtocol(address("10.0.0.5")))

    def test_total_cap(self) -> None:
        built = [self.factory.buildProtocol(address(f"10.0.0.{i}")) for i in range(5)]
        self.assertIsNone(self.factory.buildProtocol(address("10.0.0.9")))
        self.assertEqual(self.limiter.open, 5)
        for protocol in built:
            protocol.connectionLost(None)
        self.assertEqual(self.limiter.open, 0)
        self.assertEqual(self.limiter._by_source, {})

    def test_released_once(self) -> None:
        """connectionLost twice (it happens with some transports) releases one connection."""
        protocol = self.factory.buildProtocol(address("10.0.0.5"))
        self.factory.buildProtocol(address("10.0.0.5"))
        protocol.connectionLost(None)
        protocol.connectionLost(None)
        self.assertEqual(self.limiter.held_by("10.0.0.5"), 1)
        self.assertEqual(protocol.lost, [None, None])
        self.assertNotIn("connectionLost", vars(protocol))

    def test_inner_refusal_and_failure_release(self) -> None:
        class Refusing(ServerFactory):
            def buildProtocol(self, addr: object) -> None:  # type: ignore[override]  # noqa: N802
                return None

        class Failing(ServerFactory):
            def buildProtocol(self, addr: object) -> None:  # type: ignore[override]  # noqa: N802
                raise RuntimeError("boom")

        self.assertIsNone(LimitedFactory(Refusing(), self.limiter).buildProtocol(address("10.0.0.5")))
        self.assertRaises(RuntimeError, LimitedFactory(Failing(), self.limiter).buildProtocol, address("10.0.0.5"))
        self.assertEqual(self.limiter.open, 0)

    def test_lean_http_keeps_its_transport(self) -> None:
        """The HTTP protocol is handed back itself (its direct socket writes need the real TCP
        transport) and its timers still end with the connection."""

        class Empty:
            def respond(self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str,
                        local_ip: str) -> Reply:
                return (200, (), b"")

        limiter = ConnectionLimiter(self.clock, total=10, per_source=1)
        factory = limiter.wrap(LeanHTTPFactory(Empty(), self.clock))
        protocol = factory.buildProtocol(address("10.0.0.5"))
        self.assertIsInstance(protocol, LeanHTTPProtocol)
        transport = StringTransport(peerAddress=address("10.0.0.5"))
        protocol.makeConnection(transport)
        self.assertIsNone(factory.buildProtocol(address("10.0.0.5")))
        protocol.connectionLost(Failure(Exception("gone")))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(limiter.open, 0)


class BoundedAcceptPortTests(SynchronousTestCase):
    def test_batch_bounded(self) -> None:
        """Twisted grows its accept batch by 20 after each full one; the port keeps it at
        MAX_ACCEPTS, so a connection flood is accepted a bounded batch per turn of the loop."""
        seen: list[int] = []

        def do_read(port: tcp.Port) -> None:
            seen.append(port.numberAccepts)
            port.numberAccepts += 20  # what Twisted does after a full batch

        self.patch(tcp.Port, "doRead", do_read)
        port = BoundedAcceptPort(0, ServerFactory(), interface="127.0.0.1", reactor=Clock())
        port.numberAccepts = 1000  # grown by a long flood
        for _ in range(5):
            port.doRead()
        self.assertEqual(seen, [MAX_ACCEPTS] * 5)
        self.assertIsInstance(DeviceTCPPort(0, ServerFactory(), "eth0"), BoundedAcceptPort)


class BudgetTests(SynchronousTestCase):
    def test_budget_leaves_reserve(self) -> None:
        self.assertEqual(guest_connection_budget(20000, 64), 20000 - 64 - RESERVED_DESCRIPTORS)
        self.assertEqual(guest_connection_budget(100, 64), 16)

    def test_raise_nofile(self) -> None:
        """The soft limit becomes the hard one (this process keeps it; tests need descriptors)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        raised = raise_nofile_limit()
        self.assertEqual(resource.getrlimit(resource.RLIMIT_NOFILE)[0], raised)
        if hard != resource.RLIM_INFINITY:
            self.assertEqual(raised, hard)
        self.assertGreaterEqual(raised, soft)


class BadInputLogTests(SynchronousTestCase):
    def test_bounded_lines(self) -> None:
        """100,000 bad inputs from 1,000 sources in one interval: max_sources lines, then one
        summary naming the busiest."""
        clock = Clock()
        log = BadInputLog(clock, "DHCP: malformed packet", interval=10, max_sources=4)
        with capturedLogs() as events:
            for i in range(100_000):
                log.note(f"10.0.{i % 1000 // 250}.{i % 250}", "short")
        self.assertEqual(len(events), 4)
        clock.advance(10)
        with capturedLogs() as events:
            log.note("10.9.9.9", "short")
        self.assertEqual(len(events), 2)
        self.assertEqual(events[0]["count"], 100_000 - 4)
        self.assertEqual(events[1]["source"], "10.9.9.9")
        self.assertEqual(log.total, 100_001)

    def test_quiet_interval_logs_nothing(self) -> None:
        clock = Clock()
        log = BadInputLog(clock, "x", interval=10)
        with capturedLogs() as events:
            log.note("a", "r")
            clock.advance(10)
            log.note("a", "r")
        self.assertEqual([e["source"] for e in events], ["a", "a"])


class ConfigTests(SynchronousTestCase):
    def test_limits_and_log(self) -> None:
        config = load_config("[limits]\nconnections_per_source = 8\nmax_connections = 500\n"
                             "control_connections = 16\n[log]\nretention = 3\n")
        self.assertEqual((config.connections_per_source, config.max_connections, config.control_connections,
                          config.log_retention), (8, 500, 16, 3))
        self.assertIsNone(load_config("").max_connections)  # sized from RLIMIT_NOFILE
        with self.assertRaises(ConfigError) as caught:
            load_config("[limits]\nconnections_per_source = 0\nmax_connections = 'x'\nother = 1\n"
                        "[log]\nretention = -1\n")
        for fragment in ("limits.connections_per_source", "limits.max_connections", "limits.other",
                         "log.retention"):
            self.assertIn(fragment, str(caught.exception))

    def test_control_api_budget(self) -> None:
        """The control API's listener counts its connections against its own limiter."""
        now = datetime.datetime.now(datetime.UTC)
        material = CertificateAuthority.create(now).issue_appliance("routervm", ["127.0.0.1"], now)
        svc = RouterService(reactor=Clock(), state_dir=os.path.join(os.path.abspath(self.mktemp()), "state"),
                            tls=material, control_listen="tcp:0:interface=127.0.0.1",
                            config=Config(control_connections=7), key=b"k" * 32)
        control = svc.getServiceNamed("control")
        self.assertIsInstance(control.factory, LimitedFactory)
        self.assertIs(control.factory.limiter, svc.control_limiter)
        self.assertEqual(svc.control_limiter.total, 7)


class DataPlaneLimitTests(TestCase):
    """The data plane's DNS-over-TCP, metadata and password listeners share one limiter (real
    listeners on 127.0.0.1, as in test_dataplane)."""

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.keeper = StateKeeper(os.path.join(directory, "state.json"), reactor, b"k" * 32)
        self.addCleanup(self.keeper.passwords.clear)
        self.limiter = ConnectionLimiter(reactor, total=100, per_source=3)

        def dhcp_listen(port: int, proto: DhcpServerProtocol) -> Any:
            return FakeListening(proto)

        self.plane = DataPlane(self.keeper, reactor, applier=None, neighbours=StaticNeighbours({}),
                               ports=Ports(dns=0, dhcp=6767, metadata=0, password=0), dhcp_listen=dhcp_listen,
                               listen_address="127.0.0.1", limiter=self.limiter)
        self.plane.startService()
        self.addCleanup(self.plane.stopService)
        self.keeper.replace(RouterState.from_json(loopback_state(1)))
        self.clients: list[socket.socket] = []
        self.addCleanup(lambda: [c.close() for c in self.clients])

    async def connect(self, port: int) -> socket.socket:
        client = socket.socket()
        client.setblocking(False)
        self.clients.append(client)
        try:
            client.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        for _ in range(200):  # the reactor accepts it
            await deferLater(reactor, 0.005, lambda: None)
            if self.limiter.open + self.limiter.refused >= len(self.clients):
                break
        return client

    def test_shared_per_source_cap(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._shared_per_source_cap())

    async def _shared_per_source_cap(self) -> None:
        """Three connections from 127.0.0.1 across DNS, metadata and passwords are served; the
        fourth, on any of them, is closed at once; closing one makes room."""
        self.assertTrue(all(isinstance(p.factory, LimitedFactory)  # type: ignore[attr-defined]
                            for p in self.plane.listening if hasattr(p, "factory")))
        tcp_ports = [p.getHost().port for p in self.plane.listening  # type: ignore[attr-defined]
                     if p.getHost().type == "TCP"]  # type: ignore[attr-defined]
        self.assertEqual(len(tcp_ports), 3)  # DNS, metadata, passwords
        for port in self.plane.listening:
            if port.getHost().type == "TCP":  # type: ignore[attr-defined]
                self.assertIsInstance(port, BoundedAcceptPort)
            else:
                self.assertEqual(port.maxThroughput, DNS_READ_BATCH)  # type: ignore[attr-defined]
        for port in tcp_ports:
            await self.connect(port)
        self.assertEqual(self.limiter.open, 3)
        refused = await self.connect(tcp_ports[1])
        self.assertEqual((self.limiter.open, self.limiter.refused), (3, 1))
        refused.setblocking(True)
        refused.settimeout(5)
        self.assertEqual(refused.recv(10), b"")  # closed by the router
        self.clients[0].close()
        for _ in range(200):
            await deferLater(reactor, 0.005, lambda: None)
            if self.limiter.open == 2:
                break
        self.assertEqual(self.limiter.open, 2)
        await self.connect(tcp_ports[2])
        self.assertEqual(self.limiter.open, 3)
