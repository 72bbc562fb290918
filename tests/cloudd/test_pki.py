"""cloudd's certificate authority: what it issues, where it keeps it, and that OpenSSL agrees."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
import subprocess

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.trial.unittest import SynchronousTestCase

from appliance.tls import TlsMaterial
from cloudd import cli
from cloudd.pki import CertificateAuthority, PkiError, client_material, pki_directory

NOW = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)


class AuthorityTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        self.ca = CertificateAuthority.load_or_create(self.dir, NOW)

    def test_stored(self) -> None:
        """The authority's key is stored readable by its owner only, and loading gives the same
        authority back."""
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, "ca.key")).st_mode), 0o600)
        again = CertificateAuthority.load_or_create(self.dir, NOW)
        self.assertEqual(again.certificate, self.ca.certificate)
        constraints = self.ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        self.assertTrue(constraints.ca)

    def test_mismatched(self) -> None:
        """A key that does not belong to the certificate is refused."""
        other = CertificateAuthority.create(NOW)
        with open(os.path.join(self.dir, "ca.pem"), "wb") as f:
            f.write(other.certificate_pem())
        self.assertRaises(PkiError, CertificateAuthority.load, self.dir)

    def test_appliance(self) -> None:
        """An appliance certificate is for serving only and names every host given."""
        material = self.ca.issue_appliance("ssvm-1", ["127.0.0.1", "ssvm-1.cloud.internal"], NOW)
        cert = material.certificate()
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.SERVER_AUTH])
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.IPAddress), [ipaddress.ip_address("127.0.0.1")])
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["ssvm-1.cloud.internal"])
        self.assertEqual(cert.issuer, self.ca.certificate.subject)
        self.assertRaises(PkiError, self.ca.issue_appliance, "x", [], NOW)

    def test_client(self) -> None:
        """cloudd's certificate is for connecting only."""
        cert = self.ca.issue_client("cloudd", NOW).certificate()
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.CLIENT_AUTH])

    def test_openssl_verifies(self) -> None:
        """`openssl verify` accepts each issued certificate for its own purpose only."""
        out = self.mktemp()
        os.makedirs(out)
        server = os.path.join(out, "server")
        client = os.path.join(out, "client")
        self.ca.issue_appliance("ssvm", ["127.0.0.1"], NOW).write(server)
        self.ca.issue_client("cloudd", NOW).write(client)
        ca = os.path.join(server, "ca.pem")
        attime = ["-attime", str(int(NOW.timestamp()) + 60)]

        def verify(path: str, purpose: str) -> int:
            return subprocess.run(["openssl", "verify", *attime, "-purpose", purpose, "-CAfile", ca,
                                   os.path.join(path, "cert.pem")], capture_output=True).returncode

        self.assertEqual(verify(server, "sslserver"), 0)
        self.assertNotEqual(verify(server, "sslclient"), 0)
        self.assertEqual(verify(client, "sslclient"), 0)
        self.assertNotEqual(verify(client, "sslserver"), 0)


class ClientMaterialTests(SynchronousTestCase):
    def test_issued_once(self) -> None:
        """cloudd's client material is issued on first use and then reused; it loads as TLS material."""
        basedir = self.mktemp()
        first = client_material(basedir, NOW)
        second = client_material(basedir, NOW)
        self.assertEqual(first, second)
        loaded = TlsMaterial.from_directory(os.path.join(pki_directory(basedir), "client"))
        self.assertEqual(loaded, first)
        key = os.path.join(pki_directory(basedir), "client", "key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)


class CommandLineTests(SynchronousTestCase):
    def test_appliance_cert(self) -> None:
        """`cloudd appliance-cert` writes an appliance's three files from the base directory's authority."""
        basedir, out = self.mktemp(), self.mktemp()
        argv = ["appliance-cert", "--basedir", basedir, "--name", "ssvm", "--host", "127.0.0.1", "--out", out]
        self.assertEqual(cli.main(argv), 0)
        material = TlsMaterial.from_directory(out)
        self.assertEqual(material.ca_pem, CertificateAuthority.load(pki_directory(basedir)).certificate_pem())
        self.assertEqual(cli.main(["appliance-cert", "--basedir", basedir, "--out", out]), 2)
