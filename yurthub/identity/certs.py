"""Keys, certificate requests and certificates: what the hub makes and checks, with cryptography.

Only APIs that Debian 12's python3-cryptography 38 and the newest release share.  A key pair
lives in one PEM file (certificate first, then the key), as client-go's certificate store
keeps ``<name>-current.pem``; ``rotation_deadline`` is client-go's: a random point between
70 % and 90 % of the certificate's lifetime.
"""

from __future__ import annotations

import datetime
import ipaddress
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from yurthub.errors import CertificateError
from yurthub.kube import bootstraptoken

PrivateKey = ec.EllipticCurvePrivateKey
_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


def new_key() -> PrivateKey:
    """An ECDSA P-256 key, as client-go's certificate manager makes them."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def csr_pem(key: PrivateKey, common_name: str, organizations: Iterable[str] = (),
            dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> bytes:
    """A PEM ``CERTIFICATE REQUEST`` for ``key`` (O first, then CN, as Go writes subjects)."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class CertInfo:
    """What the hub needs to know of a certificate."""

    not_before: float       # epoch seconds
    not_after: float
    serial: str             # lower-case hex
    common_name: str
    organizations: tuple[str, ...]
    ip_sans: tuple[str, ...] = ()
    dns_sans: tuple[str, ...] = ()

    @property
    def lifetime(self) -> float:
        return self.not_after - self.not_before

    def expired(self, now: float) -> bool:
        return now >= self.not_after


def info(cert: x509.Certificate) -> CertInfo:
    before = getattr(cert, "not_valid_before_utc", None) or _aware(cert.not_valid_before)
    after = getattr(cert, "not_valid_after_utc", None) or _aware(cert.not_valid_after)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = tuple(str(i) for i in san.get_values_for_type(x509.IPAddress))
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        ips, dns = (), ()
    return CertInfo(before.timestamp(), after.timestamp(), format(cert.serial_number, "x"),
                    str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs), ips, dns)


def load_cert(pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM; CertificateError when there is none."""
    m = _CERT_BLOCK.search(pem)
    if m is None:
        raise CertificateError("no PEM CERTIFICATE block")
    try:
        return x509.load_pem_x509_certificate(m.group(0))
    except ValueError as e:
        raise CertificateError(f"not a certificate: {e}") from None


def load_pair(pem: bytes) -> tuple[x509.Certificate, CertInfo]:
    """Check that a pair file holds a certificate and the private key that belongs to it."""
    cert = load_cert(pem)
    try:
        key = serialization.load_pem_private_key(_key_block(pem), password=None)
    except (ValueError, TypeError) as e:
        raise CertificateError(f"no usable private key: {e}") from None
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            _spki(cert):
        raise CertificateError("the private key does not belong to the certificate")
    return cert, info(cert)


def _key_block(pem: bytes) -> bytes:
    m = re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----",
                  pem, re.S)
    if m is None:
        raise CertificateError("no PEM PRIVATE KEY block")
    return m.group(0)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def matches_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    return _spki(cert) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pair_pem(cert_pem: bytes, key: PrivateKey) -> bytes:
    return cert_pem.rstrip(b"\n") + b"\n" + key_pem(key)


def ca_pins(ca_pem: bytes) -> list[str]:
    """kubeadm's pin of every certificate in a CA bundle."""
    out = []
    for block in _CERT_BLOCK.findall(ca_pem):
        try:
            out.append(bootstraptoken.ca_pin(_spki(x509.load_pem_x509_certificate(block))))
        except ValueError:
            continue
    return out


def rotation_deadline(cert: CertInfo, rand: random.Random | None = None) -> float:
    """When to renew: a random point in 70-90 % of the lifetime (client-go's jitter)."""
    r = (rand or random).uniform(0.7, 0.9)
    return cert.not_before + cert.lifetime * r
