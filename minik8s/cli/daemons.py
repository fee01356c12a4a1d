"""`minik8s`: the daemons (apiserver, ...) and the local cluster launcher.

Every flag can also be set by an environment variable named after it:
MINIK8S_<COMMAND>_<FLAG>, e.g. MINIK8S_APISERVER_ETCD_SERVERS.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from minik8s import config, netcheck, serving
from minik8s.component import ComponentOptions, run_component
from minik8s.leaderelection import ElectionConfig
from minik8s.localcluster import ClusterError, LocalCluster
from minik8s.users import ClusterAccess, UserError, compose_access


@click.group(context_settings={"auto_envvar_prefix": "MINIK8S", "show_default": True})
def main() -> None:
    """minik8s daemons and the local cluster."""


@main.command()
@click.option("--etcd-servers", required=True, help="etcd client endpoints, host:port,...")
@click.option("--bind-address", default="127.0.0.1", help="address to serve on")
@click.option("--port", default=6443, help="gRPC API port (0: pick one)")
@click.option("--http-port", default=8080, help="/healthz, /readyz and /metrics port")
@click.option("--service-cidr", default="10.96.0.0/16", help="range for ClusterIPs")
@click.option("--watch-cache-size", default=10_000, help="events kept per kind for resuming")
@click.option("--bookmark-interval", default=1.0, help="seconds between watch bookmarks")
@click.option("--etcd-request-timeout", default=5.0,
              help="seconds an etcd request may take, failing over between members")
@click.option("--max-object-bytes", default=1_572_864, help="largest object accepted")
@click.option("--tls-cert-file", type=click.Path(path_type=Path), default=None,
              help="the apiserver's serving certificate")
@click.option("--tls-private-key-file", type=click.Path(path_type=Path), default=None)
@click.option("--client-ca-file", type=click.Path(path_type=Path), default=None,
              help="the CA client certificates must be signed by")
@click.option("--token-auth-file", type=click.Path(path_type=Path), default=None,
              help='bearer tokens, CSV: token,user,uid,"group1,group2"')
@click.option("--token-port", default=0,
              help="port for clients with a bearer token and no certificate (0: none)")
@click.option("--max-watches-per-user", default=1000, help="open watches per user")
@click.option("--refused-per-second", default=50.0,
              help="refused calls (no or bad credentials, forbidden) a connection may have "
                   "a second before its calls are paced to that rate")
@click.option("--etcd-cafile", type=click.Path(path_type=Path), default=None,
              help="the CA of etcd's serving certificates")
@click.option("--etcd-certfile", type=click.Path(path_type=Path), default=None,
              help="the apiserver's client certificate for etcd")
@click.option("--etcd-keyfile", type=click.Path(path_type=Path), default=None)
@click.option("--insecure", is_flag=True,
              help="development only: no TLS, no authentication, no authorization")
@click.option("--log-level", default="INFO")
def apiserver(etcd_servers: str, log_level: str, insecure: bool, tls_cert_file: Path | None,
              tls_private_key_file: Path | None, client_ca_file: Path | None,
              etcd_cafile: Path | None, etcd_certfile: Path | None, etcd_keyfile: Path | None,
              **opts: object) -> None:
    """Serve the API, storing objects in etcd."""
    from apiserver.etcd import EtcdTls
    from apiserver.server import Options, run

    serving.setup_logging("apiserver", log_level)
    tls = _serving_tls(insecure, tls_cert_file, tls_private_key_file, client_ca_file)
    etcd_tls = None
    if etcd_cafile or etcd_certfile or etcd_keyfile:
        if not (etcd_cafile and etcd_certfile and etcd_keyfile):
            raise click.UsageError("--etcd-cafile, --etcd-certfile and --etcd-keyfile go "
                                   "together")
        etcd_tls = EtcdTls(etcd_cafile, etcd_certfile, etcd_keyfile)
    try:
        asyncio.run(run(Options(etcd_servers=config.split_servers(etcd_servers), tls=tls,
                                etcd_tls=etcd_tls, **opts)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _serving_tls(insecure: bool, cert: Path | None, key: Path | None,
                 client_ca: Path | None) -> serving.TlsFiles | None:
    """A server's mutual-TLS files from its flags; None with --insecure."""
    if insecure:
        return None
    if not (cert and key and client_ca):
        raise click.UsageError("--tls-cert-file, --tls-private-key-file and "
                               "--client-ca-file are required (or --insecure)")
    files = serving.TlsFiles(cert, key, client_ca)
    try:
        files.credentials(require_client_cert=True)  # an unreadable file: say so now
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return files


