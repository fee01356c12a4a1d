"""How a pod's spec becomes Docker containers: names, labels, env, limits, mounts.

Pure functions from the pod to Docker's create parameters, so every rule
(command vs entrypoint, CPU shares from requests, service variables) can be
read and tested without an engine.

A pod is a sandbox (a pause container that holds the network namespace, the
pod's IP and its host ports) plus app containers joined to it with
``network_mode=container:<sandbox>``: they share localhost and the hostname.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubelet import labels
from minik8s.api.v1 import types_pb2 as t
from minik8s.quantity import cpu_millis, to_bytes

DEFAULT_GRACE = 30
# on the Docker volume of a persistentVolumeClaim: whose claim it holds
CLAIM_NAMESPACE_LABEL = f"{labels.PREFIX}.claim.namespace"
CLAIM_NAME_LABEL = f"{labels.PREFIX}.claim.name"


@dataclass(frozen=True)
class Owner:
    """Who owns the containers: which cluster's kubelet, for which node."""

    cluster: str
    node: str


def grace_of(pod: t.Pod) -> int:
    """Seconds between SIGTERM and SIGKILL: the deletion's grace, else the spec's."""
    if pod.metadata.HasField("deletion_grace_period_seconds"):
        return int(pod.metadata.deletion_grace_period_seconds)
    if pod.spec.HasField("termination_grace_period_seconds"):
        return int(pod.spec.termination_grace_period_seconds)
    return DEFAULT_GRACE


def docker_name(pod: t.Pod, container: str, attempt: int) -> str:
    """Kubernetes' dockershim naming: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>."""
    meta = pod.metadata
    return f"k8s_{container}_{meta.name}_{meta.namespace}_{meta.uid}_{attempt}"


def container_labels(owner: Owner, pod: t.Pod, container: str, restart_count: int,
                     init: bool = False) -> dict[str, str]:
    result = {
        labels.CLUSTER: owner.cluster, labels.NODE: owner.node,
        labels.POD_UID: pod.metadata.uid, labels.POD_NAMESPACE: pod.metadata.namespace,
        labels.POD_NAME: pod.metadata.name, labels.CONTAINER_NAME: container,
        labels.RESTART_COUNT: str(restart_count), labels.GRACE: str(grace_of(pod)),
    }
    if init:
        result[labels.INIT] = "true"
    return result


def sandbox_spec(owner: Owner, pod: t.Pod, *, pause_image: str, attempt: int, network: str,
                 ip: str, host_ip: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, host_config) of the pod's pause container."""
    ports = [p for c in pod.spec.containers for p in c.ports if p.host_port]
    config_labels = container_labels(owner, pod, labels.SANDBOX, attempt)
    if ip:
        config_labels[labels.POD_IP] = ip
    config = {
        "image": pause_image, "hostname": pod.spec.hostname or pod.metadata.name,
        "labels": config_labels,
        "ports": [(p.container_port, (p.protocol or "TCP").lower()) for p in ports],
    }
    host_config = {
        "network_mode": network,
        "ipc_mode": "shareable",  # the app containers join its IPC namespace too
        "port_bindings": {f"{p.container_port}/{(p.protocol or 'TCP').lower()}":
                          (p.host_ip or host_ip, p.host_port) for p in ports},
    }
    return config, host_config


def app_spec(owner: Owner, pod: t.Pod, container: t.Container, *, sandbox_id: str,
             restart_count: int, init: bool, service_env: dict[str, str],
             volume_dirs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, host_config) of one run of an app or init container."""
    config: dict[str, Any] = {
        "image": container.image,
        "labels": container_labels(owner, pod, container.name, restart_count, init),
        "environment": env_of(container, service_env),
        "working_dir": container.working_dir or None,
        "stop_signal": "SIGTERM",
    }
    # Kubernetes' command replaces the image's ENTRYPOINT, args its CMD
    if container.command:
        config["entrypoint"] = list(container.command)
        config["command"] = list(container.args) or None
    elif container.args:
        config["command"] = list(container.args)
    host_config: dict[str, Any] = {
        "network_mode": f"container:{sandbox_id}",
        "ipc_mode": f"container:{sandbox_id}",
        "binds": mounts_of(container, pod, volume_dirs),
        **limits_of(container.resources),
    }
    return config, host_config


def env_of(container: t.Container, service_env: dict[str, str]) -> dict[str, str]:
    """Service variables first, so the container's own env wins on a clash."""
    return {**service_env, **{e.name: e.value for e in container.env}}


