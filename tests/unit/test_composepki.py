"""The compose cluster's PKI (minik8s/composepki.py)."""
from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

from minik8s import config, pki
from minik8s.composepki import generate

NODE_IPS = ["172.28.128.10", "172.28.128.11"]


def sans(path: Path) -> set[str]:
    ext = pki.load_cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return {str(name.value) for name in ext.value}


def test_each_service_gets_its_own_certificates_and_no_ca_key(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    generate(root, NODE_IPS)
    services = {p.name for p in root.iterdir() if p.is_dir()}
    assert services == {"etcd-0", "etcd-1", "etcd-2", "apiserver-0", "apiserver-1",
                        "apiserver-2", "scheduler", "controller-manager", "dashboard", "auth",
                        "node-0", "node-1"}
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert [p for p in root.rglob("ca.key")] == [root / "ca.key"]
    assert sans(root / "etcd-1" / "etcd.crt") == {"etcd-1", "localhost", "127.0.0.1"}
    assert sans(root / "apiserver-2" / "apiserver.crt") == {"apiserver-2", "localhost",
                                                             "127.0.0.1"}
    etcd_client = pki.load_cert(root / "apiserver-0" / "etcd-client.crt")
    assert pki.identity_of(etcd_client) == ("system:apiserver", ())
    kubelet = root / "node-1" / "kubelet.crt"
    assert pki.identity_of(pki.load_cert(kubelet)) == ("system:node:node-1", ("system:nodes",))
    assert sans(kubelet) == {"node-1", "localhost", "127.0.0.1", "172.28.128.11"}
    for name, user in (("proxy", "system:kube-proxy"), ("dns", "system:kube-dns")):
        assert pki.identity_of(pki.load_cert(root / "node-0" / f"{name}.crt"))[0] == user
    dashboard = pki.load_cert(root / "dashboard" / "client.crt")
    assert pki.identity_of(dashboard) == ("system:dashboard", ())
    admin = pki.load_cert(root / "admin.crt")
    assert pki.identity_of(admin) == ("minik8s-admin", ("system:masters",))


def test_client_configs_name_their_files_relative_to_themselves(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    generate(root, NODE_IPS)
    moved = tmp_path / "mounted"
    (root / "scheduler").rename(moved)         # as if mounted elsewhere
    creds = config.credentials(moved / "client.conf")
    assert creds.cert == (moved / "client.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(creds.cert)
    assert pki.identity_of(cert) == ("system:kube-scheduler", ())


def test_generating_again_keeps_what_is_still_right(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    generate(root, NODE_IPS)
    before = (root / "node-0" / "kubelet.crt").read_bytes()
    generate(root, NODE_IPS)
    assert (root / "node-0" / "kubelet.crt").read_bytes() == before
    generate(root, ["172.28.128.20", NODE_IPS[1]])     # the node's address changed
    assert (root / "node-0" / "kubelet.crt").read_bytes() != before
    assert "172.28.128.20" in sans(root / "node-0" / "kubelet.crt")
