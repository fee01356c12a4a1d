"""A local cluster of real processes: etcd members, apiservers, schedulers,
controller-managers and kubelets.

`minik8s local-up` and the integration tests both use this. Everything it
starts is recorded in <workdir>/cluster.json (names, PIDs, ports), so
`local-up --down` stops exactly those processes and nothing else. The
kubelets share the host's Docker engine: their pods sit on one Docker network
named after the cluster, and every container carries the cluster's name as a
label, so stopping the cluster removes exactly its own containers. Leader-
elected components exit when they lose their lease; the supervisor (a thread
of whoever runs the cluster) starts them again, as a real supervisor would.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from apiserver.etcd import EtcdTls
from minik8s import clusterpki, config, netcheck, pki, podnet
from minik8s.clusterpki import ClusterPki
from minik8s.pki import CertFiles, Subject
from minik8s.users import ClusterAccess, file_name

STATE_FILE = "cluster.json"
DAEMON = [sys.executable, "-m", "minik8s.cli.daemons"]
# stop order: clients of the API first, etcd last
ROLES = ("kubelet", "proxy", "dns", "scheduler", "controller-manager", "apiserver", "etcd")


class ClusterError(Exception):
    pass


# Ports are picked below Linux's ephemeral range (32768-60999), so the
# outgoing connections of other processes cannot take one between the moment
# it is picked and the moment its server binds it.
_PORTS = range(20000, 32000)
_given: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on, not handed out before by this process."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise ClusterError("no free port found")


@dataclass
class Proc:
    name: str
    role: str
    argv: list[str]
    ports: dict[str, int]
    supervised: bool = False   # started again when it exits
    pid: int = 0
    config: str = ""           # its client config (MINIK8S_CONFIG), if it calls the API
    cgroup: str = ""           # a cgroup v2 directory it runs in (every restart too), if any

    @property
    def alive(self) -> bool:
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie child is dead for our purposes
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False


@dataclass
class LocalCluster:
    workdir: Path
    masters: int = 3
    schedulers: int = 0
    controller_managers: int = 0
    nodes: int = 0
    host: str = "127.0.0.1"
    proxy: bool = False      # one proxy programming this host's iptables
    dns: int = 0             # cluster DNS replicas (they need the nodes' pod network)
    service_cidr: str = ""   # empty: a free 10.x.0.0/16 from 10.96 on (10.96 without proxy)
    cluster_cidr: str = ""   # empty: a free 10.x.0.0/16 from 10.244 on
    name: str = ""           # empty: derived from workdir
    apiserver_args: list[str] = field(default_factory=list)
    scheduler_args: list[str] = field(default_factory=list)
    controller_manager_args: list[str] = field(default_factory=list)
    kubelet_args: list[str] = field(default_factory=list)
    proxy_args: list[str] = field(default_factory=list)
    pki_dir: Path | None = None   # None: <workdir>/pki; clusters may share one CA
    insecure: bool = False        # development only: no TLS, authentication or authorization
    # a cgroup v2 directory: if set, each process runs in a cgroup of its own below it,
    # <cgroup_parent>/<name>, so that its traffic can be told apart (iptables -m cgroup)
    cgroup_parent: str = ""
    procs: dict[str, Proc] = field(default_factory=dict)
    _pki: ClusterPki | None = field(default=None, repr=False)
    _children: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _supervisor: threading.Thread | None = field(default=None, repr=False)

    # ------------------------------------------------------------ layout

    def _choose_cidrs(self) -> None:
        """Ranges of the cluster's own where it programs this host (pod network, proxy)."""
        try:
            self.cluster_cidr = self.cluster_cidr or (
                netcheck.free_cidr("cluster CIDR", netcheck.CLUSTER_CIDRS) if self.nodes
                else "10.244.0.0/16")
            self.service_cidr = self.service_cidr or (
                netcheck.free_cidr("service CIDR", netcheck.SERVICE_CIDRS) if self.proxy
                else "10.96.0.0/16")
            netcheck.check_cidr(self.service_cidr, "service CIDR")
            netcheck.check_cidr(self.cluster_cidr, "cluster CIDR")
        except ValueError as exc:
            raise ClusterError(str(exc)) from None

    def _plan(self) -> None:
        self._plan_etcd()
        etcd = ",".join(self.etcd_endpoints)
        for i in range(self.masters):
            port, http, token = free_port(), free_port(), free_port()
            self._add(Proc(f"apiserver-{i}", "apiserver", [
                *DAEMON, "apiserver", "--etcd-servers", etcd, "--bind-address", self.host,
                "--port", str(port), "--http-port", str(http),
                "--service-cidr", self.service_cidr, *self._apiserver_security(token),
                *self.apiserver_args,
            ], {"grpc": port, "http": http, "token": token}))
        for i in range(self.schedulers):
            self._add(self._component(f"scheduler-{i}", "scheduler", self.scheduler_args))
        for i in range(self.controller_managers):
            self._add(self._component(f"controller-manager-{i}", "controller-manager", [
                "--cluster-cidr", self.cluster_cidr, *self.controller_manager_args]))
        for i in range(self.dns):
            self._add(self._dns(f"dns-{i}"))
        for i in range(self.nodes):
            self._add(self._kubelet(f"node-{i}"))
        if self.proxy:
            port, http = free_port(), free_port()
            self._add(Proc("proxy", "proxy", [
                *DAEMON, "proxy", *self._proxy_flags(), "--server", ",".join(self.servers),
                "--bind-address", self.host, "--port", str(port), "--http-port", str(http),
                *self.proxy_args,
            ], {"grpc": port, "http": http}, supervised=True))

    def _apiserver_security(self, token_port: int) -> list[str]:
        if self._pki is None:
            return ["--insecure"]
        serving, etcd = self._pki.server("apiserver"), self._etcd_client()
        ca = str(self._pki.ca.cert_path)
        return ["--tls-cert-file", str(serving.cert), "--tls-private-key-file", str(serving.key),
                "--client-ca-file", ca, "--token-auth-file", str(self.token_file),
                "--token-port", str(token_port), "--etcd-cafile", ca,
                "--etcd-certfile", str(etcd.cert), "--etcd-keyfile", str(etcd.key)]

    @property
    def token_file(self) -> Path:
        """The apiservers' static token file: token,user,uid,"groups" lines."""
        return self.workdir / "auth" / "tokens.csv"

    def _proxy_flags(self) -> list[str]:
        return ["--node-name", "host", "--cluster-name", self.name,
                "--service-cidr", self.service_cidr, "--cluster-cidr", self.cluster_cidr]

    @property
    def dns_ip(self) -> str:
        """The kube-dns ClusterIP: the tenth address of the service CIDR."""
        return str(ipaddress.ip_network(self.service_cidr).network_address + 10)

    def _dns(self, name: str) -> Proc:
        """A DNS replica on loopback and on the pod network's gateway, where pods reach it."""
        port, http = free_port(), free_port()
        gateway = str(next(ipaddress.ip_network(self.cluster_cidr).hosts()))
        return Proc(name, "dns", [
            *DAEMON, "dns", "--server", ",".join(self.servers),
            "--bind-address", f"{self.host},{gateway}", "--port", str(port),
            "--http-port", str(http), "--cluster-ip", self.dns_ip,
            "--advertise-address", gateway,
        ], {"dns": port, "http": http}, supervised=True)

    def _kubelet(self, node: str) -> Proc:
        port, http = free_port(), free_port()
        dns = ["--cluster-dns", self.dns_ip] if self.dns else []
        return Proc(node, "kubelet", [
            *DAEMON, "kubelet", "--node-name", node, "--server", ",".join(self.servers),
            "--cluster-name", self.name, "--pod-network", self.name,
            "--cluster-cidr", self.cluster_cidr, "--node-ip", self.host,
            "--bind-address", self.host, "--port", str(port), "--http-port", str(http),
            "--root-dir", str(self.workdir / "kubelet" / node), *dns,
            *self._kubelet_security(node), *self.kubelet_args,
        ], {"grpc": port, "http": http}, supervised=True)

    def _kubelet_security(self, node: str) -> list[str]:
        """The kubelet API serves with the node's certificate (it names this host)."""
        if self._pki is None:
            return ["--insecure"]
        subject = clusterpki.node_subject(node, [self.host])
        files = self._pki.issue(file_name(subject), subject)
        return ["--tls-cert-file", str(files.cert), "--tls-private-key-file", str(files.key),
                "--client-ca-file", str(self._pki.ca.cert_path)]

    def _plan_etcd(self) -> None:
        peers = {f"etcd-{i}": free_port() for i in range(self.masters)}
        scheme = "http" if self._pki is None else "https"
        initial = ",".join(f"{n}={scheme}://{self.host}:{p}" for n, p in peers.items())
        token = f"minik8s-{os.getpid()}-{int(time.time())}"
        for name, peer in peers.items():
            client, metrics = free_port(), free_port()
            self._add(Proc(name, "etcd", [
                shutil.which("etcd") or "etcd", "--name", name,
                "--data-dir", str(self.workdir / "data" / name),
                "--listen-client-urls", f"{scheme}://{self.host}:{client}",
                "--advertise-client-urls", f"{scheme}://{self.host}:{client}",
                "--listen-peer-urls", f"{scheme}://{self.host}:{peer}",
                "--initial-advertise-peer-urls", f"{scheme}://{self.host}:{peer}",
                "--initial-cluster", initial, "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                # a member back from a partition must not depose the leader with the terms
                # it ran up alone (the default from etcd 3.5 on)
                "--pre-vote",
                "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
                # /health and /metrics in plain HTTP (the client port asks for certificates)
                "--listen-metrics-urls", f"http://{self.host}:{metrics}",
                *self._etcd_security(name),
            ], {"client": client, "peer": peer, "metrics": metrics}))

    def _etcd_security(self, name: str) -> list[str]:
        """Serving and peer TLS; clients (the apiservers) must show a certificate of our CA."""
        if self._pki is None:
            return []
        files, ca = self._pki.server(name), str(self._pki.ca.cert_path)
        cert, key = str(files.cert), str(files.key)
        return ["--cert-file", cert, "--key-file", key, "--client-cert-auth",
                "--trusted-ca-file", ca, "--peer-cert-file", cert, "--peer-key-file", key,
                "--peer-client-cert-auth", "--peer-trusted-ca-file", ca]

    def _etcd_client(self) -> CertFiles:
        assert self._pki is not None
        return self._pki.issue("apiserver-etcd-client", Subject("system:apiserver"))

    @property
    def etcd_tls(self) -> EtcdTls | None:
        """What a direct etcd client of this cluster (the apiserver, a test) presents."""
        if self._pki is None:
            return None
        files = self._etcd_client()
        return EtcdTls(self._pki.ca.cert_path, files.cert, files.key)

    def _component(self, name: str, role: str, extra: list[str]) -> Proc:
        """A leader-elected component: supervised, with health ports."""
        port, http = free_port(), free_port()
        return Proc(name, role, [
            *DAEMON, role, "--server", ",".join(self.servers), "--bind-address", self.host,
            "--port", str(port), "--http-port", str(http), *extra,
        ], {"grpc": port, "http": http}, supervised=True)

    def _add(self, proc: Proc) -> None:
        if self.cgroup_parent:
            proc.cgroup = os.path.join(self.cgroup_parent, proc.name)
        self.procs[proc.name] = proc

    def _write_client_configs(self) -> None:
        """Each API client process's config: its own certificate (or --insecure)."""
        for proc in self.procs.values():
            if proc.role in ("etcd", "apiserver"):
                continue
            path = self.workdir / "auth" / f"{proc.name}.conf"
            subject = clusterpki.node_subject(proc.name, [self.host]) \
                if proc.role == "kubelet" else clusterpki.IDENTITIES[proc.role]
            self._client_config(path, file_name(subject), subject)
            proc.config = str(path)

    def write_admin_config(self, path: Path) -> None:
        """A minictl config for this cluster as its administrator (system:masters)."""
        self._client_config(path, "admin", clusterpki.ADMIN)

    def _client_config(self, path: Path, name: str, subject: Subject) -> None:
        """A config for the servers presenting subject's certificate (issued as name),
        or an --insecure one."""
        if self._pki is None:
            config.write(path, self.servers, {"insecure": True})
        else:
            self._pki.client_config(path, self.servers, self._pki.issue(name, subject))

    @property
    def users(self) -> ClusterAccess:
        """Adding users to this cluster: a certificate or a token, and a config."""
        if self.insecure:
            raise ClusterError("an --insecure cluster has no users")
        return ClusterAccess(ca_dir=self.pki_dir or self.workdir / "pki",
                             auth_dir=self.workdir / "auth", token_file=self.token_file,
                             servers=self.servers, token_servers=self.token_servers)

    def role(self, role: str) -> list[Proc]:
        return [p for p in self.procs.values() if p.role == role]

    @property
    def servers(self) -> list[str]:
        return [f"{self.host}:{p.ports['grpc']}" for p in self.role("apiserver")]

    @property
    def token_servers(self) -> list[str]:
        """The apiservers' ports for clients with a bearer token and no certificate."""
        return [f"{self.host}:{p.ports['token']}" for p in self.role("apiserver")
                if "token" in p.ports]

    @property
    def etcd_endpoints(self) -> list[str]:
        return [f"{self.host}:{p.ports['client']}" for p in self.role("etcd")]

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Start every process; return when each one with an HTTP port is ready."""
        if shutil.which("etcd") is None:
            raise ClusterError("etcd is not installed (apt-get install etcd-server etcd-client)")
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.name = self.name or cluster_name(self.workdir)
        self._choose_cidrs()
        if not self.insecure:
            self._pki = ClusterPki(self.pki_dir or self.workdir / "pki", self.host)
            if not self.token_file.exists():
                pki.write_private(self.token_file, b"")
        self._plan()
        self._write_client_configs()
        if self.nodes:
            podnet.create(self.name, self.cluster_cidr)
        for proc in self.procs.values():
            self._spawn(proc)
        self.save()
        self.wait_ready(timeout)
        self.write_admin_config(self.workdir / "config")
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor",
                                            daemon=True)
        self._supervisor.start()

    def _spawn(self, proc: Proc) -> None:
        with self._lock:
            log = open(self.log_path(proc.name), "ab")  # noqa: SIM115
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            if proc.config:
                env["MINIK8S_CONFIG"] = proc.config
            argv = proc.argv
            if proc.cgroup:
                os.makedirs(proc.cgroup, exist_ok=True)
                argv = _in_cgroup(proc.cgroup, argv)
            child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=self.workdir)
            log.close()
            proc.pid = child.pid
            self._children[proc.name] = child

    def _supervise(self) -> None:
        """Start supervised processes again when they exit (after a second's pause)."""
        while not self._stopping.wait(1.0):
            with self._lock:
                for proc in self.procs.values():
                    if proc.supervised and not proc.alive and not self._stopping.is_set():
                        self._spawn(proc)
                        self.save()

    def wait_ready(self, timeout: float = 60.0, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = [self.procs[n] for n in names] if names else list(self.procs.values())
        pending = [p for p in pending if "http" in p.ports]
        while pending:
            proc = pending[0]
            if not proc.alive and not proc.supervised:
                raise ClusterError(f"{proc.name} exited; see {self.log_path(proc.name)}")
            if _http_ok(f"http://{self.host}:{proc.ports['http']}/readyz"):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise ClusterError(f"{proc.name} not ready after {timeout:.0f}s; see "
                                   f"{self.log_path(proc.name)}")
            time.sleep(0.1)

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send a real signal to one of the cluster's processes."""
        proc = self.procs[name]
        if proc.alive:
            os.kill(proc.pid, sig)

    def kill(self, name: str) -> None:
        """SIGKILL a process and reap it (a supervised one is started again)."""
        with self._lock:
            self.signal(name, signal.SIGKILL)
            self._reap(name, 10)

    def wait(self, name: str, timeout: float) -> int:
        """The exit code of a process this object started, once it exits."""
        return self._children[name].wait(timeout=timeout)

    def restart(self, name: str) -> None:
        """Start a stopped process again with the same command line and ports."""
        proc = self.procs[name]
        if proc.alive:
            raise ClusterError(f"{name} is still running")
        self._spawn(proc)
        self.save()

    def _reap(self, name: str, timeout: float) -> bool:
        child = self._children.get(name)
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while proc.alive and time.monotonic() < deadline:
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=0.1)
            else:
                time.sleep(0.1)
        return not proc.alive

    def stop(self) -> None:
        """SIGTERM everything (API clients, then apiservers, then etcd), SIGKILL what stays.

        An etcd leader whose peers stop with it waits for a leadership
        transfer that cannot happen; etcd is crash-safe, so it gets a short
        grace before SIGKILL.
        """
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for role in ROLES:
            group, grace = self.role(role), (2 if role == "etcd" else 10)
            for proc in group:
                self.signal(proc.name, signal.SIGCONT)  # a stopped process cannot exit
                self.signal(proc.name, signal.SIGTERM)
            for proc in group:
                if not self._reap(proc.name, grace):
                    self.kill(proc.name)
        for path in [p.cgroup for p in self.procs.values() if p.cgroup] + [self.cgroup_parent]:
            if path:
                _remove_cgroup(path)
        if self.name and self.role("kubelet"):
            podnet.remove(self.name)
        if self.role("proxy"):  # its rules outlive it, as kube-proxy's do: remove them
            subprocess.run([*DAEMON, "proxy", "--cleanup", *self._proxy_flags()],
                           capture_output=True, timeout=60, check=False)

    def run_until_signalled(self) -> None:
        """Supervise in the foreground until SIGINT or SIGTERM, then stop everything."""
        received: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, _f: received.append(s))
        while not received:
            signal.pause()
        self.stop()

    # ------------------------------------------------------------ state file

    def save(self) -> None:
        state = {"host": self.host, "name": self.name, "service_cidr": self.service_cidr,
                 "cluster_cidr": self.cluster_cidr, "supervisor": os.getpid(),
                 "pki_dir": str(self._pki.directory) if self._pki else "",
                 "procs": [asdict(p) for p in self.procs.values()]}
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, workdir: Path) -> tuple[LocalCluster, int]:
        """The cluster recorded in workdir, and the PID of the process supervising it."""
        try:
            state = json.loads((workdir / STATE_FILE).read_text())
        except FileNotFoundError:
            raise ClusterError(f"no cluster in {workdir} (no {STATE_FILE})") from None
        cluster = cls(workdir=workdir, host=state["host"], name=state.get("name", ""),
                      service_cidr=state.get("service_cidr", ""),
                      cluster_cidr=state.get("cluster_cidr", ""),
                      pki_dir=Path(state["pki_dir"]) if state.get("pki_dir") else None,
                      insecure=not state.get("pki_dir"))
        for p in state["procs"]:
            proc = Proc(**p)
            # only a PID still running the command we started is ours to stop
            if proc.alive and not _runs(proc.pid, proc.argv):
                proc.pid = 0
            cluster.procs[proc.name] = proc
        return cluster, state.get("supervisor", 0)


def cluster_name(workdir: Path) -> str:
    """A name unique to the cluster in workdir: it labels the cluster's containers."""
    return "minik8s-" + hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:10]


def _runs(pid: int, argv: list[str]) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    return [a.decode() for a in cmdline if a][1:] == argv[1:]


def _in_cgroup(cgroup: str, argv: list[str]) -> list[str]:
    """argv, run by a shell that first moves itself into a cgroup, then execs it (same PID,
    so every socket it makes is made there). Not preexec_fn: Python code between fork
    and exec in a threaded process can crash the child."""
    join = 'echo 0 > "$1/cgroup.procs" && shift && exec "$@"'   # 0: the writing process
    return ["/bin/sh", "-c", join, "sh", cgroup, *argv]


def _remove_cgroup(path: str, timeout: float = 5.0) -> None:
    """rmdir a cgroup once the kernel has let go of its last process (EBUSY until then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
