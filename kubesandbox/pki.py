"""The sandbox's certificate authority: keys, self-signed CA, and certificates it issues.

Made with ``cryptography`` (Debian's python3-cryptography 38 and the newest release: only
APIs present in both), never with an ``openssl`` subprocess.  The same authority signs the
serving certificate, the test client certificates and, through the CSR API, the hub's own
certificates, so one ``ca.crt`` verifies all of them, as a kubeadm cluster's CA does.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey

# certificates.k8s.io/v1 usages -> what the certificate says.
_EKU = {"client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
        "server auth": ExtendedKeyUsageOID.SERVER_AUTH}
KNOWN_USAGES = frozenset({"digital signature", "key encipherment", "client auth",
                          "server auth"})


def new_key() -> PrivateKey:
    """An ECDSA P-256 key, as client-go's certificate manager makes them."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def not_after(cert: x509.Certificate) -> datetime.datetime:
    """The end of validity as an aware datetime (``not_valid_after_utc`` is new in 42)."""
    value: datetime.datetime | None = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=datetime.UTC)
    return value


def sans(dns: Sequence[str] = (), ips: Sequence[str] = ()) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    out += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return out


@dataclass
class Authority:
    """A CA certificate and its key; ``issue`` signs leaf certificates."""

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, common_name: str = "yurthub-sandbox-ca", days: int = 3650) -> Authority:
        key = new_key()
        subject = name(common_name)
        now = _now()
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]
             ) -> Authority:
        with open(cert_file, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_file, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: the sandbox's CA key must be an EC key")
        return cls(cert, key)

    def issue(self, public_key: ec.EllipticCurvePublicKey | object, subject: x509.Name, *,
              usages: Iterable[str], lifetime: float,
              alt_names: Sequence[x509.GeneralName] = (),
              backdate: float = 0.0) -> x509.Certificate:
        """A leaf certificate for ``public_key``, valid from ``now - backdate`` for
        ``lifetime`` seconds after now (never beyond the CA's own end)."""
        now = _now()
        end = min(now + datetime.timedelta(seconds=lifetime), not_after(self.cert))
        usages = list(usages)
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(public_key)  # type: ignore[arg-type]
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(seconds=backdate))
                   .not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature="digital signature" in usages,
                       content_commitment=False,
                       key_encipherment="key encipherment" in usages,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False,
                       crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False))
        ekus = [_EKU[u] for u in usages if u in _EKU]
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)),
                                            critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_pair(self, subject: x509.Name, *, usages: Iterable[str], lifetime: float,
                   alt_names: Sequence[x509.GeneralName] = ()
                   ) -> tuple[x509.Certificate, PrivateKey]:
        key = new_key()
        cert = self.issue(key.public_key(), subject, usages=usages, lifetime=lifetime,
                          alt_names=alt_names, backdate=300)
        return cert, key


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start (keys never sit readable)."""
    tmp = f"{os.fspath(path)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
