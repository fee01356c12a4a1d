"""`minik8s`: the daemons (apiserver, ...) and the local cluster launcher.

Every flag can also be set by an environment variable named after it:
MINIK8S_<COMMAND>_<FLAG>, e.g. MINIK8S_APISERVER_ETCD_SERVERS.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from minik8s import config, serving
from minik8s.localcluster import ClusterError, LocalCluster


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
@click.option("--bookmark-interval", default=5.0, help="seconds between watch bookmarks")
@click.option("--etcd-request-timeout", default=5.0,
              help="seconds an etcd request may take, failing over between members")
@click.option("--max-object-bytes", default=1_572_864, help="largest object accepted")
@click.option("--log-level", default="INFO")
def apiserver(etcd_servers: str, log_level: str, **opts: object) -> None:
    """Serve the API, storing objects in etcd."""
    from apiserver.server import Options, run

    serving.setup_logging("apiserver", log_level)
    asyncio.run(run(Options(etcd_servers=config.split_servers(etcd_servers), **opts)))


@main.command("local-up")
@click.option("--masters", default=3, help="etcd members and apiservers")
@click.option("--nodes", default=0, help="worker nodes (kubelets), when available")
@click.option("--workdir", default=".work/cluster", type=click.Path(path_type=Path))
@click.option("--service-cidr", default="10.96.0.0/16")
@click.option("--detach", is_flag=True, help="start and return, leaving the cluster running")
@click.option("--down", is_flag=True, help="stop the cluster started in --workdir")
def local_up(masters: int, nodes: int, workdir: Path, service_cidr: str, detach: bool,
             down: bool) -> None:
    """Run a local cluster of real processes (Ctrl-C stops it)."""
    workdir = workdir.resolve()
    try:
        if down:
            LocalCluster.load(workdir).stop()
            click.echo(f"stopped the cluster in {workdir}")
            return
        if nodes:
            raise click.UsageError("--nodes needs the kubelet, which this version lacks")
        workdir.mkdir(parents=True, exist_ok=True)
        cluster = LocalCluster(workdir=workdir, masters=masters, service_cidr=service_cidr)
        click.echo(f"starting {masters} etcd members and {masters} apiservers in {workdir} ...")
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    config.write(config.default_path(), cluster.servers)
    _describe(cluster)
    if detach:
        return
    click.echo("running; press Ctrl-C to stop")
    _wait_for_signal()
    cluster.stop()
    click.echo("stopped")


def _describe(cluster: LocalCluster) -> None:
    click.echo(f"etcd:       {','.join(cluster.etcd_endpoints)}")
    click.echo(f"apiservers: {','.join(cluster.servers)}")
    for p in cluster.apiserver_procs():
        click.echo(f"  {p.name}: grpc {cluster.host}:{p.ports['grpc']}  "
                   f"http://{cluster.host}:{p.ports['http']}/healthz  (pid {p.pid})")
    click.echo(f"client config written to {config.default_path()}; logs in "
               f"{cluster.workdir / 'logs'}")
    click.echo(f"stop with: minik8s local-up --down --workdir {cluster.workdir}")


def _wait_for_signal() -> None:
    received = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: received.append(s))
    while not received:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
