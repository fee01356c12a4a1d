"""proxy/rules.py: the iptables-restore text of the iptables mode."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import pytest

from proxy.model import ServicePort
from proxy.rules import Chains, render

CHAINS = Chains.for_cluster("x")
P = CHAINS.prefix
CIDR = "10.244.0.0/16"


def port(name: str = "web", endpoints: tuple[str, ...] = ("10.244.0.5:8080",), *,
         node_port: int = 0, affinity: int = 0, protocol: str = "TCP",
         cluster_ip: str = "10.96.0.10", port_number: int = 80) -> ServicePort:
    return ServicePort(namespace="ns", name=name, port_name="http", protocol=protocol,
                       cluster_ip=cluster_ip, port=port_number, node_port=node_port,
                       affinity_seconds=affinity, endpoints=endpoints)


@dataclass
class Table:
    chains: list[str] = field(default_factory=list)        # ":NAME - [0:0]" in order
    rules: list[tuple[str, str]] = field(default_factory=list)  # (chain, rule after -A chain)
    deleted: list[str] = field(default_factory=list)       # "-X NAME"
    lines: list[str] = field(default_factory=list)

    def chain(self, name: str) -> list[str]:
        return [rule for c, rule in self.rules if c == name]


def parse(text: str) -> dict[str, Table]:
    """iptables-restore input -> {table: Table}; checks the *table ... COMMIT framing."""
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            assert current is None, "table opened before the previous COMMIT"
            current = tables.setdefault(line[1:], Table())
            continue
        assert current is not None, f"line outside a table: {line}"
        if line == "COMMIT":
            current = None
            continue
        current.lines.append(line)
        if line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            chain, rule = line[3:].split(" ", 1)
            current.rules.append((chain, rule))
        elif line.startswith("-X "):
            current.deleted.append(line[3:])
        else:
            raise AssertionError(f"unexpected line: {line}")
    assert current is None, "last table not COMMITted"
    return tables


def target(rule: str) -> str:
    return rule.rsplit("-j ", 1)[1].split()[0]


def probability(rule: str) -> float:
    found = re.search(r"--probability (\S+)", rule)
    return float(found.group(1)) if found else 1.0


# ---------------------------------------------------------------- structure


def test_tables_framed_and_chains_ours_and_short() -> None:
    text = render([port(node_port=30080, affinity=60), port("empty", (), node_port=30081)],
                  CHAINS, CIDR, existing=[("nat", f"{P}-SVC-OLD"), ("filter", f"{P}-OLDF")])
    assert text.startswith("*nat\n") and text.endswith("COMMIT\n")
    tables = parse(text)
    assert list(tables) == ["nat", "filter"]
    for table in tables.values():
        assert table.chains and len(set(table.chains)) == len(table.chains)
        for name in table.chains:
            assert name.startswith(P + "-") and len(name) <= 28, name
        for chain, rule in table.rules:  # every rule in, and every jump to, a declared chain
            assert chain in table.chains
            if target(rule).startswith(P):
                assert target(rule) in table.chains


def test_same_input_same_text_and_names_differ_between_services() -> None:
    ports = [port("a"), port("b", cluster_ip="10.96.0.11")]
    assert render(ports, CHAINS, CIDR) == render(list(ports), Chains.for_cluster("x"), CIDR)
    a, b = ports
    assert CHAINS.svc(a) != CHAINS.svc(b)
    assert CHAINS.svc(a) != CHAINS.svc(replace(a, protocol="UDP"))
    assert CHAINS.sep(a, "10.0.0.1:80") != CHAINS.sep(b, "10.0.0.1:80") != \
        CHAINS.sep(a, "10.0.0.2:80")
    assert Chains.for_cluster("y").prefix != P


def test_hooks_cover_the_builtin_chains() -> None:
    hooks = CHAINS.hooks()
    assert {(table, builtin) for table, builtin, _ in hooks} == {
        ("nat", "PREROUTING"), ("nat", "OUTPUT"), ("nat", "POSTROUTING"),
        ("filter", "INPUT"), ("filter", "OUTPUT"), ("filter", "FORWARD")}
    assert ("nat", "PREROUTING", CHAINS.services) in hooks
    assert ("nat", "POSTROUTING", CHAINS.postrouting) in hooks
    assert all(chain.startswith(P + "-") for _, _, chain in hooks)
    tables = parse(render([], CHAINS, CIDR))  # every hooked chain exists in the render
    assert all(chain in tables[table].chains for table, _, chain in hooks)


def test_masquerade_of_marked_traffic() -> None:
    nat = parse(render([], CHAINS, CIDR))["nat"]
    assert nat.chain(CHAINS.mark_masq) == ["-j MARK --or-mark 0x4000"]
    post = nat.chain(CHAINS.postrouting)
    assert post[0] == "-m mark ! --mark 0x4000/0x4000 -j RETURN"
    assert target(post[-1]) == "MASQUERADE"


# ---------------------------------------------------------------- a service with endpoints


def test_cluster_ip_jumps_to_svc_chain_which_dnats_to_each_endpoint() -> None:
    p = port(endpoints=("10.244.0.5:8080", "10.244.1.7:8080"))
    nat = parse(render([p], CHAINS, CIDR))["nat"]
    svc = CHAINS.svc(p)
    [jump] = [r for r in nat.chain(CHAINS.services) if target(r) == svc]
    assert "-d 10.96.0.10/32 -p tcp -m tcp --dport 80" in jump
    assert svc in nat.chains
    seps = [target(r) for r in nat.chain(svc) if target(r) != CHAINS.mark_masq]
    assert seps == [CHAINS.sep(p, ep) for ep in p.endpoints]
    for sep, endpoint in zip(seps, p.endpoints, strict=True):
        rules = nat.chain(sep)
        assert rules[0] == f"-s {endpoint.split(':')[0]}/32 -j {CHAINS.mark_masq}"  # hairpin
        assert rules[-1].endswith(f"-j DNAT --to-destination {endpoint}")
        assert rules[-1].startswith("-p tcp ")


def test_traffic_from_outside_the_cluster_cidr_is_marked() -> None:
    p = port()
    nat = parse(render([p], CHAINS, CIDR))["nat"]
    first = nat.chain(CHAINS.svc(p))[0]
    assert f"! -s {CIDR}" in first and target(first) == CHAINS.mark_masq


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_endpoints_are_chosen_uniformly(n: int) -> None:
    p = port(endpoints=tuple(f"10.244.0.{i}:8080" for i in range(1, n + 1)))
    nat = parse(render([p], CHAINS, CIDR))["nat"]
    picks = [r for r in nat.chain(CHAINS.svc(p)) if "-SEP-" in target(r)]
    probs = [probability(r) for r in picks]
    assert probs == pytest.approx([1 / (n - i) for i in range(n)])
    assert "statistic" not in picks[-1]  # the last one catches whatever is left
    left = 1.0
    for prob in probs:  # each endpoint: its probability times that of skipping all before
        assert prob * left == pytest.approx(1 / n)
        left *= 1 - prob
    assert math.isclose(left, 0, abs_tol=1e-9)


def test_udp_service() -> None:
    p = port(protocol="UDP", port_number=53)
    nat = parse(render([p], CHAINS, CIDR))["nat"]
    assert "-d 10.96.0.10/32 -p udp -m udp --dport 53" in nat.chain(CHAINS.services)[0]
    assert nat.chain(CHAINS.sep(p, p.endpoints[0]))[-1].startswith("-p udp ")


def test_node_port_marks_and_jumps_and_nodeports_jump_is_last() -> None:
    p = port(node_port=30080)
    others = [port("a", cluster_ip="10.96.0.1"), port("z", cluster_ip="10.96.0.99")]
    nat = parse(render([others[0], p, others[1]], CHAINS, CIDR))["nat"]
    mark, jump = nat.chain(CHAINS.nodeports)
    assert "-p tcp -m tcp --dport 30080" in mark and target(mark) == CHAINS.mark_masq
    assert "-p tcp -m tcp --dport 30080" in jump and target(jump) == CHAINS.svc(p)
    last = nat.chain(CHAINS.services)[-1]
    assert "--dst-type LOCAL" in last and target(last) == CHAINS.nodeports


def test_no_node_port_rules_for_a_cluster_ip_service() -> None:
    nat = parse(render([port()], CHAINS, CIDR))["nat"]
    assert nat.chain(CHAINS.nodeports) == []


def test_affinity_checks_recent_before_random_and_sets_it_in_seps() -> None:
    p = port(endpoints=("10.244.0.5:8080", "10.244.1.7:8080"), affinity=600)
    nat = parse(render([p], CHAINS, CIDR))["nat"]
    rules = nat.chain(CHAINS.svc(p))
    seps = [CHAINS.sep(p, ep) for ep in p.endpoints]
    checks = [i for i, r in enumerate(rules) if "--rcheck" in r]
    randoms = [i for i, r in enumerate(rules) if "-m statistic" in r]
    assert len(checks) == 2 and max(checks) < min(randoms)
    for i, sep in zip(checks, seps, strict=True):
        assert f"-m recent --name {sep} " in rules[i] and "--seconds 600" in rules[i]
        assert "--rsource" in rules[i] and target(rules[i]) == sep
        dnat = nat.chain(sep)[-1]
        assert f"-m recent --name {sep} " in dnat and "--set" in dnat and "DNAT" in dnat


def test_no_affinity_no_recent() -> None:
    assert "-m recent" not in render([port(endpoints=("1.2.3.4:80", "1.2.3.5:80"))],
                                     CHAINS, CIDR)


# ---------------------------------------------------------------- a service without endpoints


def test_service_without_endpoints_is_rejected() -> None:
    p = port("empty", (), node_port=30081)
    tables = parse(render([p], CHAINS, CIDR))
    nat, filt = tables["nat"], tables["filter"]
    assert CHAINS.svc(p) not in nat.chains
    assert [r for r in nat.chain(CHAINS.services) if "10.96.0.10" in r] == []
    assert nat.chain(CHAINS.nodeports) == []
    [reject] = filt.chain(CHAINS.services)
    assert "-d 10.96.0.10/32 -p tcp -m tcp --dport 80" in reject
    assert reject.endswith("-j REJECT --reject-with icmp-port-unreachable")
    [external] = filt.chain(CHAINS.external)
    assert "--dport 30081" in external and "--dst-type LOCAL" in external
    assert external.endswith("-j REJECT --reject-with icmp-port-unreachable")


def test_service_with_endpoints_is_not_rejected() -> None:
    filt = parse(render([port(node_port=30080)], CHAINS, CIDR))["filter"]
    assert "REJECT" not in "\n".join(filt.lines)


# ---------------------------------------------------------------- stale chains


def test_stale_chains_declared_then_deleted_after_the_rules() -> None:
    old_nat, old_filter = f"{P}-SVC-GONEGONEGONE1", f"{P}-SEP-GONEGONEGONE2"
    tables = parse(render([port()], CHAINS, CIDR,
                          existing=[("nat", old_nat), ("filter", old_filter)]))
    for table, old in (tables["nat"], old_nat), (tables["filter"], old_filter):
        assert old in table.chains and table.deleted == [old]
        assert table.lines.index(f"-X {old}") > max(
            i for i, line in enumerate(table.lines) if line.startswith("-A "))
        assert table.chain(old) == []
    assert tables["nat"].deleted == [old_nat]  # each in its own table only


def test_a_stale_chain_still_wanted_is_not_deleted() -> None:
    p = port()
    nat = parse(render([p], CHAINS, CIDR, existing=[("nat", CHAINS.svc(p))]))["nat"]
    assert nat.deleted == [] and nat.chains.count(CHAINS.svc(p)) == 1
