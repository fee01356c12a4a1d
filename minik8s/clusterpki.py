"""The certificates of a local cluster, and the client config each process uses.

One CA (in the PKI directory, by default <workdir>/pki) signs: each etcd
member's serving and peer certificate, the apiserver's serving certificate
and its etcd client certificate, a client certificate per component identity
(as Kubernetes names them), one per kubelet (`system:node:<name>` in
`system:nodes`) and the administrator's (`minik8s-admin` in `system:masters`).
Every process that calls the API gets a client config of its own in
<workdir>/auth/<identity>.conf (servers, CA, its certificate), named by
MINIK8S_CONFIG in its environment.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minik8s import config, pki
from minik8s.pki import CertFiles, CertificateAuthority, Subject

ADMIN = Subject("minik8s-admin", ("system:masters",))
IDENTITIES = {
    "scheduler": Subject("system:kube-scheduler"),
    "controller-manager": Subject("system:kube-controller-manager"),
    "proxy": Subject("system:kube-proxy"),
    "dns": Subject("system:kube-dns"),
    "dashboard": Subject("system:dashboard"),
}


def node_subject(node: str, hosts: list[str]) -> Subject:
    return pki.server_subject(f"system:node:{node}", hosts, ("system:nodes",))


@dataclass
class ClusterPki:
    directory: Path
    host: str

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.ensure(self.directory)

    def issue(self, name: str, subject: Subject) -> CertFiles:
        return self.ca.issue(name, subject)

    def server(self, name: str) -> CertFiles:
        """A serving certificate for this cluster's host (and loopback)."""
        return self.issue(name, pki.server_subject(name, [self.host]))

    def client_config(self, path: Path, servers: list[str], files: CertFiles) -> Path:
        config.write_certificate(path, servers, self.ca.cert_path, files)
        return path
