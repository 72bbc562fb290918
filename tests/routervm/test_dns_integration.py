"""Integration tests of `routervm.dns.server` on 127.0.0.1 with the real reactor: forwarding to a
stub upstream (a twisted.names server started here) over UDP and TCP, and ``dig`` (Debian package
``bind9-dnsutils``) against the server."""

from __future__ import annotations

import os
import shutil
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.utils import getProcessOutputAndValue
from twisted.names import client, dns, error, server
from twisted.trial.unittest import SkipTest, TestCase

from routervm.dns.server import DnsServer
from tests.routervm.test_dns_support import table

OUTSIDE = b"outside.example"
OUTSIDE_IP = "192.0.2.7"


class _StubUpstream:
    """An upstream resolver that knows one name."""

    def query(self, query: dns.Query, timeout: Any = None) -> defer.Deferred[Any]:
        if query.name.name.lower() == OUTSIDE and query.type == dns.A:
            rr = dns.RRHeader(query.name.name, dns.A, dns.IN, 60, dns.Record_A(OUTSIDE_IP, 60), auth=True)
            return defer.succeed(([rr], [], []))
        return defer.fail(error.DomainError(query.name.name))


class ServerOnLoopbackTests(TestCase):
    def listen(self, srv: DnsServer) -> int:
        udp, tcp = srv.listen(0, "127.0.0.1")
        self.addCleanup(udp.stopListening)
        self.addCleanup(tcp.stopListening)
        return int(udp.getHost().port)

    def setUp(self) -> None:
        upstream = server.DNSServerFactory(authorities=[_StubUpstream()])
        udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(upstream), interface="127.0.0.1")
        self.addCleanup(udp.stopListening)
        self.upstream_port = udp.getHost().port

    def start(self, allowed: bool) -> tuple[DnsServer, int]:
        srv = DnsServer(
            table(), upstreams=[("127.0.0.1", self.upstream_port)], is_allowed=lambda host: allowed,
            reactor=reactor,
        )

        assert srv.forwarder is not None
        self.addCleanup(srv.forwarder.close)
        return srv, self.listen(srv)

    async def ask(self, port: int, name: bytes, tcp: bool) -> dns.Message:
        resolver = client.Resolver(servers=[("127.0.0.1", port)])
        queries = [dns.Query(name, dns.A)]
        if not tcp:
            return await resolver.queryUDP(queries, [5])
        try:
            return await resolver.queryTCP(queries, 5)
        finally:
            for protocol in resolver.connections:
                protocol.transport.loseConnection()
            await task.deferLater(reactor, 0.05)

    @defer.inlineCallbacks
    def test_forwarding_allowed(self) -> Any:
        """An allowed client gets the upstream's answer over UDP and TCP; local names too."""
        srv, port = self.start(allowed=True)
        for tcp in (False, True):
            m = yield defer.Deferred.fromCoroutine(self.ask(port, OUTSIDE, tcp))
            self.assertEqual((m.rCode, m.auth, m.recAv), (dns.OK, 0, 1), tcp)
            self.assertEqual([a.payload.dottedQuad() for a in m.answers], [OUTSIDE_IP])
            m = yield defer.Deferred.fromCoroutine(self.ask(port, b"web1.cloud.internal", tcp))
            self.assertEqual([a.payload.dottedQuad() for a in m.answers], ["10.1.1.50"])
            self.assertEqual(m.auth, 1)

    @defer.inlineCallbacks
    def test_forwarding_refused(self) -> Any:
        """A client outside the guest networks gets REFUSED over UDP and TCP."""
        srv, port = self.start(allowed=False)
        for tcp in (False, True):
            m = yield defer.Deferred.fromCoroutine(self.ask(port, OUTSIDE, tcp))
            self.assertEqual((m.rCode, m.answers), (dns.EREFUSED, []), tcp)

    @defer.inlineCallbacks
    def test_dig(self) -> Any:
        """dig resolves A (with and without EDNS), PTR (-x), data-server and a forwarded name, and
        gets NXDOMAIN with the SOA and an OPT record for an unknown name."""
        dig = shutil.which("dig")
        if dig is None:
            raise SkipTest("dig not installed (Debian package bind9-dnsutils)")
        srv, port = self.start(allowed=True)
        cases = [
            (["web1.cloud.internal"], "10.1.1.50"),
            (["+noedns", "WEB1"], "10.1.1.50"),
            (["-x", "10.1.1.50"], "web1.cloud.internal."),
            (["data-server"], "10.1.1.1"),
            (["+noedns", "data-server.cloud.internal"], "10.1.1.1"),
            (["+tcp", "outside.example"], OUTSIDE_IP),
            (["outside.example"], OUTSIDE_IP),
        ]
        for args, expected in cases:
            out, err, code = yield getProcessOutputAndValue(
                dig, ["@127.0.0.1", "-p", str(port), "+short", "+tries=1", "+time=3", *args], env=os.environ
            )
            self.assertEqual((code, out.decode().strip()), (0, expected), (args, err))
        out, err, code = yield getProcessOutputAndValue(
            dig,
            ["@127.0.0.1", "-p", str(port), "+tries=1", "+time=3", "nosuch.cloud.internal"],
            env=os.environ,
        )
        self.assertIn(b"status: NXDOMAIN", out)
        self.assertIn(b"flags: qr aa rd ra", out)
        # dig sends EDNS with a cookie: the answer has our OPT (no cookie, DO clear) and the SOA.
        self.assertIn(b"EDNS: version: 0, flags:; udp: 1232", out)
        self.assertIn(b"AUTHORITY: 1", out)
        self.assertIn(b"data-server.cloud.internal. hostmaster.cloud.internal.", out)
