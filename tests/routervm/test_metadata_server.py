"""Tests for `routervm.http` (the lean HTTP/1.1 responder) and `routervm.metadata.server`.

In-process tests drive the protocol over a `StringTransport` whose peer and host addresses are
set, with a `StaticNeighbours` table and a `Clock`; byte-exact where the framing matters.  One test
serves real sockets on 127.0.0.1 to curl and wget.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Sequence

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from routervm.http import HTTPOptions, LeanHTTPFactory, LeanHTTPProtocol, Reply
from routervm.metadata.content import MetadataView
from routervm.metadata.server import METADATA_HTTP, MetadataFactory, MetadataService
from routervm.neighbours import StaticNeighbours
from routervm.records import Nic, RecordIndex, VmRecord

UUID = "9f1c2b7e-1111-4222-8333-444455556666"
OTHER_UUID = "0b0b0b0b-1111-4222-8333-444455556666"
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop"
KEY_B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob@desk"
USER_DATA = b"\x1f\x8b\x08\x00binary\r\n\x00user-data\xff"
MAC = "02:00:4c:5e:00:02"
OTHER_MAC = "02:00:4c:5e:00:03"
VM_IP = "10.1.1.50"
OTHER_IP = "10.1.1.51"
ROUTER_IP = "10.1.1.1"
NOW = 1_700_000_000.0
DATE = b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"

NIC = Nic(mac=MAC, ip=VM_IP, default=True, interface="eth0")
SECOND_NIC = Nic(mac="02:00:4c:5e:00:09", ip="10.2.2.50", default=False, interface="eth3")
OTHER_NIC = Nic(mac=OTHER_MAC, ip=OTHER_IP, default=True, interface="eth0")

#: cloud-init's CloudStack datasource, in order (router.md §8.1, TESTING.md).
CLOUD_INIT_KEYS = (
    "service-offering",
    "availability-zone",
    "local-ipv4",
    "local-hostname",
    "public-ipv4",
    "public-hostname",
    "instance-id",
    "vm-id",
    "public-keys",
    "cloud-identifier",
    "hypervisor-host-name",
)


def record(nics: tuple[Nic, ...] = (NIC, SECOND_NIC), **changes: object) -> VmRecord:
    values: dict[str, object] = {
        "uuid": UUID,
        "instance_name": "i-2-5-VM",
        "hostname": "web1",
        "nics": nics,
        "service_offering": "Small Instance",
        "availability_zone": "zone1",
        "public_ipv4": "203.0.113.10",
        "public_hostname": "203.0.113.10",
        "cloud_identifier": "0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff",
        "hypervisor_host_name": "kvm-host-07",
        "user_data": USER_DATA,
        "public_keys": (KEY_A, KEY_B),
    }
    values.update(changes)
    return VmRecord(**values)  # type: ignore[arg-type]


def other_record() -> VmRecord:
    return VmRecord(uuid=OTHER_UUID, instance_name="i-2-6-VM", hostname="db1", nics=(OTHER_NIC,))


def neighbours() -> StaticNeighbours:
    return StaticNeighbours(
        {
            ("eth0", VM_IP): MAC,
            ("eth0", OTHER_IP): OTHER_MAC,
            ("eth3", "10.2.2.50"): "02:00:4c:5e:00:09",
            ("eth1", VM_IP): MAC,  # the same guest seen on another interface
        }
    )


def connect(
    factory: LeanHTTPFactory, peer: str = VM_IP, host: str = ROUTER_IP, port: int = 80
) -> tuple[LeanHTTPProtocol, StringTransport]:
    address = IPv4Address("TCP", peer, 40000)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(hostAddress=IPv4Address("TCP", host, port), peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def get(path: str, *extra: str, version: str = "HTTP/1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} {version}", f"Host: {ROUTER_IP}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ok(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        + DATE
        + b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\n"
    + DATE
    + (b"Content-Type: text/plain\r\nContent-Length: 14\r\n\r\n404 Not Found\n")
)


def split_responses(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each Content-Length-framed response in ``data``."""
    out: list[tuple[int, bytes]] = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = next(
            int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length")
        )
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


