"""Who is calling: authentication by client certificate or bearer token.

Every connection to the API port is mutual TLS, so the caller's certificate
has already been checked against the cluster CA by the TLS layer; its CN is
the user and its O entries the groups, as in Kubernetes. (gRPC's Python
server cannot ask for an optional client certificate, so callers without one
use the token port: server-side TLS, and an `authorization: Bearer` header
checked against the static token file, Kubernetes' `--token-auth-file` CSV:
token,user,uid,"group1,group2".) Tokens never appear in logs or messages.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

from minik8s import errors, pki

log = logging.getLogger("minik8s.apiserver.authn")

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
RELOAD_CHECK_SECONDS = 1.0
_CERT_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups


# A cluster started with --insecure: every caller is an administrator.
INSECURE_USER = User("system:admin", (MASTERS, AUTHENTICATED))


def _digest(token: str) -> str:
    """Tokens are kept hashed: a memory dump or a repr shows none."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    """The static token file, read again when it changes (checked at most once a second)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, User] = {}
        self._mtime = -1.0
        self._checked = 0.0
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            raise ValueError(f"--token-auth-file {self.path}: {exc.strerror}") from None
        if mtime == self._mtime:
            return
        users: dict[str, User] = {}
        with open(self.path, newline="") as f:
            for number, row in enumerate(csv.reader(f), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 2 or not row[0] or not row[1]:
                    raise ValueError(f"{self.path}:{number}: want token,user,uid[,\"groups\"]")
                groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
                users[_digest(row[0])] = User(row[1], (*groups, AUTHENTICATED))
        self._users, self._mtime = users, mtime
        log.info("token file %s: %d tokens", self.path, len(users))

    def lookup(self, token: str) -> User | None:
        now = time.monotonic()
        if now - self._checked > RELOAD_CHECK_SECONDS:
            self._checked = now
            try:
                self._reload()
            except ValueError as exc:  # keep the tokens we have
                log.error("%s", exc)
        return self._users.get(_digest(token))


class Authenticator:
    def __init__(self, tokens: TokenFile | None = None, insecure: bool = False) -> None:
        self.tokens = tokens
        self.insecure = insecure
        self._by_cert: dict[bytes, User] = {}

    def authenticate(self, context: grpc.aio.ServicerContext) -> User:
        """The caller; errors.Unauthenticated if it proves no identity."""
        if self.insecure:
            return INSECURE_USER
        auth = context.auth_context()
        pem = (auth.get("x509_pem_cert") or [b""])[0]
        if pem:
            return self._cert_user(pem)
        token = _bearer(context)
        if token is None:
            raise errors.Unauthenticated("Unauthorized: no credentials: present a client "
                                         "certificate or an `authorization: Bearer` token")
        user = self.tokens.lookup(token) if self.tokens else None
        if user is None:
            raise errors.Unauthenticated("Unauthorized: invalid bearer token")
        return user

    def _cert_user(self, pem: bytes) -> User:
        user = self._by_cert.get(pem)
        if user is None:
            name, groups = pki.identity_of(x509.load_pem_x509_certificate(pem))
            user = User(name, (*groups, AUTHENTICATED))
            if len(self._by_cert) >= _CERT_CACHE_LIMIT:
                self._by_cert.clear()
            self._by_cert[pem] = user
        return user


def _bearer(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None
