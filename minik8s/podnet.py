"""The pod network of a local cluster: one Docker bridge for every node's pods.

Its subnet is the cluster CIDR, so each node's podCIDR is a slice of it and a
kubelet gives its pods addresses from its own slice; the bridge also routes
the whole cluster CIDR on the host, so no pod address leaves the machine.
The launcher creates it before the kubelets start (a kubelet creates it only
if it is missing) and removes it, with every container and volume labelled
as the cluster's, when the cluster stops.
"""
from __future__ import annotations

import ipaddress
import logging

import docker
import docker.errors
import docker.types

from minik8s import netcheck

log = logging.getLogger("minik8s.podnet")

CLUSTER_LABEL = "io.minik8s.cluster"


def create(name: str, cidr: str, client: docker.DockerClient | None = None) -> None:
    """The bridge network `name` over cidr, unless it exists (ValueError for an unsafe cidr).

    cidr is the cluster CIDR in local mode (one network for every node), the
    node's podCIDR in node mode (one engine per node).
    """
    client = client or docker.from_env()
    try:
        client.api.inspect_network(name)
        return
    except docker.errors.NotFound:
        pass
    netcheck.check_cidr(cidr, "cluster CIDR")
    gateway = str(next(ipaddress.ip_network(cidr).hosts()))
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=cidr,
                                                                       gateway=gateway)])
    try:
        # no masquerade: pod addresses are kept between nodes, and a pod's
        # packet for an outside address is not given the machine's address
        client.api.create_network(name, driver="bridge", ipam=ipam, check_duplicate=True,
                                  labels={CLUSTER_LABEL: name},
                                  options={"com.docker.network.bridge.enable_ip_masquerade":
                                           "false"})
        log.info("created pod network %s (%s)", name, cidr)
    except docker.errors.APIError as err:
        if "already exists" not in str(err):  # another kubelet was quicker
            raise


def remove(name: str) -> None:
    """Remove every container labelled as the cluster's, then its volumes (the
    pods' persistentVolumeClaim data), then its network."""
    try:
        client = docker.from_env()
        mine = {"label": f"{CLUSTER_LABEL}={name}"}
        for container in client.containers.list(all=True, filters=mine):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters=mine):
            volume.remove(force=True)
        for network in client.networks.list(names=[name]):
            if network.attrs.get("Labels", {}).get(CLUSTER_LABEL) == name:
                network.remove()
    except docker.errors.DockerException as err:
        log.warning("cleaning up the pod network %s: %s", name, err)
