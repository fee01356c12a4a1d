"""The certificates of the compose cluster (deploy/docker-compose.yml).

scripts/compose-up.sh runs `python -m minik8s.composepki DIR NODE_IP...` on
the host. The CA (ca.crt, ca.key) and the administrator's certificate stay in
DIR; each service gets a directory of its own, mounted read-only at
/etc/minik8s/pki in its containers, holding ca.crt and only its own keys:

    etcd-<i>/            etcd.crt/key      serving and peer (SANs etcd-<i>)
    apiserver-<i>/       apiserver.crt/key serving (SANs apiserver-<i>, localhost, 127.0.0.1)
                         etcd-client.crt/key  system:apiserver, to etcd
    scheduler/           client.crt/key, client.conf   system:kube-scheduler
    controller-manager/  client.crt/key, client.conf   system:kube-controller-manager
    dashboard/           client.crt/key, client.conf   system:dashboard (read-only: view)
    node-<i>/            kubelet.crt/key, kubelet.conf system:node:node-<i> (SANs node-<i>, its IP)
                         proxy.*, dns.*                system:kube-proxy, system:kube-dns
    auth/tokens.csv      the apiservers' bearer tokens (mounted into each, read-only)

Configs name their files relative to themselves, so they work wherever the
directory is mounted. Issuing is idempotent (minik8s/pki.py): a run on an
existing directory keeps what is still right. Files are 0600, directories 0700.
"""
from __future__ import annotations

import sys
from pathlib import Path

from minik8s import clusterpki, config, pki
from minik8s.pki import CertFiles, CertificateAuthority, Subject

MEMBERS = 3
SERVERS = [f"apiserver-{i}:6443" for i in range(MEMBERS)]


def _authority(ca: CertificateAuthority, directory: Path) -> CertificateAuthority:
    """The cluster CA issuing into directory (its key stays where it is), with ca.crt there."""
    pki.write_private(directory / "ca.crt", ca.cert_path.read_bytes())
    return CertificateAuthority(directory, ca.cert, ca.key)


def _client(ca: CertificateAuthority, directory: Path, name: str, subject: Subject) -> None:
    """<name>.crt/key for subject and <name>.conf, a client config using them."""
    _authority(ca, directory).issue(name, subject)
    config.write_certificate(directory / f"{name}.conf", SERVERS, Path("ca.crt"),
                             CertFiles(Path(f"{name}.crt"), Path(f"{name}.key")))


def generate(root: Path, node_ips: list[str]) -> None:
    ca = CertificateAuthority.ensure(root)
    for i in range(MEMBERS):
        name = f"etcd-{i}"
        _authority(ca, root / name).issue("etcd", pki.server_subject(name, [name]))
        name = f"apiserver-{i}"
        issuer = _authority(ca, root / name)
        issuer.issue("apiserver", pki.server_subject(name, [name]))
        issuer.issue("etcd-client", Subject("system:apiserver"))
    for role in ("scheduler", "controller-manager", "dashboard"):
        _client(ca, root / role, "client", clusterpki.IDENTITIES[role])
    for i, ip in enumerate(node_ips):
        node, directory = f"node-{i}", root / f"node-{i}"
        _client(ca, directory, "kubelet", clusterpki.node_subject(node, [node, ip]))
        _client(ca, directory, "proxy", clusterpki.IDENTITIES["proxy"])
        _client(ca, directory, "dns", clusterpki.IDENTITIES["dns"])
    ca.issue("admin", clusterpki.ADMIN)
    tokens = root / "auth" / "tokens.csv"   # the apiservers' token file (minik8s create-token)
    if not tokens.exists():
        pki.write_private(tokens, b"")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m minik8s.composepki DIR NODE_IP...", file=sys.stderr)
        return 2
    generate(Path(argv[0]), argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
