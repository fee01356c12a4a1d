"""TLS, authentication, RBAC and the node restriction, against real apiservers and etcd."""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2 as rpc
from aetcd.rpc import rpc_pb2_grpc as rpc_grpc
from cryptography import x509

from minik8s import config, errors, pki
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.config import Credentials
from minik8s.localcluster import LocalCluster
from minik8s.pki import CertFiles, CertificateAuthority, Subject
from tests.integration.helpers import eventually, minictl
from tests.session_pki import session_pki

MINICTL = [sys.executable, "-m", "minik8s.cli.minictl"]


def _ca() -> CertificateAuthority:
    return CertificateAuthority.ensure(session_pki())


def _creds(files: CertFiles | None = None, ca: CertificateAuthority | None = None,
           token: str = "") -> Credentials:
    ca = ca or _ca()
    return Credentials(ca=ca.cert_path.read_bytes(), token=token,
                       cert=files.cert.read_bytes() if files else b"",
                       key=files.key.read_bytes() if files else b"")


def _user(name: str, *groups: str) -> Credentials:
    return _creds(_ca().issue(f"user-{name.replace(':', '-')}", Subject(name, groups)))


async def _list_namespaces(servers: list[str], creds: Credentials) -> None:
    async with ApiClient(servers, credentials=creds, retry_deadline=2) as client:
        await client.list("Namespace")


# ---------------------------------------------------------------- authentication

async def test_no_certificate_is_refused(cluster: LocalCluster) -> None:
    with pytest.raises(errors.Unavailable, match="refused our client certificate"):
        await _list_namespaces(cluster.servers, _creds())


async def test_no_credentials_on_the_token_port_is_unauthenticated(cluster: LocalCluster) -> None:
    with pytest.raises(errors.Unauthenticated, match="no credentials"):
        await _list_namespaces(cluster.token_servers, _creds())


async def test_wrong_ca_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    other = CertificateAuthority.ensure(tmp_path / "other")
    stranger = other.issue("admin", Subject("minik8s-admin", ("system:masters",)))
    with pytest.raises(errors.Unavailable, match="not signed by the configured certificate"):
        await _list_namespaces(cluster.servers, _creds(stranger, ca=other))
    with pytest.raises(errors.Unavailable, match="refused our client certificate"):
        await _list_namespaces(cluster.servers, _creds(stranger))


async def test_expired_certificate_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    old = _ca().issue("expired-admin", Subject("minik8s-admin", ("system:masters",)),
                      not_after=past)
    with pytest.raises(errors.Unavailable, match="refused our client certificate"):
        await _list_namespaces(cluster.servers, _creds(old))
    path = tmp_path / "config"
    config.write_certificate(path, cluster.servers, _ca().cert_path, old)
    with pytest.raises(config.ConfigError, match="the client certificate expired on"):
        config.credentials(path)


async def test_tokens(cluster: LocalCluster) -> None:
    secret = "s3cret-token-of-bob"
    cluster.token_file.write_text(f'{secret},bob,uid-bob,"team-b,other"\n')
    with pytest.raises(errors.Unauthenticated, match="invalid bearer token") as refused:
        await _list_namespaces(cluster.token_servers, _creds(token="wrong-" + secret))
    assert secret not in str(refused.value)
    async with ApiClient(cluster.token_servers, credentials=_creds(token=secret)) as client:
        await eventually(lambda: known_as(client, "bob"))
        with pytest.raises(errors.Forbidden, match='User "bob" cannot list resource "pods"'):
            await client.list("Pod", "default")
    for path in (cluster.log_path(p.name) for p in cluster.role("apiserver")):
        assert secret not in path.read_text()


async def known_as(client: ApiClient, user: str) -> bool:
    """Whether the apiserver knows the client as user (a token file is read again
    within a second)."""
    try:
        return (await client.access_review("list", "pods", "default")).user == user
    except errors.Unauthenticated:
        return False


