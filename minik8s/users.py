"""Adding a user to a cluster: a client certificate or a bearer token, and a
minictl config that uses it.

Whoever holds the cluster CA's key (the machine that made the cluster) can
add users. A user has no rights until an administrator binds a role to the
user's name or one of its groups (docs/security.md). A local cluster keeps
its CA in <workdir>/pki and its token file in <workdir>/auth/tokens.csv; a
compose cluster in .work/compose/<project>/pki and pki/auth/tokens.csv
(mounted into its apiservers), its published ports in .work/compose/<project>/env.
"""
from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from minik8s import config, pki
from minik8s.pki import CA_NAME, CertificateAuthority, Subject

APISERVERS = 3  # the compose cluster's


class UserError(Exception):
    """The cluster's CA, token file or ports are not where they should be."""


@dataclass(frozen=True)
class ClusterAccess:
    """What adding a user to one cluster needs: its CA, where configs go, its endpoints."""

    ca_dir: Path            # ca.crt and ca.key; users' certificates are issued there
    auth_dir: Path          # users' configs are written there
    token_file: Path        # the apiservers' token file (token,user,uid,"groups")
    servers: list[str]      # the mutual-TLS API endpoints, as the user reaches them
    token_servers: list[str]  # the bearer-token endpoints

    def _authority(self) -> CertificateAuthority:
        if not (self.ca_dir / f"{CA_NAME}.key").exists():
            raise UserError(f"no cluster CA in {self.ca_dir} (is the cluster up, and secure?)")
        return CertificateAuthority.ensure(self.ca_dir)

    def issue_certificate(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A certificate for user (CN=user, O=groups) and a config using it."""
        authority, subject = self._authority(), Subject(user, groups)
        files = authority.issue(file_name(subject), subject)
        path = self.auth_dir / f"{file_name(subject)}.conf"
        config.write_certificate(path, self.servers, authority.cert_path, files)
        return path

    def issue_token(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A new random token for user, added to the token file (the apiservers read
        it again within a second), and a config holding it: <auth>/<user>-token.conf.
        The token is written nowhere else."""
        if not self.token_servers:
            raise UserError("the cluster's apiservers have no token port")
        ca = self._authority().cert_path
        token = secrets.token_urlsafe(32)
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow([token, user, user, ",".join(groups)])
        existing = self.token_file.read_text() if self.token_file.exists() else ""
        if existing and not existing.endswith("\n"):
            existing += "\n"
        pki.write_private(self.token_file, (existing + line.getvalue()).encode())
        path = self.auth_dir / f"{file_name(Subject(user))}-token.conf"
        config.write(path, self.token_servers, {config.CA: str(ca), config.TOKEN: token})
        return path


def file_name(subject: Subject) -> str:
    """A file name for an identity: system:node:node-0 -> system-node-node-0."""
    return subject.common_name.replace(":", "-").replace("/", "-")


def compose_access(state: Path) -> ClusterAccess:
    """The compose cluster whose state scripts/compose-up.sh keeps in state
    (.work/compose/<project>)."""
    state = state.resolve()  # the configs name their files by absolute paths
    env_path = state / "env"
    if not env_path.exists():
        raise UserError(f"no compose cluster in {state} (run `make up` first)")
    env = dict(line.split("=", 1) for line in env_path.read_text().splitlines() if "=" in line)

    def ports(var: str) -> list[str]:
        return [f"127.0.0.1:{env[f'{var}_{i}']}" for i in range(APISERVERS)
                if f"{var}_{i}" in env]
    ca_dir = state / "pki"
    return ClusterAccess(ca_dir=ca_dir, auth_dir=state / "users",
                         token_file=ca_dir / "auth" / "tokens.csv",
                         servers=ports("MINIK8S_APISERVER_PORT"),
                         token_servers=ports("MINIK8S_APISERVER_TOKEN_PORT"))
