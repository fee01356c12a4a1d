"""The cluster's public key infrastructure: one CA, a certificate per identity.

Identities follow Kubernetes: the certificate's CN is the user name and its O
entries are the groups (`system:node:node-0` in `system:nodes`). Keys are EC
P-256 (fast to make and to verify). Every file is written atomically with
mode 0600 in a directory of mode 0700. Issuing is idempotent: a certificate
already on disk is kept while it is signed by the CA, names the same
subject and SANs, and stays valid for at least a day; otherwise it is made
again. So `local-up` on an existing workdir reuses its PKI.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca"
CA_DAYS = 3650
CERT_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=1)


class PkiError(Exception):
    """A certificate or key cannot be read or used."""


@dataclass(frozen=True)
class CertFiles:
    """Where one identity's certificate and key are."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Subject:
    """What a certificate says: who (CN), which groups (O), which names it serves."""

    common_name: str
    groups: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    @property
    def server(self) -> bool:
        return bool(self.dns_names or self.ips)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def write_private(path: Path, data: bytes) -> None:
    """Write data to path atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a readable PEM certificate: {exc}") from None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"{path}: not a readable PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC private key")
    return key


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_before_utc <= _now() and cert.not_valid_after_utc - RENEW_BEFORE > _now()


def _name(subject: Subject) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in subject.groups]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, subject.common_name)])


def _sans(subject: Subject) -> list[x509.GeneralName]:
    return ([x509.DNSName(d) for d in subject.dns_names]
            + [x509.IPAddress(ipaddress.ip_address(i)) for i in subject.ips])


class CertificateAuthority:
    """The cluster CA: <dir>/ca.crt and <dir>/ca.key."""

    def __init__(self, directory: Path, cert: x509.Certificate,
                 key: ec.EllipticCurvePrivateKey) -> None:
        self.directory = directory
        self.cert = cert
        self.key = key

    @property
    def cert_path(self) -> Path:
        return self.directory / f"{CA_NAME}.crt"

    @classmethod
    def ensure(cls, directory: Path, name: str = "minik8s-ca") -> CertificateAuthority:
        """The CA in directory, made if missing or about to expire."""
        cert_path, key_path = directory / f"{CA_NAME}.crt", directory / f"{CA_NAME}.key"
        if cert_path.exists() and key_path.exists():
            cert, key = load_cert(cert_path), _load_key(key_path)
            if _fresh(cert):
                return cls(directory, cert, key)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        write_private(key_path, _key_pem(key))
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, cert, key)

    def signed(self, cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def issue(self, name: str, subject: Subject, days: int = CERT_DAYS,
              not_after: datetime.datetime | None = None) -> CertFiles:
        """<dir>/<name>.crt and .key for subject, reused when still right.

        not_after (tests only: an expired certificate) forces a new one.
        """
        files = CertFiles(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        if not_after is None and self._reusable(files, subject):
            return files
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if subject.server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (x509.CertificateBuilder().subject_name(_name(subject))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(min(now, not_after or now) - datetime.timedelta(hours=1))
                   .not_valid_after(not_after or now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if subject.server:
            builder = builder.add_extension(x509.SubjectAlternativeName(_sans(subject)),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        write_private(files.key, _key_pem(key))
        write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM))
        return files

    def _reusable(self, files: CertFiles, subject: Subject) -> bool:
        if not (files.cert.exists() and files.key.exists()):
            return False
        try:
            cert = load_cert(files.cert)
            key = _load_key(files.key)
        except PkiError:
            return False
        return (self.signed(cert) and _fresh(cert) and identity_of(cert) == (
            subject.common_name, subject.groups) and _cert_sans(cert) == set(_sans(subject))
            and key.public_key() == cert.public_key())


def _cert_sans(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return set()


def identity_of(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(user, groups) as Kubernetes reads a client certificate: CN and the O entries."""
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


def server_subject(common_name: str, hosts: Sequence[str], groups: Sequence[str] = ()) -> Subject:
    """A serving (and client) certificate's subject for hosts: names and addresses."""
    dns, ips = [], []
    for host in dict.fromkeys([*hosts, "localhost", "127.0.0.1"]):
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.append(host)
    return Subject(common_name, tuple(groups), tuple(dns), tuple(ips))
