"""Tests for `routervm.password.server`: the guest password server over the lean responder.

In-process over a `StringTransport` (peer and host addresses set), with `StaticNeighbours` and a
`Clock`; the reference's HTTP/1.0 framing is checked byte for byte.  One test serves a real socket
on 127.0.0.1 to wget (as cloud-set-guest-password and cloud-init call it) and curl.
"""

from __future__ import annotations

import os
import shutil

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from routervm.http import LeanHTTPProtocol
from routervm.neighbours import StaticNeighbours
from routervm.password.server import PasswordFactory, PasswordService
from routervm.password.store import PasswordStore
from routervm.records import Nic, RecordIndex, VmRecord

UUID = "9f1c2b7e-1111-4222-8333-444455556666"
OTHER_UUID = "0b0b0b0b-1111-4222-8333-444455556666"
MAC = "02:00:4c:5e:00:02"
OTHER_MAC = "02:00:4c:5e:00:03"
VM_IP = "10.1.1.50"
OTHER_IP = "10.1.1.51"
ROUTER_IP = "10.1.1.1"
NOW = 1_700_000_000.0
TTL = 3600.0
HEAD = (
    b"HTTP/1.0 200 OK\r\n"
    b"Server: CloudStack Password Server\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    b"Content-type: text/plain\r\n"
    b"Server: CloudStack Password Server\r\n"
    b"\r\n"
)


def records() -> RecordIndex:
    return RecordIndex(
        [
            VmRecord(
                uuid=UUID,
                instance_name="i-2-5-VM",
                hostname="web1",
                nics=(Nic(mac=MAC, ip=VM_IP, default=True, interface="eth0"),),
            ),
            VmRecord(
                uuid=OTHER_UUID,
                instance_name="i-2-6-VM",
                hostname="db1",
                nics=(Nic(mac=OTHER_MAC, ip=OTHER_IP, default=True, interface="eth0"),),
            ),
        ]
    )


