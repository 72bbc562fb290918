"""CheckedEndpoint: resolution once, every address checked before any connection, connection to the
checked IP, and https with the certificate checked against the host name (real TLS on 127.0.0.1)."""

from __future__ import annotations

import datetime
import os
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, CertificateOptions, trustRootFromCertificates
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase
from twisted.web.client import BrowserLikePolicyForHTTPS

from ssvm.download.endpoint import CheckedEndpointFactory
from ssvm.download.errors import AddressRefused, ResolutionFailed, URLRefused
from ssvm.download.manager import DownloadManager
from ssvm.download.policy import AddressPolicy
from tests.ssvm import images
from tests.ssvm.httpserver import FileServer, LoopbackOnlyReactor, StaticResolver


def certificate(host: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate for `host`, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


class EndpointTests(TestCase):
    def setUp(self) -> None:
        self.guard = LoopbackOnlyReactor(reactor)

    def factory(self, table: dict[str, list[str]], allowed: tuple[str, ...] = ("127.0.0.1/32",)) -> Any:
        self.resolver = StaticResolver(table)
        return CheckedEndpointFactory(self.guard, AddressPolicy(allowed), resolver=self.resolver)

    async def test_every_address_is_checked(self) -> None:
        """One refused address among good ones refuses the whole name, before any connection."""
        factory = self.factory({"mixed.test": ["127.0.0.1", "10.0.0.5"]})
        with self.assertRaises(AddressRefused) as caught:
            await factory.endpoint("http", "mixed.test", 80).connect(Factory.forProtocol(Protocol))
        self.assertEqual(str(caught.exception), "refused: mixed.test resolves to 10.0.0.5 (private)")
        self.assertEqual(self.guard.connections, [])

    async def test_literal_needs_no_resolution(self) -> None:
        factory = self.factory({})
        with self.assertRaises(AddressRefused) as caught:
            await factory.endpoint("http", "169.254.169.254", 80).resolve()
        self.assertEqual(str(caught.exception), "refused: 169.254.169.254 (link-local)")
        self.assertEqual(await factory.endpoint("http", "127.0.0.1", 80).resolve(), ["127.0.0.1"])
        self.assertEqual(self.resolver.asked, [])

    async def test_resolves_once_and_connects_to_the_checked_address(self) -> None:
        """The connection goes to the IP that was checked; the name is not resolved again."""
        listening = cast(Any, reactor).listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        factory = self.factory({"good.test": ["127.0.0.1"]})
        protocol = await factory.endpoint("http", "good.test", listening.getHost().port).connect(
            Factory.forProtocol(Protocol))
        protocol.transport.abortConnection()
        self.assertEqual(self.resolver.asked, ["good.test"])
        self.assertEqual(self.guard.connections, ["127.0.0.1"])

    async def test_no_address(self) -> None:
        with self.assertRaises(ResolutionFailed):
            await self.factory({}).endpoint("http", "nothing.test", 80).resolve()

    def test_scheme(self) -> None:
        with self.assertRaises(URLRefused):
            self.factory({}).endpoint("ftp", "h", 21)


class HTTPSTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=2, name="test-https")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.server = FileServer(reactor)
        self.data = images.qcow2(2**30)
        self.server.add("/a.qcow2", self.data)

    def serve_tls(self, host: str) -> tuple[int, IOpenSSLTrustRoot]:
        cert, key = certificate(host)
        options = CertificateOptions(privateKey=cast(Any, key), certificate=cast(Any, cert))
        port = cast(Any, reactor).listenSSL(0, self.server.site(), options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        return port.getHost().port, trustRootFromCertificates([Certificate.loadPEM(pem)])

    def manager(self, trust: IOpenSSLTrustRoot) -> DownloadManager:
        manager = DownloadManager(self.root, os.path.abspath(self.mktemp()), reactor, self.pool,
                                  AddressPolicy(["127.0.0.1/32"]), retries=0,
                                  resolver=StaticResolver({"images.example.test": ["127.0.0.1"]}),
                                  tls=BrowserLikePolicyForHTTPS(trustRoot=trust))
        manager.startService()
        self.addCleanup(manager.stopService)
        return manager

    async def test_https_checks_the_host_name(self) -> None:
        """https to a name resolved to a checked IP: the certificate is verified for the name."""
        port, trust = self.serve_tls("images.example.test")
        manager = self.manager(trust)
        manager.start("d1", {"url": f"https://images.example.test:{port}/a.qcow2", "format": "qcow2",
                             "account_id": 1, "template_id": 2, "unique_name": "u"})
        status = await manager.wait("d1")
        assert status is not None
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(self.server.requests[0].headers["host"], f"images.example.test:{port}")

    async def test_https_wrong_name_fails(self) -> None:
        port, trust = self.serve_tls("other.example.test")
        manager = self.manager(trust)
        manager.start("d1", {"url": f"https://images.example.test:{port}/a.qcow2", "format": "qcow2",
                             "account_id": 1, "template_id": 2, "unique_name": "u"})
        status = await manager.wait("d1")
        assert status is not None
        self.assertEqual(status["state"], "ERROR", status)
        self.assertIn(f"request to images.example.test:{port} failed", status["error"])
        self.assertEqual(self.server.requests, [])