def leader_elected(fn: Callable) -> Callable:
    """The flags every leader-elected component shares (see docs/leader-election.md)."""
    for option in reversed([
        click.option("--server", default=None,
                     help="apiservers host:port,... (default: MINIK8S_SERVERS or config)"),
        click.option("--bind-address", default="127.0.0.1"),
        click.option("--port", default=0, help="gRPC health port (0: pick one)"),
        click.option("--http-port", default=0,
                     help="/healthz, /readyz and /metrics port (0: pick one)"),
        click.option("--leader-elect-lease-duration", default=2.0,
                     help="seconds a lease lasts without renewal"),
        click.option("--leader-elect-renew-deadline", default=1.5,
                     help="seconds a leader may fail to renew before it stops"),
        click.option("--leader-elect-retry-period", default=0.25,
                     help="seconds between attempts to acquire or renew"),
        click.option("--leader-elect-identity", default=None,
                     help="this replica's name in the lease (default: host_pid_random)"),
        click.option("--log-level", default="INFO"),
    ]):
        fn = option(fn)
    return fn


def component_options(lease: str, opts: dict) -> ComponentOptions:
    election = ElectionConfig(
        name=lease, lease_duration=opts.pop("leader_elect_lease_duration"),
        renew_deadline=opts.pop("leader_elect_renew_deadline"),
        retry_period=opts.pop("leader_elect_retry_period"))
    identity = opts.pop("leader_elect_identity")
    if identity:
        election.identity = identity
    return ComponentOptions(servers=config.servers(opts.pop("server")), election=election,
                            bind_address=opts.pop("bind_address"), port=opts.pop("port"),
                            http_port=opts.pop("http_port"))


@main.command()
@leader_elected
@click.option("--scheduler-name", default="default-scheduler",
              help="schedule the pods whose spec.schedulerName is this")
@click.option("--percentage-of-nodes-to-score", default=0,
              help="stop filtering after this share of nodes fits (0: adaptive, as Kubernetes)")
