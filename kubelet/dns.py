"""A pod's /etc/resolv.conf, from its dnsPolicy and dnsConfig, as the kubelet writes it.

ClusterFirst (the default) points the pod at the cluster DNS with the search
path ``<ns>.svc.<domain> svc.<domain> <domain>`` and ``ndots:5``, so a
Service's short name resolves; Default keeps what the engine gives (the
node's resolvers); None uses dnsConfig alone. dnsConfig's nameservers,
searches and options are added in every policy. None of this applies when
the kubelet knows no cluster DNS (``--cluster-dns``): ClusterFirst then
falls back to Default, as in Kubernetes.
"""
from __future__ import annotations

from minik8s.api.v1 import types_pb2 as t


def resolv_conf(pod: t.Pod, cluster_dns: str, domain: str) -> str | None:
    """The file's text, or None to keep the engine's own."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    config = pod.spec.dns_config
    nameservers: list[str] = []
    searches: list[str] = []
    options: dict[str, str] = {}
    if policy == "ClusterFirst" and cluster_dns:
        ns = pod.metadata.namespace
        nameservers.append(cluster_dns)
        searches += [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        options["ndots"] = "5"
    elif policy != "None" and not pod.spec.HasField("dns_config"):
        return None
    nameservers += [n for n in config.nameservers if n not in nameservers]
    searches += [s for s in config.searches if s not in searches]
    options.update({o.name: o.value for o in config.options})
    lines = [f"nameserver {n}" for n in nameservers[:3]]  # resolvers read three at most
    if searches:
        lines.append("search " + " ".join(searches[:6]))
    if options:
        lines.append("options " + " ".join(f"{k}:{v}" if v else k for k, v in options.items()))
    return "\n".join(lines) + "\n"
