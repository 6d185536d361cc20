"""What MIG could reach on the openb fill at best, and what its rounding costs.

Why this exists: the fill's MIG rows must be read against two references. The *offline
optimum* (``offline_optimum``) is the most useful allocation of the pods that arrived by
the reading, when an oracle picks which of them to place and every GPU's MIG layout: an
exact MILP (HiGHS) over the model's maximal layouts (``migctl.planner.patterns``), so the
MIG placement rules hold exactly; the nodes' CPU and whole-GPU pods' node locality are
left out, so no scheduler placing these pods can beat it. The *rounding tax*
(``rounding_taxes``) is how much more MIG allocates than the pods request: large for the
pods that share a GPU (a 150-milli pod takes a 2g, 286 milli), nil for whole-GPU pods.
Imported by ``bench.openb`` and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from bench.gpu_rules import MigRules
from bench.openb_data import Pod, Request
from migctl.planner.patterns import FitCache, maximal_patterns


@dataclass(frozen=True, slots=True)
class RoundingTax:
    """MIG's allocated share over the requested share, minus one (0.277 = +27.7%)."""

    sharing: float  # pods asking part of one GPU
    overall: float  # every GPU pod (whole-GPU pods pay nothing)


def rounding_taxes(
    pods: Sequence[Pod], requests: dict[str, Request], rules: MigRules
) -> RoundingTax:
    asked = {"share": 0.0, "whole": 0.0}
    allocated = {"share": 0.0, "whole": 0.0}
    for pod in pods:
        request = requests[pod.name]
        if request.kind == "cpu":
            continue
        units = (
            rules.units * request.gpus if request.kind == "whole" else rules.units_of(request.share)
        )
        asked[request.kind] += pod.requested_milli
        allocated[request.kind] += 1000 * units / rules.units
    sharing = allocated["share"] / asked["share"] - 1 if asked["share"] else 0.0
    total = sum(asked.values())
    overall = sum(allocated.values()) / total - 1 if total else 0.0
    return RoundingTax(sharing, overall)


def offline_optimum(
    arrived: Sequence[Pod], requests: dict[str, Request], rules: MigRules, gpus: int
) -> float:
    """The most requested milli that ``gpus`` MIG GPUs can hold of the ``arrived`` pods,
    over the fleet's capacity (FGD's ratio), with the pods and layouts chosen offline."""
    shares = [(str(requests[p.name].share), p) for p in arrived if requests[p.name].kind == "share"]
    wholes = [p for p in arrived if requests[p.name].kind == "whole"]
    names = sorted({name for name, _ in shares} | {str(rules.whole)})
    cache = FitCache(rules.model)
    patterns = maximal_patterns(cache, [rules.by_name[n] for n in names])
    # variables: GPUs per pattern (integer), share pods taken (0..1), whole pods taken (0/1)
    width = len(patterns) + len(shares) + len(wholes)
    first_share, first_whole = len(patterns), len(patterns) + len(shares)
    gain = np.zeros(width)
    gain[first_share:first_whole] = [p.requested_milli for _, p in shares]
    gain[first_whole:] = [p.requested_milli for p in wholes]
    rows = [np.r_[np.ones(len(patterns)), np.zeros(width - len(patterns))]]
    upper = [float(gpus)]
    for name in names:  # instances of a profile taken <= instances the patterns offer
        row = np.zeros(width)
        row[: len(patterns)] = [-pattern.count(name) for pattern in patterns]
        for offset, (share, _) in enumerate(shares):
            row[first_share + offset] = share == name
        if name == str(rules.whole):
            row[first_whole:] = [requests[p.name].gpus for p in wholes]
        rows.append(row)
        upper.append(0.0)
    integral = np.r_[np.ones(len(patterns)), np.zeros(len(shares)), np.ones(len(wholes))]
    result = milp(
        -gain,
        constraints=LinearConstraint(np.array(rows), -np.inf, upper),
        integrality=integral,
        bounds=Bounds(0, np.r_[np.full(len(patterns), gpus), np.ones(width - len(patterns))]),
    )
    if not result.success:
        raise RuntimeError(f"offline optimum: HiGHS did not solve the fill ({result.message})")
    return float(-result.fun) / (1000 * gpus)