def add_user(command: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`minik8s create-token|create-user ...`, as an administrator runs it."""
    return subprocess.run([sys.executable, "-m", "minik8s.cli.daemons", command, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


async def test_create_token(cluster: LocalCluster) -> None:
    made = add_user("create-token", "carol", "--group", "team-c", "--workdir",
                    str(cluster.workdir))
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.stat().st_mode & 0o077 == 0
    token = config.credentials(path).token
    assert token and token not in made.stdout
    async with ApiClient(cluster.token_servers, credentials=config.credentials(path)) as carol:
        await eventually(lambda: known_as(carol, "carol"))
    async with ApiClient(cluster.servers) as admin:
        review = await admin.access_review("get", "pods", user="carol", groups=["team-c"])
        assert not review.allowed   # a token is an identity, not a grant


async def test_create_user(cluster: LocalCluster, cli_env: dict[str, str]) -> None:
    made = add_user("create-user", "dave", "--group", "team-d", "--workdir",
                    str(cluster.workdir))
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.stat().st_mode & 0o077 == 0
    creds = config.credentials(path)
    assert pki.identity_of(x509.load_pem_x509_certificate(creds.cert)) == ("dave", ("team-d",))
    async with ApiClient(cluster.servers, credentials=creds) as dave:
        review = await dave.access_review("list", "pods", "default")
        assert (review.user, review.allowed) == ("dave", False)
        with pytest.raises(errors.Forbidden, match='User "dave" cannot list resource "pods"'):
            await dave.list("Pod", "default")
        bound = await minictl(cli_env, "create", "rolebinding", "dave-view", "--clusterrole",
                              "view", "--user", "dave", "-n", "default")
        assert bound.code == 0 and "rolebinding" in bound.out, bound

        async def may_list() -> bool:  # once the apiservers' RBAC informers have the binding
            try:
                return bool(await dave.list("Pod", "default"))
            except errors.Forbidden:
                return False
        await eventually(may_list)
        with pytest.raises(errors.Forbidden, match='User "dave" cannot list resource "pods"'):
            await dave.list("Pod", "kube-system")
    bad = await minictl(cli_env, "create", "rolebinding", "x", "--user", "dave")
    assert bad.code == 2 and "give exactly one of --clusterrole and --role" in bad.err


def test_create_user_names_what_is_missing(tmp_path: Path) -> None:
    made = add_user("create-user", "erin", "--compose", "no-such-project", cwd=tmp_path)
    assert made.returncode != 0
    assert f"no compose cluster in {tmp_path}/.work/compose/no-such-project" in made.stderr
    assert "Traceback" not in made.stderr


async def test_etcd_refuses_a_client_without_certificate(cluster: LocalCluster) -> None:
    ca = _ca().cert_path.read_bytes()
    endpoint = cluster.etcd_endpoints[0]
    async with grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(ca)) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await rpc_grpc.KVStub(channel).Range(rpc.RangeRequest(key=b"/registry/"), timeout=3)
    async with grpc.aio.insecure_channel(endpoint) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await rpc_grpc.KVStub(channel).Range(rpc.RangeRequest(key=b"/registry/"), timeout=3)


# ---------------------------------------------------------------- RBAC

async def _granted(cluster: LocalCluster, user: str, verb: str, resource: str,
                   namespace: str) -> None:
    """Wait until every apiserver's cache holds the grant (they follow etcd on their own)."""
    for server in cluster.servers:
        async with ApiClient([server]) as admin:
            async def allowed(admin: ApiClient = admin) -> bool:
                return (await admin.access_review(verb, resource, namespace, user=user)).allowed
            await eventually(allowed)

@pytest.fixture
async def team(client: ApiClient, cluster: LocalCluster, namespace: str) -> AsyncIterator[tuple[str, str]]:
    """Namespaces a and b; alice may create and read pods in a only (a Role and its binding)."""
    other = namespace + "-b"
    await client.create(t.Namespace(metadata=t.ObjectMeta(name=other)))
    await client.create(t.Role(metadata=t.ObjectMeta(name="pod-writer", namespace=namespace),
                               rules=[t.PolicyRule(verbs=["get", "list", "watch", "create"],
                                                   resources=["pods"])]))
    await client.create(t.RoleBinding(
        metadata=t.ObjectMeta(name="alice-writes-pods", namespace=namespace),
        subjects=[t.Subject(kind="User", name="alice")],
        role_ref=t.RoleRef(kind="Role", name="pod-writer")))
    await _granted(cluster, "alice", "create", "pods", namespace)
    yield namespace, other
    await client.delete("Namespace", other)


def _pod(name: str, namespace: str, node: str = "") -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace=namespace),
                 spec=t.PodSpec(node_name=node,
                                containers=[t.Container(name="c", image="minik8s/echo")]))


async def test_role_in_one_namespace(cluster: LocalCluster, team: tuple[str, str]) -> None:
    a, b = team
    async with ApiClient(cluster.servers, credentials=_user("alice")) as alice:
        created = await alice.create(_pod("mine", a))
        assert created.metadata.namespace == a
        assert [p.metadata.name for p in (await alice.list("Pod", a))[0]] == ["mine"]
        with pytest.raises(errors.Forbidden) as denied:
            await alice.list("Pod", b)
        assert denied.value.message == (f'pods is forbidden: User "alice" cannot list resource '
                                        f'"pods" in the namespace "{b}"')
        with pytest.raises(errors.Forbidden, match="cannot get resource"):
            await alice.get("Pod", "mine", b)
        with pytest.raises(errors.Forbidden, match="cannot create resource \"namespaces\""):
            await alice.create(t.Namespace(metadata=t.ObjectMeta(name=f"{a}-x")))
        with pytest.raises(errors.Forbidden, match="at the cluster scope"):
            await alice.list("Node")
        with pytest.raises(errors.Forbidden, match="cannot delete"):
            await alice.delete("Pod", "mine", a)
        with pytest.raises(errors.Forbidden):
            await alice.apply(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: x, namespace: {b}}}"
                              "\nspec: {containers: [{name: c, image: i}]}")


