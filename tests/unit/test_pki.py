"""The PKI: identities, SANs, file modes, reuse, and the client config's checks."""
from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from minik8s import config, pki
from minik8s.pki import CertificateAuthority, Subject


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issue_names_identity_groups_and_sans(tmp_path: Path) -> None:
    ca = CertificateAuthority.ensure(tmp_path / "pki")
    files = ca.issue("node", pki.server_subject("system:node:n1", ["10.0.0.5", "n1"],
                                                ("system:nodes",)))
    cert = pki.load_cert(files.cert)
    assert pki.identity_of(cert) == ("system:node:n1", ("system:nodes",))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"n1", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("127.0.0.1")}
    assert ca.signed(cert)
    for path in (files.cert, files.key, ca.cert_path, tmp_path / "pki" / "ca.key"):
        assert _mode(path) == 0o600
    assert _mode(tmp_path / "pki") == 0o700


def test_reuses_what_is_still_right(tmp_path: Path) -> None:
    ca = CertificateAuthority.ensure(tmp_path)
    subject = Subject("alice", ("team",))
    first = ca.issue("alice", subject).cert.read_bytes()
    again = CertificateAuthority.ensure(tmp_path)
    assert again.cert == ca.cert
    assert again.issue("alice", subject).cert.read_bytes() == first
    assert again.issue("alice", Subject("alice", ("other",))).cert.read_bytes() != first


def test_a_new_ca_reissues(tmp_path: Path) -> None:
    ca = CertificateAuthority.ensure(tmp_path / "a")
    files = ca.issue("x", Subject("x"))
    other = CertificateAuthority.ensure(tmp_path / "b")
    assert not other.signed(pki.load_cert(files.cert))


def _write_config(tmp_path: Path, files: pki.CertFiles, ca: CertificateAuthority) -> Path:
    path = tmp_path / "config"
    config.write_certificate(path, ["127.0.0.1:1"], ca.cert_path, files)
    return path


def test_config_credentials(tmp_path: Path) -> None:
    ca = CertificateAuthority.ensure(tmp_path / "pki")
    path = _write_config(tmp_path, ca.issue("admin", Subject("admin")), ca)
    creds = config.credentials(path)
    assert creds.ca == ca.cert_path.read_bytes() and creds.cert and creds.key
    assert "BEGIN" not in repr(creds)
    assert _mode(path) == 0o600


def test_config_refuses_expired_and_foreign_certificates(tmp_path: Path) -> None:
    ca = CertificateAuthority.ensure(tmp_path / "pki")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = ca.issue("old", Subject("old"), not_after=past)
    with pytest.raises(config.ConfigError, match="expired on"):
        config.credentials(_write_config(tmp_path, expired, ca))
    other = CertificateAuthority.ensure(tmp_path / "other", name="another-ca")
    with pytest.raises(config.ConfigError, match="not issued by the configured"):
        config.credentials(_write_config(tmp_path, other.issue("x", Subject("x")), ca))


def test_config_needs_some_credentials(tmp_path: Path) -> None:
    path = tmp_path / "config"
    config.write(path, ["127.0.0.1:1"], {config.CA: "missing.crt"})
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.credentials(path)
    ca = CertificateAuthority.ensure(tmp_path / "pki")
    config.write(path, ["127.0.0.1:1"], {config.CA: str(ca.cert_path)})
    with pytest.raises(config.ConfigError, match="no credentials"):
        config.credentials(path)
    config.write(path, ["127.0.0.1:1"], {"insecure": True})
    assert config.credentials(path).insecure
