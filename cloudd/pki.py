"""cloudd's certificate authority for the control channel to its appliances.

The authority's key and certificate live in `<basedir>/pki/` (the key readable by its owner only).
It issues each appliance a serving certificate naming the host names and addresses cloudd reaches
it by, and cloudd itself a client certificate. The extended key usages keep the two apart: an
appliance's certificate cannot open a control connection, and cloudd's cannot serve one.

Certificates are built with `cryptography`, the library pyOpenSSL itself builds on (pyOpenSSL's own
key and certificate construction is deprecated in its favour); the TLS connections themselves are
pyOpenSSL's, through Twisted (`appliance.tls`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.files import atomic_write
from appliance.tls import TlsMaterial

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.pem"
CLIENT_DIR = "client"
AUTHORITY_YEARS = 10
LEAF_DAYS = 825


class PkiError(Exception):
    """The authority's files are missing, unreadable or do not belong together."""


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cloudd"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_alternative_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, now: datetime.datetime, name: str = "cloudd control authority") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=365 * AUTHORITY_YEARS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @classmethod
    def load(cls, directory: str) -> CertificateAuthority:
        try:
            with open(os.path.join(directory, CA_KEY_FILE), "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
            with open(os.path.join(directory, CA_CERT_FILE), "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot load the certificate authority in {directory}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise PkiError(f"the authority's key and certificate in {directory} do not belong together")
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, directory: str, now: datetime.datetime) -> CertificateAuthority:
        """The authority stored in `directory`, created there on first use."""
        if os.path.exists(os.path.join(directory, CA_KEY_FILE)):
            return cls.load(directory)
        authority = cls.create(now)
        authority.save(directory)
        return authority

    def save(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write(os.path.join(directory, CA_KEY_FILE), _key_pem(self.key), 0o600)
        atomic_write(os.path.join(directory, CA_CERT_FILE), self.certificate_pem(), 0o644)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def _issue(self, common_name: str, now: datetime.datetime, usage: x509.ObjectIdentifier,
               hosts: Sequence[str]) -> TlsMaterial:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(common_name)).issuer_name(self.certificate.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(min(now + datetime.timedelta(days=LEAF_DAYS),
                                        self.certificate.not_valid_after_utc))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName(_subject_alternative_names(hosts)),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return TlsMaterial(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM), self.certificate_pem())

    def issue_appliance(self, name: str, hosts: Sequence[str], now: datetime.datetime) -> TlsMaterial:
        """A serving certificate for appliance `name`, valid for each of `hosts` (names or addresses
        cloudd connects to)."""
        if not hosts:
            raise PkiError("an appliance certificate needs at least one host name or address")
        return self._issue(name, now, ExtendedKeyUsageOID.SERVER_AUTH, hosts)

    def issue_client(self, name: str, now: datetime.datetime) -> TlsMaterial:
        """A client certificate for cloudd's side of the control channel."""
        return self._issue(name, now, ExtendedKeyUsageOID.CLIENT_AUTH, ())


def pki_directory(basedir: str) -> str:
    return os.path.join(basedir, "pki")


def client_material(basedir: str, now: datetime.datetime) -> TlsMaterial:
    """cloudd's own client certificate, kept in `<basedir>/pki/client/` and issued on first use."""
    directory = pki_directory(basedir)
    authority = CertificateAuthority.load_or_create(directory, now)
    client_dir = os.path.join(directory, CLIENT_DIR)
    try:
        material = TlsMaterial.from_directory(client_dir)
    except Exception:
        material = authority.issue_client("cloudd", now)
        material.write(client_dir)
        return material
    if material.ca_pem != authority.certificate_pem():
        material = authority.issue_client("cloudd", now)
        material.write(client_dir)
    return material