def limits_of(resources: t.ResourceRequirements) -> dict[str, Any]:
    """Docker resource settings: limits cap the container, the cpu request weighs it."""
    result: dict[str, Any] = {}
    cpu_request = resources.requests.get("cpu") or resources.limits.get("cpu")
    if cpu_request:
        result["cpu_shares"] = max(2, cpu_millis(cpu_request) * 1024 // 1000)
    if "cpu" in resources.limits:
        result["nano_cpus"] = cpu_millis(resources.limits["cpu"]) * 1_000_000
    if "memory" in resources.limits:
        memory = to_bytes(resources.limits["memory"])
        result["mem_limit"] = memory
        result["memswap_limit"] = memory  # no swap beyond the limit
    return result


def mounts_of(container: t.Container, pod: t.Pod, volume_dirs: dict[str, str]) -> list[str]:
    """Docker binds "source:container[:ro]" for the container's volume mounts.

    The source is a host directory, or for a persistentVolumeClaim the name of
    a Docker volume (see claim_volume_name), which takes no subPath (the
    engine's API 1.41 has no volume subpaths). A claim mounted readOnly in
    the pod's volume is read-only in every container.
    """
    claims = {v.name: v.persistent_volume_claim for v in pod.spec.volumes
              if v.HasField("persistent_volume_claim")}
    binds = []
    for mount in container.volume_mounts:
        source = volume_dirs[mount.name]
        claim = claims.get(mount.name)
        if mount.sub_path:
            if claim is not None:
                raise ValueError(f'volume "{mount.name}": subPath is not supported on a '
                                 "persistentVolumeClaim volume")
            source = f"{source}/{mount.sub_path}"
        read_only = mount.read_only or (claim is not None and claim.read_only)
        binds.append(f"{source}:{mount.mount_path}:{'ro' if read_only else 'rw'}")
    return binds


def claim_volume_name(cluster: str, namespace: str, claim: str) -> str:
    """The Docker volume holding a claim's data on a node: minik8s-<cluster>-<namespace>-<claim>."""
    return f"minik8s-{cluster}-{namespace}-{claim}"


def claim_volume_labels(cluster: str, namespace: str, claim: str) -> dict[str, str]:
    """What a claim's Docker volume is labelled with: the cluster (so tearing the
    cluster down removes it) and the claim it holds."""
    return {labels.CLUSTER: cluster, CLAIM_NAMESPACE_LABEL: namespace, CLAIM_NAME_LABEL: claim}


def service_env(services: list[t.Service]) -> dict[str, str]:
    """The docker-links style variables Kubernetes gives every container.

    For each service with a ClusterIP in the pod's namespace: FOO_SERVICE_HOST,
    FOO_SERVICE_PORT (the first port), FOO_SERVICE_PORT_<NAME> per named port,
    and FOO_PORT, FOO_PORT_80_TCP, ..._PROTO/_PORT/_ADDR.
    """
    env: dict[str, str] = {}
    for svc in services:
        ip = svc.spec.cluster_ip
        if not ip or ip == "None" or not svc.spec.ports:
            continue
        prefix = _env_name(svc.metadata.name)
        first = svc.spec.ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first.port)
        env[f"{prefix}_PORT"] = f"{(first.protocol or 'TCP').lower()}://{ip}:{first.port}"
        for port in svc.spec.ports:
            protocol = port.protocol or "TCP"
            if port.name:
                env[f"{prefix}_SERVICE_PORT_{_env_name(port.name)}"] = str(port.port)
            base = f"{prefix}_PORT_{port.port}_{protocol}"
            env[base] = f"{protocol.lower()}://{ip}:{port.port}"
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port.port)
            env[f"{base}_ADDR"] = ip
    return env


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())
