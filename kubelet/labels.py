"""The labels a kubelet puts on the Docker containers it owns.

They are the kubelet's memory: a restarted kubelet rebuilds its view of every
pod from them (which pod, which container, how many restarts so far), and
they scope each kubelet to its own containers when several nodes share one
Docker engine (the local cluster).
"""
from __future__ import annotations

from collections.abc import Mapping

from minik8s.podnet import CLUSTER_LABEL

PREFIX = "io.minik8s"
CLUSTER = CLUSTER_LABEL                # which cluster's kubelets own it (and its network)
NODE = f"{PREFIX}.node"                # which node's kubelet owns it
POD_UID = f"{PREFIX}.pod.uid"
POD_NAMESPACE = f"{PREFIX}.pod.namespace"
POD_NAME = f"{PREFIX}.pod.name"
CONTAINER_NAME = f"{PREFIX}.container.name"   # SANDBOX for the pause container
RESTART_COUNT = f"{PREFIX}.container.restart-count"
INIT = f"{PREFIX}.container.init"             # "true" for init containers
GRACE = f"{PREFIX}.pod.termination-grace-period"
POD_IP = f"{PREFIX}.pod.ip"                  # on the sandbox: the address it was given

SANDBOX = "POD"  # the container name of a pod's pause container, as in Kubernetes


def owner_filter(cluster: str, node: str) -> list[str]:
    """Docker label filters matching every container one kubelet owns."""
    return [f"{CLUSTER}={cluster}", f"{NODE}={node}"]


def pod_key(labels: Mapping[str, str]) -> str | None:
    """The "namespace/name" of the pod a container belongs to, if it is one of ours."""
    namespace, name = labels.get(POD_NAMESPACE), labels.get(POD_NAME)
    return f"{namespace}/{name}" if namespace and name else None
