"""`compute_score`: veRL's custom-reward signature, one entry point for every data source.

Pure Python (no torch, no veRL): data prep, the teacher filter and evaluation call it too. The veRL
reward managers are in `star_verl.rewards.managers`, which only veRL imports.

Every call returns the same keys (`REWARD_KEYS`) in the same order for every data source, because
veRL takes the key set of the first sample for the whole batch: the family's reward terms, then the
benchmark metrics (`star_verl.rewards.benchmark`: `official`, TVR's `tacc`, `acc_id`, `acc_ood`,
`ndiff`), which veRL's validation logs. The ground truth's `task` (TVR's `view`) is read from
`extra_info` where the ground truth lacks it (`star_verl.tasks.ground_truth`). A term that does not apply to a
source is 0.0, never None or NaN. Each family (`tvr`, `multiview`: a `RewardFamily` of
`star_verl.rewards.base`) has its settings and one scorer, all called the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from star_verl.rewards.base import REWARD_KEYS
from star_verl.rewards.benchmark import benchmark_terms
from star_verl.rewards.multiview import MULTIVIEW, MultiViewRewardSettings
from star_verl.rewards.tvr import TVR, TVRRewardSettings

# the ground-truth API is public here (star_verl.rewards.parse_ground_truth, ...); its home is star_verl.tasks.ground_truth
from star_verl.tasks.ground_truth import GroundTruthError, load_ground_truth, parse_ground_truth, validate_ground_truth
from star_verl.tasks.registry import MULTIVIEW_SOURCES

__all__ = [
    "FAMILIES", "REWARD_KEYS", "GroundTruthError", "RewardSettings", "compute_score", "load_ground_truth",
    "parse_ground_truth", "split_reward_kwargs", "validate_ground_truth",
]  # fmt: skip

FAMILIES = (TVR, MULTIVIEW)
FAMILY_OF_SOURCE = {"tvr": TVR, **{source: MULTIVIEW for source in MULTIVIEW_SOURCES}}


class RewardSettings(NamedTuple):
    """Every family's settings, by family name (`RewardFamily.name`)."""

    tvr: TVRRewardSettings
    multiview: MultiViewRewardSettings


def split_reward_kwargs(kwargs: Mapping[str, Any]) -> RewardSettings:
    """`reward_kwargs` hold the settings of every family (a run may mix them): give each family its
    own and reject names that belong to none, so a typo in a recipe fails instead of being ignored.

    veRL passes the same kwargs for every sample, so the (frozen) settings are built once per distinct kwargs.

    >>> split_reward_kwargs({"tvr_exact_weight": 4.0, "ref_weight": 0.0}).tvr.tvr_exact_weight
    4.0
    >>> split_reward_kwargs({"tvr_exact_wieght": 4.0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    TypeError: unknown reward setting(s) 'tvr_exact_wieght' (did you mean tvr_exact_weight?); valid: [...]
    """
    key = tuple(sorted(kwargs.items()))
    try:
        hash(key)
    except TypeError:  # a value such as a list: build without the cache
        return _split_reward_kwargs(kwargs)
    return _split_reward_kwargs_cached(key)


@functools.lru_cache(maxsize=64)
def _split_reward_kwargs_cached(items: tuple[tuple[str, Any], ...]) -> RewardSettings:
    return _split_reward_kwargs(dict(items))


def _split_reward_kwargs(kwargs: Mapping[str, Any]) -> RewardSettings:
    names = {family.name: {f.name for f in dataclasses.fields(family.settings)} for family in FAMILIES}
    known = set().union(*names.values())
    unknown = sorted(set(kwargs) - known)
    if unknown:
        guesses = [
            f"{name!r} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, n=1)) else repr(name) for name in unknown
        ]
        raise TypeError(f"unknown reward setting(s) {', '.join(guesses)}; valid: {sorted(known)}")
    return RewardSettings(**{family.name: family.settings(**{k: v for k, v in kwargs.items() if k in names[family.name]}) for family in FAMILIES})


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None, **kwargs: Any
) -> dict[str, float]:
    """veRL's custom reward function. `kwargs` are `reward.custom_reward_function.reward_kwargs`
    (veRL's managers may also pass `reward_router_address` / `reward_model_tokenizer`: ignored).

    >>> gt = '{"type": "numeric", "answer": 2.0, "task": "toy"}'
    >>> r = compute_score("spar", "<think>two steps</think><answer>about 2.2 m</answer>", gt, {"index": 0}, mv_answer_weight=2.0)
    >>> r["score"], r["acc"], r["r_ans"], list(r) == list(REWARD_KEYS)
    (1.0, 0.0, 0.9, True)
    """
    kwargs.pop("reward_router_address", None)
    kwargs.pop("reward_model_tokenizer", None)
    settings = split_reward_kwargs(kwargs)  # a misspelt setting is named before any ground truth is read
    gt = parse_ground_truth(data_source, ground_truth, extra_info)  # parsed once (the data source checked), scored by its family
    family = FAMILY_OF_SOURCE[data_source]
    out = family.score(solution_str, gt, getattr(settings, family.name))
    out.update(benchmark_terms(data_source, solution_str, gt, extra_info))  # the eval's per-sample metrics, logged at validation
    return out