class MetadataTestMixin:
    def make(self, records: Sequence[VmRecord] | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.service = MetadataService(
            RecordIndex([record(), other_record()] if records is None else records), neighbours()
        )
        self.factory = MetadataFactory(self.service, "eth0", self.clock)


class MetadataServiceTests(MetadataTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.make()

    def test_cloud_init_sequence(self) -> None:
        """cloud-init's requests on one connection: instance-id, user-data, the manifest, then each
        listed key; every one 200, values exactly the `MetadataView` bytes, answered in order."""
        view = MetadataView(record(), NIC)
        protocol, transport = connect(self.factory)
        paths = ["/latest/meta-data/instance-id", "/latest/user-data", "/latest/meta-data/"]
        manifest = view.lookup("/latest/meta-data/")
        assert manifest is not None
        keys = manifest.decode().splitlines()
        self.assertEqual(tuple(keys), CLOUD_INIT_KEYS)
        paths += [f"/latest/meta-data/{key}" for key in keys]
        for path in paths:
            protocol.dataReceived(get(path))
        answers = split_responses(transport.value())
        self.assertEqual([status for status, _ in answers], [200] * len(paths))
        self.assertEqual([body for _, body in answers], [view.lookup(path) for path in paths])
        self.assertEqual(answers[0][1], UUID.encode())
        self.assertEqual(answers[1][1], USER_DATA)
        self.assertFalse(transport.disconnecting)

    def test_user_data_byte_exact(self) -> None:
        """The whole answer to GET /latest/user-data, byte for byte."""
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/user-data"))
        self.assertEqual(transport.value(), ok(USER_DATA))

    def test_legacy_and_keys_paths(self) -> None:
        """cloud-set-guest-sshkey's legacy path and the EC2-style key paths (router.md §3.4)."""
        protocol, transport = connect(self.factory)
        protocol.dataReceived(
            get("/latest/public-keys") + get("/LATEST/Meta-Data/public-keys/1/openssh-key?x=1")
        )
        self.assertEqual(
            split_responses(transport.value()),
            [(200, f"{KEY_A}\n{KEY_B}".encode()), (200, KEY_B.encode())],
        )

    def test_local_ipv4_per_interface(self) -> None:
        """A listener on the second NIC's interface answers with that NIC's address."""
        factory = MetadataFactory(self.service, "eth3", self.clock)
        protocol, transport = connect(factory, peer="10.2.2.50", host="10.2.2.1")
        protocol.dataReceived(get("/latest/meta-data/local-ipv4"))
        self.assertEqual(transport.value(), ok(b"10.2.2.50"))

    def test_other_owner_answers_its_own(self) -> None:
        protocol, transport = connect(self.factory, peer=OTHER_IP)
        protocol.dataReceived(get("/latest/meta-data/instance-id"))
        self.assertEqual(transport.value(), ok(OTHER_UUID.encode()))

    def test_spoofed_ip_other_mac(self) -> None:
        """The VM's IP used from another MAC (the neighbour table says so) gets 404."""
        self.service.neighbours.set("eth0", VM_IP, "02:00:4c:5e:00:66")  # type: ignore[attr-defined]
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/meta-data/instance-id"))
        self.assertEqual(transport.value(), NOT_FOUND)

    def test_other_interface(self) -> None:
        """The right MAC and IP arriving on another guest interface get 404."""
        factory = MetadataFactory(self.service, "eth1", self.clock)
        protocol, transport = connect(factory)
        protocol.dataReceived(get("/latest/meta-data/instance-id"))
        self.assertEqual(transport.value(), NOT_FOUND)

    def test_unknown_source(self) -> None:
        """No neighbour entry, or a neighbour that owns nothing: 404 for every path."""
        for peer in ("10.1.1.77", "::1", "127.0.0.1"):
            protocol, transport = connect(self.factory, peer=peer)
            protocol.dataReceived(get("/latest/meta-data/") + get("/latest/user-data"))
            self.assertEqual(transport.value(), NOT_FOUND * 2)

    def test_unknown_path(self) -> None:
        protocol, transport = connect(self.factory)
        for path in ("/latest/meta-data", "/latest/meta-data/nope", "/", "/latest/../latest/user-data"):
            protocol.dataReceived(get(path))
        self.assertEqual(transport.value(), NOT_FOUND * 4)

    def test_no_user_data(self) -> None:
        """A VM without user data gets 404 for it, which cloud-init accepts."""
        self.make([record(user_data=None)])
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/user-data"))
        self.assertEqual(transport.value(), NOT_FOUND)

    def test_update_invalidates_views(self) -> None:
        """After `update`, answers come from the new records: changed values, removed VMs."""
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/meta-data/local-hostname"))
        self.service.update(RecordIndex([record(hostname="web2"), other_record()]))
        protocol.dataReceived(get("/latest/meta-data/local-hostname"))
        self.service.update(RecordIndex([other_record()]))
        protocol.dataReceived(get("/latest/meta-data/local-hostname"))
        self.assertEqual(
            split_responses(transport.value()), [(200, b"web1"), (200, b"web2"), (404, NOT_FOUND[-14:])]
        )

    def test_views_are_cached(self) -> None:
        first = self.service.view_for("eth0", VM_IP)
        self.assertIs(self.service.view_for("eth0", VM_IP), first)
        self.assertIsNone(self.service.view_for("eth0", "10.1.1.99"))

    def test_head(self) -> None:
        """HEAD gets the GET headers, Content-Length included, and no body."""
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/user-data", method="HEAD"))
        self.assertEqual(transport.value(), ok(USER_DATA)[: -len(USER_DATA)])
        self.assertFalse(transport.disconnecting)

    def test_other_methods(self) -> None:
        """POST, PUT, DELETE … get 405 with Allow; a body-less one keeps the connection."""
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/user-data", method="DELETE"))
        self.assertEqual(
            transport.value(),
            b"HTTP/1.1 405 Method Not Allowed\r\n"
            + DATE
            + b"Allow: GET, HEAD\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 23\r\n\r\n405 Method Not Allowed\n",
        )
        self.assertFalse(transport.disconnecting)
        transport.clear()
        protocol.dataReceived(get("/latest/user-data", "Content-Length: 3", method="POST") + b"abc")
        self.assertEqual(split_responses(transport.value())[0][0], 405)
        self.assertIn(b"Connection: close\r\n", transport.value())
        self.assertTrue(transport.disconnecting)


class FramingTests(MetadataTestMixin, SynchronousTestCase):
    """The lean responder's HTTP handling, seen through the metadata service."""

    def setUp(self) -> None:
        self.make()
        self.protocol, self.transport = connect(self.factory)

    def error(self, status: int, reason: bytes) -> bytes:
        body = b"%d %s\n" % (status, reason)
        return (
            b"HTTP/1.1 %d %s\r\n" % (status, reason)
            + DATE
            + b"Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body
        )

    def test_handler_given_no_fields(self) -> None:
        """The metadata answer depends on no header field, so its listener hands none to the
        service (`METADATA_HTTP`); the framing fields are still obeyed."""
        self.assertEqual(self.factory.options, METADATA_HTTP)
        self.assertEqual(METADATA_HTTP.handler_headers, frozenset())
        seen: list[dict[str, list[str]]] = []
        respond_on = self.service.respond_on

        def spy(interface: str, method: str, path: str, headers: dict[str, list[str]], peer_ip: str) -> Reply:
            seen.append(headers)
            return respond_on(interface, method, path, headers, peer_ip)

        self.service.respond_on = spy  # type: ignore[method-assign]
        self.protocol.dataReceived(get("/latest/meta-data/vm-id", "User-Agent: x", "Connection: close"))
        self.assertEqual(seen, [{}])
        self.assertEqual(split_responses(self.transport.value()), [(200, UUID.encode())])
        self.assertTrue(self.transport.disconnecting)

    def test_pipelined_in_one_segment(self) -> None:
        self.protocol.dataReceived(get("/latest/meta-data/vm-id") + get("/latest/meta-data/local-hostname"))
        self.assertEqual(self.transport.value(), ok(UUID.encode()) + ok(b"web1"))

    def test_byte_by_byte(self) -> None:
        for byte in get("/latest/meta-data/vm-id"):
            self.assertEqual(self.transport.value(), b"")
            self.protocol.dataReceived(bytes([byte]))
        self.assertEqual(self.transport.value(), ok(UUID.encode()))

    def test_bare_lf_and_leading_empty_lines(self) -> None:
        self.protocol.dataReceived(b"\r\nGET /latest/meta-data/vm-id HTTP/1.1\nHost: x\n\n")
        self.assertEqual(self.transport.value(), ok(UUID.encode()))

    def test_connection_close(self) -> None:
        self.protocol.dataReceived(
            get("/latest/meta-data/vm-id", "Connection: close") + get("/latest/user-data")
        )
        self.assertEqual(
            self.transport.value(),
            b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Type: text/plain\r\nContent-Length: 36\r\n"
            b"Connection: close\r\n\r\n" + UUID.encode(),
        )
        self.assertTrue(self.transport.disconnecting)

    def test_http10(self) -> None:
        """HTTP/1.0 closes after the answer unless it asks for keep-alive."""
        self.protocol.dataReceived(
            get("/latest/meta-data/vm-id", "Connection: Keep-Alive", version="HTTP/1.0")
        )
        self.assertEqual(
            self.transport.value(),
            b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Type: text/plain\r\nContent-Length: 36\r\n"
            b"Connection: keep-alive\r\n\r\n" + UUID.encode(),
        )
        self.assertFalse(self.transport.disconnecting)
        self.transport.clear()
        self.protocol.dataReceived(b"GET /latest/meta-data/vm-id HTTP/1.0\r\n\r\n")
        self.assertEqual(self.transport.value(), ok(UUID.encode()))
        self.assertTrue(self.transport.disconnecting)

    def test_absolute_form(self) -> None:
        self.protocol.dataReceived(get("http://10.1.1.1/latest/meta-data/vm-id"))
        self.protocol.dataReceived(get("HTTP://10.1.1.1"))
        self.assertEqual(
            split_responses(self.transport.value()), [(200, UUID.encode()), (404, NOT_FOUND[-14:])]
        )

    def test_malformed(self) -> None:
        """Each malformed head gets 400 and the connection is closed."""
        for head in (
            b"GET /latest/user-data\r\n\r\n",  # HTTP/0.9
            b"GET  /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\n\r\n",  # no Host
            b"GET /latest/user-data HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",
            b"GET latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /latest/\xffuser-data HTTP/1.1\r\nHost: x\r\n\r\n",
            b"G(T /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /latest/user-data HTTP/1.1\r\nHost: x\x00\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            protocol, transport = connect(self.factory)
            protocol.dataReceived(head + get("/latest/user-data"))
            self.assertEqual(transport.value(), self.error(400, b"Bad Request"), head)
            self.assertTrue(transport.disconnecting)

    def test_version(self) -> None:
        self.protocol.dataReceived(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        self.assertEqual(self.transport.value(), self.error(505, b"HTTP Version Not Supported"))

    def test_head_limit(self) -> None:
        """A head over 8 KiB gets 431 as soon as 8 KiB arrived without its end."""
        self.protocol.dataReceived(b"GET /" + b"a" * 8200)
        self.assertEqual(self.transport.value(), self.error(431, b"Request Header Fields Too Large"))
        self.assertTrue(self.transport.disconnecting)

    def test_head_limit_exact(self) -> None:
        """A complete head of exactly 8 KiB is served; one byte more is not."""
        base = get("/latest/meta-data/vm-id", "X-Pad: ")
        pad = 8192 - len(base)
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/meta-data/vm-id", "X-Pad: " + "p" * pad))
        self.assertEqual(transport.value(), ok(UUID.encode()))
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/meta-data/vm-id", "X-Pad: " + "p" * (pad + 1)))
        self.assertEqual(split_responses(transport.value())[0][0], 431)

    def test_header_count_limit(self) -> None:
        extra = [f"X-{i}: {i}" for i in range(99)]
        self.protocol.dataReceived(get("/latest/meta-data/vm-id", *extra))
        self.assertEqual(self.transport.value(), ok(UUID.encode()))
        self.transport.clear()
        self.protocol.dataReceived(get("/latest/meta-data/vm-id", *extra, "X-100: 100"))
        self.assertEqual(self.transport.value(), self.error(431, b"Request Header Fields Too Large"))

    def test_body_on_get(self) -> None:
        for extra in ("Content-Length: 5", "Transfer-Encoding: chunked"):
            protocol, transport = connect(self.factory)
            protocol.dataReceived(get("/latest/user-data", extra) + b"hello")
            self.assertEqual(transport.value(), self.error(413, b"Content Too Large"))
        self.protocol.dataReceived(get("/latest/meta-data/vm-id", "Content-Length: 0"))
        self.assertEqual(self.transport.value(), ok(UUID.encode()))

    def test_idle_timeout(self) -> None:
        """Nothing received for idle_timeout seconds between requests: the connection is aborted;
        activity defers it.  (A head begun is bound by head_timeout: see test_http.)"""
        self.clock.advance(5)
        self.protocol.dataReceived(get("/latest/meta-data/vm-id"))
        self.clock.advance(54)
        self.protocol.dataReceived(get("/latest/meta-data/vm-id"))
        self.transport.clear()
        self.clock.advance(59)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"")
        self.protocol.connectionLost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_timeout_when_closing(self) -> None:
        """A closing connection whose client stops reading is still aborted when idle."""
        self.protocol.dataReceived(get("/latest/user-data", "Connection: close"))
        self.assertTrue(self.transport.disconnecting)
        self.transport.disconnecting = False  # StringTransport: abort is seen as disconnecting
        self.clock.advance(60)
        self.assertTrue(self.transport.disconnecting)

    def test_timer_cancelled_on_close(self) -> None:
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.protocol.connectionLost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_backpressure(self) -> None:
        """While the transport pauses us, queued requests wait and reading stops."""
        self.assertIs(self.transport.producer, self.protocol)
        self.protocol.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.protocol.dataReceived(get("/latest/meta-data/vm-id") + get("/latest/meta-data/local-hostname"))
        self.assertEqual(self.transport.value(), b"")
        self.protocol.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.value(), ok(UUID.encode()) + ok(b"web1"))

    def test_date_follows_clock(self) -> None:
        self.clock.advance(86400)
        protocol, transport = connect(self.factory)
        protocol.dataReceived(get("/latest/meta-data/vm-id"))
        self.assertIn(b"Date: Wed, 15 Nov 2023 22:13:20 GMT\r\n", transport.value())


class BrokenHandler:
    def respond(
        self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
    ) -> Reply:
        raise RuntimeError("boom")


class HandlerTests(SynchronousTestCase):
    def test_handler_exception(self) -> None:
        """A failing handler gives 500 and a closed connection, and the failure is logged."""
        clock = Clock()
        factory = LeanHTTPFactory(BrokenHandler(), clock, HTTPOptions(date=False, server=b"lean"))
        protocol, transport = connect(factory)
        protocol.dataReceived(get("/"))
        self.assertEqual(
            transport.value(),
            b"HTTP/1.1 500 Internal Server Error\r\nServer: lean\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 26\r\nConnection: close\r\n\r\n500 Internal Server Error\n",
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_handler_sees_request(self) -> None:
        seen: list[tuple[str, str, dict[str, list[str]], str, str]] = []

        class Recorder:
            def respond(
                self, method: str, path: str, headers: dict[str, list[str]], peer_ip: str, local_ip: str
            ) -> Reply:
                seen.append((method, path, headers, peer_ip, local_ip))
                return (204, (), b"")

        factory = LeanHTTPFactory(Recorder(), Clock())
        protocol, transport = connect(factory, peer="10.9.9.9", host="10.9.9.1")
        protocol.dataReceived(b"GET /a%20b?q HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:  2 \r\n\r\n")
        self.assertEqual(
            seen, [("GET", "/a%20b?q", {"host": ["h"], "x-a": ["1", "2"]}, "10.9.9.9", "10.9.9.1")]
        )


class RealClientTests(TestCase):
    """curl and wget against a real listener on 127.0.0.1 (the neighbour table maps it)."""

    def setUp(self) -> None:
        nic = Nic(mac=MAC, ip="127.0.0.1", default=True, interface="lo")
        self.record = record(nics=(nic,))
        service = MetadataService(RecordIndex([self.record]), StaticNeighbours({("lo", "127.0.0.1"): MAC}))
        self.port = reactor.listenTCP(0, MetadataFactory(service, "lo", reactor), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        port: int = self.port.getHost().port  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{port}"

    def run_tool(self, *argv: str) -> Deferred[tuple[bytes, bytes, int]]:
        return getProcessOutputAndValue(argv[0], argv[1:], env=dict(os.environ, no_proxy="*"))

    @inlineCallbacks
    def test_curl(self):  # type: ignore[no-untyped-def]
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl is not installed")
        view = MetadataView(self.record)
        # One curl process, one kept-alive connection: cloud-init's whole sequence.
        paths = ["/latest/meta-data/instance-id", "/latest/user-data", "/latest/meta-data/"]
        paths += [f"/latest/meta-data/{key}" for key in CLOUD_INIT_KEYS]
        argv = [curl, "-sS", "--noproxy", "*", "-w", "|%{http_code}|%{num_connects}\\n"]
        for path in paths:
            argv += ["-o", "/dev/null", self.base + path]
        out, err, code = yield self.run_tool(*argv)
        self.assertEqual(code, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual([line.split("|")[1] for line in lines], ["200"] * len(paths))
        self.assertEqual(sum(int(line.split("|")[2]) for line in lines), 1)
        out, err, code = yield self.run_tool(curl, "-sS", "--noproxy", "*", self.base + "/latest/user-data")
        self.assertEqual((out, code), (USER_DATA, 0))
        out, err, code = yield self.run_tool(
            curl, "-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", self.base + "/nope"
        )
        self.assertEqual(out, b"404")
        self.assertEqual(view.lookup("/latest/meta-data/instance-id"), UUID.encode())

    @inlineCallbacks
    def test_large_answer_and_pipelining(self):  # type: ignore[no-untyped-def]
        """1 MiB of user data (more than one socket send takes) arrives whole and in order with
        the small answers requested after it on the same connection."""
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl is not installed")
        big = bytes(range(256)) * 4096
        nic = Nic(mac=MAC, ip="127.0.0.1", default=True, interface="lo")
        service = MetadataService(
            RecordIndex([record(nics=(nic,), user_data=big)]), StaticNeighbours({("lo", "127.0.0.1"): MAC})
        )
        port = reactor.listenTCP(0, MetadataFactory(service, "lo", reactor), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
        argv = [curl, "-sS", "--noproxy", "*", base + "/latest/user-data", base + "/latest/meta-data/vm-id"]
        out, err, code = yield self.run_tool(*argv, base + "/latest/user-data")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, big + UUID.encode() + big)

    def test_partial_send_keeps_order(self) -> Deferred[None]:
        """With a small socket send buffer the 1 MiB answer is only partly sent at once; the rest
        and the pipelined answers after it still arrive whole and in order."""
        big = bytes(range(256)) * 4096
        nic = Nic(mac=MAC, ip="127.0.0.1", default=True, interface="lo")
        service = MetadataService(
            RecordIndex([record(nics=(nic,), user_data=big)]), StaticNeighbours({("lo", "127.0.0.1"): MAC})
        )
        factory = MetadataFactory(service, "lo", reactor)
        build = factory.buildProtocol

        def small_buffer(addr: object) -> LeanHTTPProtocol:
            protocol = build(addr)
            made = protocol.connectionMade

            def connection_made() -> None:
                protocol.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[union-attr]
                made()

            protocol.connectionMade = connection_made  # type: ignore[method-assign]
            return protocol

        factory.buildProtocol = small_buffer  # type: ignore[method-assign]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        received: list[bytes] = []
        finished: Deferred[None] = Deferred()

        class Client(Protocol):
            def connectionMade(self) -> None:
                self.transport.write(  # type: ignore[union-attr]
                    get("/latest/user-data") + get("/latest/meta-data/vm-id", "Connection: close")
                )

            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: object = None) -> None:
                finished.callback(None)

        ClientCreator(reactor, Client).connectTCP("127.0.0.1", port.getHost().port)  # type: ignore[attr-defined]

        def check(_: None) -> None:
            answers = split_responses(b"".join(received))
            self.assertEqual(answers, [(200, big), (200, UUID.encode())])
            self.assertGreater(len(received), 2)

        return finished.addCallback(check)

    @inlineCallbacks
    def test_wget(self):  # type: ignore[no-untyped-def]
        wget = shutil.which("wget")
        if wget is None:
            self.skipTest("wget is not installed")
        out, err, code = yield self.run_tool(
            wget, "-q", "--no-proxy", "-O", "-", self.base + "/latest/public-keys"
        )
        self.assertEqual((out, code), (f"{KEY_A}\n{KEY_B}".encode(), 0), err)
        out, err, code = yield self.run_tool(
            wget, "-q", "--no-proxy", "-O", "-", self.base + "/latest/user-data"
        )
        self.assertEqual((out, code), (USER_DATA, 0), err)
