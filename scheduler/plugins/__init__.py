"""The default plugin set, with kube-scheduler's default score weights.

Filters run in kube-scheduler's order, cheapest and most decisive first.
Weights: TaintToleration 3, NodeAffinity 2 (kubescheduler.config.k8s.io/v1),
NodeResourcesLeastAllocated 1 and NodeResourcesBalancedAllocation 1 (the
NodeResourcesFit score is LeastAllocated), SelectorSpread 1 (its weight when
it was a default plugin).
"""
from __future__ import annotations

import random

from ..framework import Framework
from .node_affinity import NodeAffinity
from .node_ports import NodePorts
from .node_resources import BalancedAllocation, Fit, LeastAllocated
from .node_unschedulable import NodeUnschedulable
from .selector_spread import SelectorSpread
from .taint_toleration import TaintToleration


def default_framework(*, percentage_of_nodes_to_score: int = 0,
                      rng: random.Random | None = None) -> Framework:
    taints, affinity = TaintToleration(weight=3), NodeAffinity(weight=2)
    return Framework(
        filters=[NodeUnschedulable(), taints, affinity, NodePorts(), Fit()],
        scores=[taints, affinity, LeastAllocated(weight=1), BalancedAllocation(weight=1),
                SelectorSpread(weight=1)],
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
        rng=rng,
    )
