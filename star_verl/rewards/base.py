"""What every reward family shares: the logged keys, their finalization, and the record of a family
that `compute_score` dispatches on.

A module of its own so that the families (`tvr`, `multiview`) import it and the package's
`__init__` imports the families: imports point one way, down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# The benchmark metrics `compute_score` adds beside every family's reward (`star_verl.rewards.benchmark`:
# the per-sample code of `star-verl eval score`), so veRL's validation logs the paper's numbers.
BENCHMARK_KEYS = (
    "official",  # the benchmark's official per-sample score: TVR's strict accuracy, MindCube's/MMSI's extractor verdict, SPAR's accuracy/MRA/VCI
    "tacc",  # TVR: strict x the row's TAcc weight (the row mean over a validation set is TAcc); else 0.0
    "acc_id",  # TVR: strict x the row's in-distribution (center) weight; else 0.0
    "acc_ood",  # TVR: strict x the row's out-of-distribution (left/right) weight; else 0.0
    "ndiff",  # TVR: official NDiff, diff / n_gt (the row mean is NDiff); else 0.0
)

REWARD_KEYS = (
    "score",  # the reward GRPO uses
    "acc",  # 1.0 when the answer is fully right (TVR exact set, right option, MRA == 1)
    "format",  # 1.0 for a well-formed <think><answer> response, else 0.0 (every family; weights enter only `score`)
    "r_pos",  # TVR: tiered credit of the predicted transformations
    "r_incorrect",  # TVR: incorrect-prediction penalty (<= 0)
    "r_under",  # TVR: under-prediction penalty (<= 0)
    "r_ans",  # multi-view: answer term
    "r_ref",  # multi-view: reference term (0.0 where the sample has no relational references)
    "has_ref",  # 1.0 when the sample has key references with a relation (bare names are not scored)
    "n_pred",  # TVR: predicted transformations; multi-view: Step 1 triplets read
    "n_gt",  # TVR: ground-truth transformations; multi-view: key references with a relation
    "n_exact",  # TVR: exact matches; multi-view: key references stated with the right relation
    "n_hedge",  # TVR: distinct predictions beyond the first for the same index and attribute; multi-view: 0.0
    "diff",  # TVR: attribute distance after applying the predictions (official Diff); else 0.0
    *BENCHMARK_KEYS,
)


def finalize(components: Mapping[str, float]) -> dict[str, float]:
    """All of REWARD_KEYS, in order, as finite floats (0.0 for a term the family does not have);
    a key outside REWARD_KEYS or a non-finite value is a bug in a scorer.

    >>> list(finalize({"score": 2, "acc": 1}).items())[:3]
    [('score', 2.0), ('acc', 1.0), ('format', 0.0)]
    """
    extra = set(components) - set(REWARD_KEYS)
    if extra:
        raise KeyError(f"scorer returned keys outside REWARD_KEYS: {sorted(extra)}")
    out = {key: float(components.get(key, 0.0)) for key in REWARD_KEYS}
    for key, value in out.items():
        if not math.isfinite(value):
            raise ValueError(f"reward component {key} is not finite: {value}")
    return out


@dataclass(frozen=True)
class RewardFamily:
    """One family of data sources scored by one formula.

    `settings` is the frozen dataclass of the family's `reward_kwargs` (each field name prefixed by
    the family, so one `reward_kwargs` block holds every family's); `score(solution_str, ground_truth,
    settings)` takes the family's typed ground truth (or its dict) and returns `finalize`d components,
    never raising on the response."""

    name: str
    settings: type
    score: Callable[[Any, Any, Any], dict[str, float]]