def request(value: str | None = None, *extra: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} / {version}", f"Host: {ROUTER_IP}:8080"]
    if value is not None:
        lines.append(f"DomU_Request: {value}")
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class PasswordServerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = PasswordStore(self.clock, TTL)
        self.neighbours = StaticNeighbours(
            {("eth0", VM_IP): MAC, ("eth0", OTHER_IP): OTHER_MAC, ("eth1", VM_IP): MAC}
        )
        self.service = PasswordService(records(), self.neighbours, self.store)
        self.factory = PasswordFactory(self.service, "eth0", self.clock)

    def connect(
        self, peer: str = VM_IP, factory: PasswordFactory | None = None
    ) -> tuple[LeanHTTPProtocol, StringTransport]:
        address = IPv4Address("TCP", peer, 40000)
        protocol = (factory or self.factory).buildProtocol(address)
        transport = StringTransport(hostAddress=IPv4Address("TCP", ROUTER_IP, 8080), peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def ask(self, value: str | None, peer: str = VM_IP, factory: PasswordFactory | None = None) -> bytes:
        """One request on its own connection; the raw answer.  The server always closes."""
        protocol, transport = self.connect(peer, factory)
        protocol.dataReceived(request(value))
        self.assertTrue(transport.disconnecting)
        return transport.value()

    def test_send_my_password_byte_exact(self) -> None:
        """The reference's answer, byte for byte: HTTP/1.0, Server, Date, Content-type, Server,
        the bare password without newline or Content-Length; then the connection closes."""
        self.store.set(UUID, "SekritSquirrel")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"SekritSquirrel")

    def test_fetch_does_not_consume(self) -> None:
        self.store.set(UUID, "SekritSquirrel")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"SekritSquirrel")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"SekritSquirrel")

    def test_repeated_fetch_logged_once(self) -> None:
        """A guest fetching its pending password again and again logs one line (then counts);
        a new password, or the same one after an acknowledgement, is logged again."""
        self.store.set(UUID, "SekritSquirrel")
        with capturedLogs() as events:
            for _ in range(50):
                self.ask("send_my_password")
        served = [e for e in events if "served" in e["log_format"]]
        self.assertEqual([e["uuid"] for e in served], [UUID])
        self.assertEqual(self.service.served_again, 49)
        self.assertNotIn("SekritSquirrel", repr(events))
        with capturedLogs() as events:
            self.store.set(UUID, "second-one")
            self.ask("send_my_password")
            self.ask("saved_password")
            self.store.set(UUID, "second-one")
            self.ask("send_my_password")
        self.assertEqual(len([e for e in events if "served" in e["log_format"]]), 2)

    def test_fetch_ack_then_saved(self) -> None:
        """Fetch → acknowledge (removes it) → a further fetch gets saved_password."""
        self.store.set(UUID, "SekritSquirrel")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"SekritSquirrel")
        self.assertEqual(self.ask("saved_password"), HEAD + b"saved_password")
        self.assertNotIn(UUID, self.store)
        self.assertEqual(self.ask("send_my_password"), HEAD + b"saved_password")

    def test_none_pending(self) -> None:
        self.assertEqual(self.ask("send_my_password"), HEAD + b"saved_password")
        self.assertEqual(self.ask("saved_password"), HEAD + b"saved_password")

    def test_replacement_served_at_once(self) -> None:
        self.store.set(UUID, "first-one")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"first-one")
        self.store.set(UUID, "second-one")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"second-one")

    def test_ttl_expiry(self) -> None:
        """An unacknowledged password is dropped after the TTL on the clock (the Date follows)."""
        self.store.set(UUID, "SekritSquirrel")
        self.clock.advance(TTL - 1)
        self.assertTrue(self.ask("send_my_password").endswith(b"\r\n\r\nSekritSquirrel"))
        self.clock.advance(1)
        answer = self.ask("send_my_password")
        self.assertTrue(answer.endswith(b"\r\n\r\nsaved_password"))
        self.assertIn(b"Date: Tue, 14 Nov 2023 23:13:20 GMT\r\n", answer)

    def test_other_mac_same_ip(self) -> None:
        """The owner's IP from another MAC gets saved_password, and its ACK removes nothing."""
        self.store.set(UUID, "SekritSquirrel")
        self.neighbours.set("eth0", VM_IP, "02:00:4c:5e:00:66")
        self.assertEqual(self.ask("send_my_password"), HEAD + b"saved_password")
        self.assertEqual(self.ask("saved_password"), HEAD + b"saved_password")
        self.assertIn(UUID, self.store)
        self.neighbours.set("eth0", VM_IP, MAC)
        self.assertEqual(self.ask("send_my_password"), HEAD + b"SekritSquirrel")

    def test_other_interface(self) -> None:
        self.store.set(UUID, "SekritSquirrel")
        factory = PasswordFactory(self.service, "eth1", self.clock)
        self.assertEqual(self.ask("send_my_password", factory=factory), HEAD + b"saved_password")

    def test_other_vm_and_unknown_source(self) -> None:
        """Another VM gets its own (none) answer; an unknown source saved_password for a valid
        request and bad_request, as from anyone, for an invalid one."""
        self.store.set(UUID, "SekritSquirrel")
        self.assertEqual(self.ask("send_my_password", peer=OTHER_IP), HEAD + b"saved_password")
        self.assertEqual(self.ask("send_my_password", peer="10.1.1.99"), HEAD + b"saved_password")
        self.assertEqual(self.ask("saved_password", peer="10.1.1.99"), HEAD + b"saved_password")
        self.assertEqual(self.ask("bogus", peer="10.1.1.99"), HEAD + b"bad_request")
        self.assertEqual(self.ask(None, peer="10.1.1.99"), HEAD + b"bad_request")
        self.assertIn(UUID, self.store)

    def test_bad_request(self) -> None:
        """Missing, unknown, differently cased or duplicated DomU_Request: 200 bad_request."""
        self.store.set(UUID, "SekritSquirrel")
        for value in (None, "", "Send_My_Password", "save_password", "send_my_password x"):
            self.assertEqual(self.ask(value), HEAD + b"bad_request", value)
        for dup in (
            request("send_my_password", "DomU_Request: send_my_password"),
            request("send_my_password", "domu_request: saved_password"),
        ):
            protocol, transport = self.connect()
            protocol.dataReceived(dup)
            self.assertEqual(transport.value(), HEAD + b"bad_request")
        self.assertIn(UUID, self.store)

    def test_header_name_any_case(self) -> None:
        self.store.set(UUID, "pw")
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /anything?x HTTP/1.0\r\nDOMU_REQUEST: send_my_password\r\n\r\n")
        self.assertEqual(transport.value(), HEAD + b"pw")

    def test_one_request_per_connection(self) -> None:
        """HTTP/1.0 server: keep-alive and pipelined requests still get one answer and a close."""
        self.store.set(UUID, "pw")
        protocol, transport = self.connect()
        protocol.dataReceived(
            request("send_my_password", "Connection: keep-alive") + request("saved_password")
        )
        self.assertEqual(transport.value(), HEAD + b"pw")
        self.assertTrue(transport.disconnecting)
        self.assertIn(UUID, self.store)

    def test_other_methods(self) -> None:
        """HEAD and others: Python's 501 page; POST: 403; nothing changes."""
        self.store.set(UUID, "pw")
        protocol, transport = self.connect()
        protocol.dataReceived(request("saved_password", method="PUT"))
        answer = transport.value()
        self.assertTrue(
            answer.startswith(
                b"HTTP/1.0 501 Not Implemented\r\nServer: CloudStack Password Server\r\n"
                b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n"
                b"Content-Type: text/html;charset=utf-8\r\nContent-Length: "
            ),
            answer,
        )
        self.assertIn(b"<p>Message: Unsupported method ('PUT').</p>", answer)
        self.assertTrue(transport.disconnecting)
        protocol, transport = self.connect()
        protocol.dataReceived(request("send_my_password", method="HEAD"))
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertIn(b" 501 ", head)
        self.assertEqual(body, b"")
        protocol, transport = self.connect()
        protocol.dataReceived(request("send_my_password", method="POST"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.0 403 Forbidden\r\n"))
        self.assertIn(UUID, self.store)

    def test_malformed(self) -> None:
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET / HTTP/1.1\r\nDomU_Request: send_my_password\r\n\r\n")  # no Host
        self.assertTrue(transport.value().startswith(b"HTTP/1.0 400 Bad Request\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_update(self) -> None:
        """After `update`, a VM removed from the records is nobody."""
        self.store.set(UUID, "pw")
        self.service.update(RecordIndex())
        self.assertEqual(self.ask("send_my_password"), HEAD + b"saved_password")


class RealClientTests(TestCase):
    """wget (as cloud-set-guest-password and cloud-init run it) and curl over a real socket."""

    def setUp(self) -> None:
        self.store = PasswordStore(reactor, TTL)
        self.addCleanup(self.store.clear)
        index = RecordIndex(
            [
                VmRecord(
                    uuid=UUID,
                    instance_name="i-2-5-VM",
                    hostname="web1",
                    nics=(Nic(mac=MAC, ip="127.0.0.1", default=True, interface="lo"),),
                )
            ]
        )
        service = PasswordService(index, StaticNeighbours({("lo", "127.0.0.1"): MAC}), self.store)
        self.port = reactor.listenTCP(0, PasswordFactory(service, "lo", reactor), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        port: int = self.port.getHost().port  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"

    def run_tool(self, *argv: str) -> Deferred[tuple[bytes, bytes, int]]:
        return getProcessOutputAndValue(argv[0], argv[1:], env=dict(os.environ, no_proxy="*"))

    def wget(self, value: str) -> Deferred[tuple[bytes, bytes, int]]:
        wget = shutil.which("wget")
        assert wget is not None
        return self.run_tool(
            wget,
            "--no-proxy",
            "-q",
            "-t",
            "3",
            "-T",
            "20",
            "-O",
            "-",
            "--header",
            f"DomU_Request: {value}",
            self.url,
        )

    @inlineCallbacks
    def test_wget_fetch_ack(self):  # type: ignore[no-untyped-def]
        if shutil.which("wget") is None:
            self.skipTest("wget is not installed")
        self.store.set(UUID, "SekritSquirrel")
        out, err, code = yield self.wget("send_my_password")
        self.assertEqual((out, code), (b"SekritSquirrel", 0), err)
        out, err, code = yield self.wget("saved_password")
        self.assertEqual((out, code), (b"saved_password", 0), err)
        out, err, code = yield self.wget("send_my_password")
        self.assertEqual((out, code), (b"saved_password", 0), err)
        out, err, code = yield self.wget("bogus")
        self.assertEqual((out, code), (b"bad_request", 0), err)

    @inlineCallbacks
    def test_curl(self):  # type: ignore[no-untyped-def]
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl is not installed")
        self.store.set(UUID, "pw-for-curl")
        out, err, code = yield self.run_tool(
            curl,
            "-sS",
            "--noproxy",
            "*",
            "-w",
            "|%{http_code}",
            "-H",
            "DomU_Request: send_my_password",
            self.url,
        )
        self.assertEqual((out, code), (b"pw-for-curl|200", 0), err)
        out, err, code = yield self.run_tool(
            curl, "-sS", "--noproxy", "*", "-w", "|%{http_code}", "-I", self.url
        )
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith(b"HTTP/1.0 501 "), out)
