"""A per-run certificate authority and per-workload certificates with SPIFFE IDs.

Each identity ``spiffe://cluster.local/ns/NS/sa/SA`` gets a certificate with that URI
SAN (as Istio issues them) and the DNS SAN ``SA.NS.sa.cluster.local``, which HAProxy's
`verifyhost` can check, and ``*.SA.NS.sa.cluster.local``: an L4 hop names the
destination pod in the SNI as ``POD.SA.NS.sa.cluster.local``, which HAProxy then checks
against the peer's certificate like any server name. Keys are written 0600 into a 0700
directory.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "identity_dns_name"]

SPIFFE = re.compile(r"^spiffe://(?P<td>[^/]+)/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")
CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def identity_dns_name(identity: str) -> str:
    match = SPIFFE.match(identity)
    if match is None:
        raise ValueError(f"not a SPIFFE workload identity: {identity!r}")
    return f"{match['sa']}.{match['ns']}.sa.{match['td']}"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


class CertificateAuthority:
    """An EC P-256 CA that lives in one directory for one run."""

    def __init__(self, directory: Path, name: str = "meshsim testbed CA", lifetime_h: float = 24):
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.lifetime = dt.timedelta(hours=lifetime_h)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(name)
        self._cert = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(CA_USAGE, critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(self.ca_file, 0o644)

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.lifetime)
        )

    def issue(self, identity: str, file_stem: str) -> Path:
        """Certificate and key for `identity`, in one PEM file (as HAProxy's `crt` wants)."""
        dns = identity_dns_name(identity)
        key = ec.generate_private_key(ec.SECP256R1())
        san = [
            x509.UniformResourceIdentifier(identity),
            x509.DNSName(dns),
            x509.DNSName(f"*.{dns}"),
        ]
        usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (
            self._builder(_name(dns), key.public_key())
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.directory / f"{file_stem}.pem"
        _write_private(path, cert.public_bytes(serialization.Encoding.PEM) + key_pem)
        return path
