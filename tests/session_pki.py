"""One PKI for the whole test session.

Every LocalCluster a session starts (the shared one, the node cluster, the
ones tests kill, the chaos cluster) is signed by the same CA, and the
session's MINIK8S_CONFIG names an administrator's credentials of that CA.
So `ApiClient(cluster.servers)` and `minictl --server ...` reach any of them
as system:masters, exactly as a user's config reaches the cluster it names,
with no test passing credentials around; the servers still come from each
test's cluster.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

from minik8s import clusterpki, config
from minik8s.pki import CertificateAuthority


@functools.cache
def session_pki() -> Path:
    """The session's PKI directory; sets MINIK8S_CONFIG to its admin config."""
    root = Path(tempfile.mkdtemp(prefix="minik8s-test-pki-"))
    atexit.register(shutil.rmtree, root, True)
    ca = CertificateAuthority.ensure(root / "pki")
    admin = ca.issue("admin", clusterpki.ADMIN)
    path = root / "admin.conf"
    config.write_certificate(path, [], ca.cert_path, admin)
    os.environ["MINIK8S_CONFIG"] = str(path)
    return root / "pki"