def _minictl(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MINIK8S_CONFIG=str(config_path))
    env.pop("MINIK8S_SERVERS", None)
    return subprocess.run([*MINICTL, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_can_i(cluster: LocalCluster, team: tuple[str, str], tmp_path: Path) -> None:
    a, b = team
    alice = cluster.users.issue_certificate("alice")
    assert _minictl(alice, "auth", "can-i", "create", "pods", "-n", a).stdout == "yes\n"
    refused = _minictl(alice, "auth", "can-i", "list", "pods", "-n", b)
    assert (refused.returncode, refused.stdout) == (1, "no\n")
    assert _minictl(alice, "auth", "can-i", "list", "nodes").stdout == "no\n"
    admin = cluster.workdir / "config"
    assert _minictl(admin, "auth", "can-i", "create", "pods", "-n", a, "--as",
                    "alice").stdout == "yes\n"
    assert _minictl(admin, "auth", "can-i", "create", "pods", "-n", b, "--as",
                    "alice").stdout == "no\n"
    impersonating = _minictl(alice, "auth", "can-i", "list", "pods", "--as", "bob")
    assert impersonating.returncode == 1
    assert "Error from server (Forbidden)" in impersonating.stderr
    assert "cannot impersonate" in impersonating.stderr
    denied = _minictl(alice, "get", "pods", "-n", b)
    assert denied.returncode == 1 and "Traceback" not in denied.stderr
    assert denied.stderr.startswith('Error from server (Forbidden): pods is forbidden: User "alice"')


# ---------------------------------------------------------------- node restriction

async def test_node_restriction(client: ApiClient, cluster: LocalCluster, namespace: str) -> None:
    mine = await client.create(_pod("on-node1", namespace, "node1"))
    theirs = await client.create(_pod("on-node2", namespace, "node2"))
    node2 = await client.create(t.Node(metadata=t.ObjectMeta(name="node2")))
    lease2 = await client.create(t.Lease(
        metadata=t.ObjectMeta(name="node2", namespace="kube-node-lease"),
        spec=t.LeaseSpec(holder_identity="node2")))
    creds = _user("system:node:node1", "system:nodes")
    async with ApiClient(cluster.servers, credentials=creds) as kubelet:
        await kubelet.create(t.Node(metadata=t.ObjectMeta(name="node1")))
        await kubelet.create(t.Lease(metadata=t.ObjectMeta(name="node1",
                                                           namespace="kube-node-lease"),
                                     spec=t.LeaseSpec(holder_identity="node1")))
        mine.status.phase = "Running"
        assert (await kubelet.update_status(mine)).status.phase == "Running"
        own, _ = await kubelet.list("Pod", field_selector="spec.nodeName=node1")
        assert "on-node1" in [p.metadata.name for p in own]

        theirs.status.phase = "Failed"
        with pytest.raises(errors.Forbidden, match='User "system:node:node1" cannot update'):
            await kubelet.update_status(theirs)
        with pytest.raises(errors.Forbidden):
            await kubelet.update(theirs)
        with pytest.raises(errors.Forbidden):
            await kubelet.get("Pod", "on-node2", namespace)
        with pytest.raises(errors.Forbidden):
            await kubelet.delete("Pod", "on-node2", namespace,
                                 resource_version=theirs.metadata.resource_version)
        node2.metadata.labels["taken"] = "yes"
        with pytest.raises(errors.Forbidden, match='cannot update resource "nodes"'):
            await kubelet.update(node2)
        with pytest.raises(errors.Forbidden):
            await kubelet.update_status(node2)
        lease2.spec.holder_identity = "node1"
        with pytest.raises(errors.Forbidden, match='cannot update resource "leases"'):
            await kubelet.update(lease2)
        with pytest.raises(errors.Forbidden):
            await kubelet.list("Pod", namespace)
        with pytest.raises(errors.Forbidden):
            await kubelet.create(_pod("sneaky", namespace, "node1"))
    for name in ("node1", "node2"):
        await client.delete("Node", name)
        await client.delete("Lease", name, "kube-node-lease")