def scheduler(log_level: str, scheduler_name: str, percentage_of_nodes_to_score: int,
              **opts: object) -> None:
    """Assign pending pods to nodes (3 replicas, one leader)."""
    from scheduler.main import setup

    serving.setup_logging("scheduler", log_level)
    try:
        options = component_options("kube-scheduler", opts)
    except (config.ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(asyncio.run(run_component(
        options, setup(scheduler_name, percentage_of_nodes_to_score, options.election.identity))))


@main.command("controller-manager")
@leader_elected
@click.option("--cluster-cidr", default="10.244.0.0/16", help="pod addresses; one /24 per node")
@click.option("--node-monitor-grace-period", default=8.0,
              help="seconds without a node lease renewal before the node is NotReady")
@click.option("--pod-eviction-timeout", default=10.0,
              help="seconds a node may be NotReady before its pods are evicted")
@click.option("--concurrent-workers", default=4, help="workers per controller")
def controller_manager(log_level: str, cluster_cidr: str, node_monitor_grace_period: float,
                       pod_eviction_timeout: float, concurrent_workers: int,
                       **opts: object) -> None:
    """Run the controllers (3 replicas, one leader)."""
    from controller_manager.base import Options
    from controller_manager.manager import setup

    serving.setup_logging("controller-manager", log_level)
    try:
        options = component_options("kube-controller-manager", opts)
    except (config.ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    controllers = Options(cluster_cidr=cluster_cidr,
                          node_monitor_grace_period=node_monitor_grace_period,
                          pod_eviction_timeout=pod_eviction_timeout, workers=concurrent_workers)
    sys.exit(asyncio.run(run_component(options, setup(controllers, options.election.identity))))


@main.command()
@click.option("--node-name", required=True, help="the Node this kubelet runs")
@click.option("--server", default=None,
              help="apiservers host:port,... (default: MINIK8S_SERVERS or config)")
@click.option("--cluster-name", default="minik8s",
              help="labels this cluster's containers (several may share one engine)")
@click.option("--pod-network", default="minik8s", help="Docker network the pods join")
@click.option("--network-mode", type=click.Choice(["local", "node"]), default="local",
              help="local: kubelets share one engine and one bridge over the cluster CIDR; "
                   "node: this node's own engine, a bridge over its podCIDR, routes to the others")
@click.option("--cluster-cidr", default="10.244.0.0/16",
              help="subnet of the pod network, if the kubelet must create it")
@click.option("--node-ip", default="127.0.0.1", help="the node's InternalIP; hostPorts bind it")
@click.option("--bind-address", default="127.0.0.1", help="address of the kubelet API")
@click.option("--port", default=10250, help="kubelet gRPC API port (0: pick one)")
@click.option("--http-port", default=10248, help="/healthz, /readyz and /metrics (0: pick one)")
@click.option("--pod-infra-container-image", default="minik8s/pause:3.9",
              help="image of the container holding each pod's network namespace")
@click.option("--root-dir", default="/var/lib/minik8s/kubelet", type=click.Path(path_type=Path),
              help="where pod volumes live")
@click.option("--cpu", default="", help="cpu capacity to report (default: the machine's)")
@click.option("--memory", default="", help="memory capacity to report (default: the machine's)")
@click.option("--max-pods", default=110)
@click.option("--node-labels", default="", help="extra node labels, key=value,...")
@click.option("--crash-loop-backoff-initial", default=10.0,
              help="seconds before the second restart of a failing container")
@click.option("--crash-loop-backoff-max", default=300.0, help="cap of the restart back-off")
@click.option("--node-status-update-frequency", default=10.0, help="seconds between reports")
@click.option("--cluster-dns", default="", help="the cluster DNS address pods resolve through")
@click.option("--cluster-domain", default="cluster.local")
@click.option("--housekeeping-interval", default=10.0,
              help="seconds between container stats samples (minictl top) and pod counts")
@click.option("--tls-cert-file", type=click.Path(path_type=Path), default=None,
              help="the kubelet API's serving certificate (names the node's addresses)")
@click.option("--tls-private-key-file", type=click.Path(path_type=Path), default=None)
@click.option("--client-ca-file", type=click.Path(path_type=Path), default=None,
              help="the CA the API's callers' certificates must be signed by")
@click.option("--insecure", is_flag=True,
              help="development only: a plaintext kubelet API open to anyone who reaches it")
@click.option("--log-level", default="INFO")
def kubelet(log_level: str, server: str | None, node_labels: str, insecure: bool,
            tls_cert_file: Path | None, tls_private_key_file: Path | None,
            client_ca_file: Path | None, **opts: object) -> None:
    """Run this node's pods as Docker containers."""
    from kubelet.kubelet import Kubelet, KubeletOptions

    serving.setup_logging(f"kubelet/{opts['node_name']}", log_level)
    tls = _serving_tls(insecure, tls_cert_file, tls_private_key_file, client_ca_file)
    try:
        options = KubeletOptions(tls=tls,
            servers=config.servers(server), node_labels=_key_values(node_labels),
            node_name=opts.pop("node_name"), cluster=opts.pop("cluster_name"),
            network=opts.pop("pod_network"), pause_image=opts.pop("pod_infra_container_image"),
            crash_backoff_initial=opts.pop("crash_loop_backoff_initial"),
            crash_backoff_max=opts.pop("crash_loop_backoff_max"),
            status_interval=opts.pop("node_status_update_frequency"), **opts)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(asyncio.run(Kubelet(options).run()))


def _key_values(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected key=value", param_hint="--node-labels")
        pairs[key] = value
    return pairs


@main.command()
@click.option("--node-name", required=True, help="the node whose data plane this programs")
@click.option("--server", default=None,
              help="apiservers host:port,... (default: MINIK8S_SERVERS or config)")
@click.option("--cluster-name", default="minik8s",
              help="names this cluster's chains and sink (several may share a host)")
@click.option("--proxy-mode", default="", help="iptables or userspace (default: iptables "
              "where this process may program it)")
@click.option("--service-cidr", default="10.96.0.0/16", help="routed to the sink")
@click.option("--cluster-cidr", default="10.244.0.0/16",
              help="pod addresses; service traffic from elsewhere is masqueraded")
@click.option("--node-ip", default="127.0.0.1", help="where userspace NodePorts listen")
@click.option("--bind-address", default="127.0.0.1")
@click.option("--port", default=10256, help="gRPC health port (0: pick one)")
@click.option("--http-port", default=10249, help="/healthz, /readyz and /metrics (0: pick one)")
@click.option("--sync-period", default=30.0,
              help="seconds between full syncs (they repair changes made by hand)")
@click.option("--min-sync-period", default=0.0, help="least seconds between two syncs")
@click.option("--cleanup", is_flag=True, help="remove the rules and sink of this cluster, exit")
@click.option("--log-level", default="INFO")
def proxy(log_level: str, server: str | None, cleanup: bool, **opts: object) -> None:
    """Make Service ClusterIPs and NodePorts work on this node."""
    from proxy.proxier import ProxyOptions
    from proxy.proxier import cleanup as clean_up
    from proxy.proxier import run as run_proxy

    serving.setup_logging(f"proxy/{opts['node_name']}", log_level)
    try:
        options = ProxyOptions(servers=config.servers(server) if not cleanup else [],
                               cluster=opts.pop("cluster_name"), mode=opts.pop("proxy_mode"),
                               **opts)
        netcheck.check_cidr(options.service_cidr, "--service-cidr")
    except (config.ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if cleanup:
        asyncio.run(clean_up(options))
        return
    sys.exit(asyncio.run(run_proxy(options)))


@main.command()
@click.option("--server", default=None,
              help="apiservers host:port,... (default: MINIK8S_SERVERS or config)")
@click.option("--bind-address", default="127.0.0.1", help="addresses to answer on, a,b,...")
@click.option("--port", default=53, help="DNS port (UDP and TCP)")
@click.option("--http-port", default=10054, help="/healthz, /readyz and /metrics (0: pick one)")
@click.option("--cluster-domain", default="cluster.local")
@click.option("--upstream", default="", help="host:port to forward other names to "
              "(default: refuse them)")
@click.option("--cluster-ip", default="", help="ClusterIP of kube-system/kube-dns, which this "
              "replica joins (with --advertise-address)")
@click.option("--advertise-address", default="", help="this replica's address in kube-dns")
@click.option("--log-level", default="INFO")
def dns(log_level: str, server: str | None, bind_address: str, cluster_domain: str,
        **opts: object) -> None:
    """Answer the cluster's DNS names (the role CoreDNS plays)."""
    from minik8s.dns.main import DnsOptions
    from minik8s.dns.main import run as run_dns

    serving.setup_logging("dns", log_level)
    try:
        options = DnsOptions(servers=config.servers(server), domain=cluster_domain,
                             bind_addresses=bind_address.split(","), **opts)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(asyncio.run(run_dns(options)))


@main.command()
@click.option("--server", default=None,
              help="apiservers host:port,... (default: MINIK8S_SERVERS or config)")
@click.option("--bind-address", default="127.0.0.1", help="address to serve the pages on")
@click.option("--port", default=8001, help="port of the pages, /healthz and /metrics "
              "(0: pick one)")
@click.option("--prometheus", default="", show_default=False, help="Prometheus base URL for the charts, "
              "e.g. http://prometheus:9090 (default: no charts)")
@click.option("--log-level", default="INFO")
def dashboard(log_level: str, server: str | None, prometheus: str, **opts: object) -> None:
    """Serve a read-only, live web view of the cluster."""
    from minik8s.dashboard.main import DashboardOptions
    from minik8s.dashboard.main import run as run_dashboard

    if prometheus and not prometheus.startswith(("http://", "https://")):
        raise click.BadParameter(f"{prometheus!r}: expected http://HOST:PORT",
                                 param_hint="--prometheus")
    serving.setup_logging("dashboard", log_level)
    try:
        options = DashboardOptions(servers=config.servers(server), prometheus=prometheus,
                                   **opts)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(asyncio.run(run_dashboard(options)))


@main.command("local-up")
@click.option("--masters", default=3,
              help="etcd members, apiservers, schedulers and controller-managers")
@click.option("--nodes", default=2, help="worker nodes (kubelets, on the host's Docker engine)")
@click.option("--workdir", default=".work/cluster", type=click.Path(path_type=Path))
@click.option("--service-cidr", default="",
              help="ClusterIP range (default: the first free of 10.96.0.0/16 .. 10.103.0.0/16)")
@click.option("--detach", is_flag=True, help="start in the background and return")
@click.option("--down", is_flag=True, help="stop the cluster started in --workdir")
@click.option("--insecure", is_flag=True,
              help="development only: no TLS, no authentication, no authorization")
def local_up(masters: int, nodes: int, workdir: Path, service_cidr: str, detach: bool,
             down: bool, insecure: bool) -> None:
    """Run a local cluster of real processes (Ctrl-C stops it)."""
    workdir = workdir.resolve()
    try:
        if down:
            _down(workdir)
            return
        workdir.mkdir(parents=True, exist_ok=True)
        if detach:
            _detach(workdir, masters, nodes, service_cidr, insecure)
            return
        cluster = LocalCluster(workdir=workdir, masters=masters, schedulers=masters,
                               controller_managers=masters, nodes=nodes, proxy=nodes > 0,
                               dns=2 if nodes else 0,
                               service_cidr=service_cidr, insecure=insecure)
        click.echo(f"starting {masters} etcd members, apiservers, schedulers and "
                   f"controller-managers, {nodes} kubelets, a proxy and 2 DNS replicas, in {workdir}")
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    cluster.write_admin_config(config.default_path())
    _describe(cluster)
    click.echo("running; press Ctrl-C to stop", err=True)
    cluster.run_until_signalled()
    click.echo("stopped")


def _user_options(command: Callable[..., None]) -> Callable[..., None]:
    """USER, --group..., and which cluster: --workdir (local-up) or --compose PROJECT."""
    for option in reversed([
        click.argument("user"),
        click.option("--group", "groups", multiple=True,
                     help="a group of the user (repeatable)"),
        click.option("--workdir", default=".work/cluster", type=click.Path(path_type=Path),
                     help="the local-up cluster to add the user to"),
        click.option("--compose", metavar="PROJECT",
                     help="add the user to this compose project's cluster (make up: minik8s)"),
    ]):
        command = option(command)
    return command


def _issue(issue: Callable[..., Path], user: str, groups: tuple[str, ...], workdir: Path,
           compose: str | None) -> None:
    try:
        access = (compose_access(Path(".work/compose") / compose) if compose
                  else LocalCluster.load(workdir.resolve())[0].users)
        click.echo(issue(access, user, groups))
    except (ClusterError, UserError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("create-user")
@_user_options
def create_user(user: str, groups: tuple[str, ...], workdir: Path, compose: str | None) -> None:
    """Give USER a client certificate; print the path of a client config using it.
    USER has no rights until a role is bound to it (docs/security.md)."""
    _issue(ClusterAccess.issue_certificate, user, groups, workdir, compose)


@main.command("create-token")
@_user_options
def create_token(user: str, groups: tuple[str, ...], workdir: Path, compose: str | None) -> None:
    """Give USER a bearer token; print the path of a client config holding it.
    USER has no rights until a role is bound to it (docs/security.md)."""
    _issue(ClusterAccess.issue_token, user, groups, workdir, compose)


def _detach(workdir: Path, masters: int, nodes: int, service_cidr: str, insecure: bool) -> None:
    """Run local-up in the background (it supervises the cluster); wait until it is up."""
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    log_path = workdir / "logs" / "local-up.log"
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "minik8s.cli.daemons", "local-up", "--workdir", str(workdir),
             "--masters", str(masters), "--nodes", str(nodes), "--service-cidr", service_cidr,
             *(["--insecure"] if insecure else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    deadline = time.monotonic() + 120
    while "press Ctrl-C" not in log_path.read_text():
        if child.poll() is not None or time.monotonic() > deadline:
            raise ClusterError(f"the cluster did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    click.echo(log_path.read_text().replace("running; press Ctrl-C to stop\n", ""), nl=False)


def _down(workdir: Path) -> None:
    """Stop the cluster in workdir: through its supervisor if it runs, else directly."""
    cluster, supervisor = LocalCluster.load(workdir)
    if supervisor and supervisor != os.getpid() and _is_local_up(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _is_local_up(supervisor) and time.monotonic() < deadline:
            time.sleep(0.2)
    cluster.stop()
    click.echo(f"stopped the cluster in {workdir}")


def _is_local_up(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"local-up" in f.read()
    except FileNotFoundError:
        return False


def _describe(cluster: LocalCluster) -> None:
    click.echo(f"etcd:       {','.join(cluster.etcd_endpoints)}")
    click.echo(f"apiservers: {','.join(cluster.servers)}")
    for p in cluster.procs.values():
        if "http" in p.ports:
            serves = "  ".join(f"{kind} {cluster.host}:{port}" for kind, port in p.ports.items()
                               if kind != "http")
            click.echo(f"  {p.name}: {serves}  "
                       f"http://{cluster.host}:{p.ports['http']}/healthz  (pid {p.pid})")
    click.echo(f"client config written to {config.default_path()}; logs in "
               f"{cluster.workdir / 'logs'}")
    click.echo(f"stop with: minik8s local-up --down --workdir {cluster.workdir}")


if __name__ == "__main__":
    sys.exit(main())
