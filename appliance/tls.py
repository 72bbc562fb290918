"""TLS of the control channel between cloudd and an appliance: both sides load a private key, a
certificate and the certificate of cloudd's authority, and each refuses a peer that authority did not
sign.

The appliance side requires a client certificate during the handshake, so a peer without one is cut
off before a single byte of HTTP is read. Certificates carry an extended key usage: the appliances'
are for serving only and cloudd's for connecting only, so one appliance's certificate cannot be used
to drive another appliance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from twisted.internet import ssl
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.compat import nativeString
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from appliance.files import atomic_write

KEY_FILE = "key.pem"
CERT_FILE = "cert.pem"
CA_FILE = "ca.pem"


class TlsMaterialError(Exception):
    """The key, the certificate or the authority's certificate is missing or unusable."""


@dataclass(frozen=True)
class TlsMaterial:
    """PEM texts: this side's private key and certificate, and the authority's certificate."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    @classmethod
    def from_directory(cls, directory: str) -> TlsMaterial:
        """Read `key.pem`, `cert.pem` and `ca.pem` from `directory`."""
        texts = []
        for name in (KEY_FILE, CERT_FILE, CA_FILE):
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    texts.append(f.read())
            except OSError as exc:
                raise TlsMaterialError(f"cannot read {path}: {exc.strerror}") from None
        material = cls(*texts)
        material._own()  # fail now, not at the first handshake
        material.trust_root()
        return material

    def write(self, directory: str) -> None:
        """Store the three files in `directory` (the key readable by its owner only)."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write(os.path.join(directory, KEY_FILE), self.key_pem, 0o600)
        atomic_write(os.path.join(directory, CERT_FILE), self.cert_pem, 0o644)
        atomic_write(os.path.join(directory, CA_FILE), self.ca_pem, 0o644)

    def private_key(self) -> PrivateKeyTypes:
        try:
            return serialization.load_pem_private_key(self.key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise TlsMaterialError(f"the private key does not load: {exc}") from None

    def certificate(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(self.cert_pem)
        except ValueError as exc:
            raise TlsMaterialError(f"the certificate does not load: {exc}") from None

    def trust_root(self) -> IOpenSSLTrustRoot:
        """Trust in the authority's certificate alone."""
        try:
            return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(self.ca_pem)])
        except Exception as exc:
            raise TlsMaterialError(f"the authority's certificate does not load: {exc}") from None

    def _own(self) -> dict[str, Any]:
        key = self.private_key()
        cert = self.certificate()
        if key.public_key() != cert.public_key():
            raise TlsMaterialError("the private key does not belong to the certificate")
        return {"privateKey": key, "certificate": cert}


def server_options(material: TlsMaterial) -> ssl.CertificateOptions:
    """Options for an appliance's control listener: present our certificate, demand the peer's and
    verify it against the authority during the handshake (a trust root implies both)."""
    return ssl.CertificateOptions(trustRoot=material.trust_root(), raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
                                  **material._own())


@implementer(IPolicyForHTTPS)
class ControlClientPolicy:
    """`twisted.web.client.Agent` policy for cloudd's side: trust only the authority, present our
    client certificate, and check the appliance's name or address in its certificate."""

    def __init__(self, material: TlsMaterial) -> None:
        self._trust = material.trust_root()
        self._own = material._own()

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:  # noqa: N802
        return ssl.optionsForClientTLS(nativeString(hostname), trustRoot=self._trust,
                                       extraCertificateOptions=dict(self._own,
                                                                    raiseMinimumTo=ssl.TLSVersion.TLSv1_2))
