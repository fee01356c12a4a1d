"""Where clients find the apiservers, and how they prove who they are.

Servers, in order: an explicit list (--server a,b,c), the MINIK8S_SERVERS
variable, then the config file named by MINIK8S_CONFIG or ~/.minik8s/config,
which `minik8s local-up` and `make up` write. Credentials come from the same
file. It is YAML; relative paths are relative to the file:

    servers: ["127.0.0.1:6443", "127.0.0.1:6444", "127.0.0.1:6445"]
    certificate-authority: pki/ca.crt      # the cluster CA (or certificate-authority-data: PEM)
    client-certificate: pki/admin.crt      # who we are (or client-certificate-data: PEM)
    client-key: pki/admin.key              # (or client-key-data: PEM)
    token: ...                             # instead of a certificate: a bearer token
    insecure: true                         # a cluster started with --insecure (development)
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from minik8s import pki

CA, CERT, KEY, TOKEN = "certificate-authority", "client-certificate", "client-key", "token"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    """What a client presents: the CA it trusts, and a certificate and key or a token.

    insecure: no TLS at all (a cluster started with --insecure).
    """

    ca: bytes = b""
    cert: bytes = b""
    key: bytes = b""
    token: str = ""
    insecure: bool = False

    def __repr__(self) -> str:  # never show a key or a token
        return f"Credentials(cert={bool(self.cert)}, token={bool(self.token)}, " \
               f"insecure={self.insecure})"


INSECURE = Credentials(insecure=True)


def default_path() -> Path:
    return Path(os.environ.get("MINIK8S_CONFIG") or Path.home() / ".minik8s" / "config")


def split_servers(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def _read(path: Path) -> dict[str, Any] | None:
    """The config file's mapping; None if there is no file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping")
    return data


def servers(flag: str | None = None) -> list[str]:
    """The apiserver endpoints to use; ConfigError naming what to do if none."""
    if flag:
        return split_servers(flag)
    if os.environ.get("MINIK8S_SERVERS"):
        return split_servers(os.environ["MINIK8S_SERVERS"])
    path = default_path()
    data = _read(path)
    if data is None:
        raise ConfigError(f"no apiserver given: use --server, set MINIK8S_SERVERS, or start a "
                          f"cluster with `make up` (which writes {path})")
    found = data.get("servers")
    if not isinstance(found, list) or not found or not all(isinstance(s, str) for s in found):
        raise ConfigError(f"{path}: servers: must be a non-empty list of host:port strings")
    return found


def _pem(data: dict[str, Any], name: str, base: Path, where: Path) -> bytes:
    """A PEM value given inline (<name>-data) or as a file (<name>)."""
    inline = data.get(f"{name}-data")
    if inline:
        return str(inline).encode()
    if not data.get(name):
        return b""
    path = base / str(data[name])
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: {name}: cannot read {path}: {exc.strerror}") from None


def credentials(path: Path | None = None) -> Credentials:
    """The credentials of the config file (default_path() unless given)."""
    path = path or default_path()
    data = _read(path)
    if data is None:
        raise ConfigError(f"no credentials: {path} does not exist (start a cluster with "
                          f"`make up` or `minik8s local-up`, or set MINIK8S_CONFIG)")
    if data.get("insecure") is True:
        return INSECURE
    base = path.parent
    creds = Credentials(ca=_pem(data, CA, base, path), cert=_pem(data, CERT, base, path),
                        key=_pem(data, KEY, base, path), token=str(data.get(TOKEN) or ""))
    check(creds, str(path))
    return creds


def check(creds: Credentials, where: str) -> None:
    """ConfigError for credentials that cannot work, said before any connection."""
    if creds.insecure:
        return
    if not creds.ca:
        raise ConfigError(f"{where}: {CA}: required (the cluster's CA certificate)")
    if bool(creds.cert) != bool(creds.key):
        raise ConfigError(f"{where}: {CERT} and {KEY} go together")
    if not creds.cert and not creds.token:
        raise ConfigError(f"{where}: no credentials: give {CERT} and {KEY}, or a {TOKEN}")
    try:
        ca = x509.load_pem_x509_certificate(creds.ca)
        cert = x509.load_pem_x509_certificate(creds.cert) if creds.cert else None
    except ValueError as exc:
        raise ConfigError(f"{where}: not a PEM certificate: {exc}") from None
    if cert is None:
        return
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        raise ConfigError(f"{where}: the client certificate expired on "
                          f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if cert.issuer != ca.subject:
        raise ConfigError(f"{where}: the client certificate was not issued by the configured "
                          f"certificate authority ({cert.issuer.rfc4514_string()} is not "
                          f"{ca.subject.rfc4514_string()})")


def write(path: Path, server_list: list[str], creds: dict[str, str] | None = None) -> None:
    """Write a client config: the servers and credential entries (paths or values)."""
    text = yaml.safe_dump({"servers": server_list, **(creds or {})}, sort_keys=False)
    pki.write_private(path, text.encode())


def write_certificate(path: Path, server_list: list[str], ca: Path, files: pki.CertFiles) -> None:
    """Write a client config that trusts ca and presents files' certificate (relative
    paths are read from the config's own directory)."""
    write(path, server_list, {CA: str(ca), CERT: str(files.cert), KEY: str(files.key)})
