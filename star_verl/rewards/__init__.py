"""`compute_score`: veRL's custom-reward signature, one entry point for every data source.

Pure Python (no torch, no veRL): data prep, the teacher filter and evaluation call it too. The veRL
reward managers are in `star_verl.rewards.managers`, which only veRL imports.

Every call returns the same keys (`REWARD_KEYS`) in the same order for every data source, because
veRL takes the key set of the first sample for the whole batch. A term that does not apply to a
source is 0.0, never None or NaN.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

# the ground-truth API is public here (star_verl.rewards.parse_ground_truth, ...); its home is star_verl.tasks.ground_truth
from star_verl.tasks.ground_truth import GroundTruthError, load_ground_truth, parse_ground_truth, validate_ground_truth  # noqa: F401

REWARD_KEYS = (
    "score",  # the reward GRPO uses
    "acc",  # 1.0 when the answer is fully right (TVR exact set, right option, MRA == 1)
    "format",  # format term, 1.0 for a well-formed <think><answer> response
    "r_pos",  # TVR: tiered credit of the predicted transformations
    "r_incorrect",  # TVR: incorrect-prediction penalty (<= 0)
    "r_under",  # TVR: under-prediction penalty (<= 0)
    "r_ans",  # multi-view: answer term
    "r_ref",  # multi-view: reference term (0.0 where the sample has no references)
    "has_ref",  # 1.0 when the sample has references to score
    "n_pred",  # TVR: predicted transformations; multi-view: predicted reference triplets
    "n_gt",  # TVR: ground-truth transformations; multi-view: key references
    "n_exact",  # TVR: exact matches; multi-view: references anchored with the right relation
    "diff",  # TVR: attribute distance after applying the predictions (official Diff); else 0.0
)


def _settings_classes():
    from star_verl.rewards.multiview import MultiViewRewardSettings
    from star_verl.rewards.tvr import TVRRewardSettings

    return TVRRewardSettings, MultiViewRewardSettings


def split_reward_kwargs(kwargs: Mapping[str, Any]):
    """`reward_kwargs` hold the settings of every family (a run may mix them): give each family its
    own and reject names that belong to none, so a typo in a recipe fails instead of being ignored.

    veRL passes the same kwargs for every sample, so the (frozen) settings are built once per distinct kwargs."""
    key = tuple(sorted(kwargs.items()))
    try:
        hash(key)
    except TypeError:  # a value such as a list: build without the cache
        return _split_reward_kwargs(kwargs)
    return _split_reward_kwargs_cached(key)


@functools.lru_cache(maxsize=64)
def _split_reward_kwargs_cached(items: tuple[tuple[str, Any], ...]):
    return _split_reward_kwargs(dict(items))


def _split_reward_kwargs(kwargs: Mapping[str, Any]):
    tvr_cls, mv_cls = _settings_classes()
    tvr_names = {f.name for f in dataclasses.fields(tvr_cls)}
    mv_names = {f.name for f in dataclasses.fields(mv_cls)}
    unknown = sorted(set(kwargs) - tvr_names - mv_names)
    if unknown:
        raise TypeError(f"unknown reward setting(s) {unknown}; valid: {sorted(tvr_names | mv_names)}")
    tvr = tvr_cls(**{k: v for k, v in kwargs.items() if k in tvr_names})
    mv = mv_cls(**{k: v for k, v in kwargs.items() if k in mv_names})
    return tvr, mv


def finalize(components: Mapping[str, float]) -> dict[str, float]:
    """All of REWARD_KEYS, in order, as finite floats; anything else is a bug in a scorer."""
    extra = set(components) - set(REWARD_KEYS)
    if extra:
        raise KeyError(f"scorer returned keys outside REWARD_KEYS: {sorted(extra)}")
    out = {key: float(components.get(key, 0.0)) for key in REWARD_KEYS}
    for key, value in out.items():
        if not math.isfinite(value):
            raise ValueError(f"reward component {key} is not finite: {value}")
    return out


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, float]:
    """veRL's custom reward function. `kwargs` are `reward.custom_reward_function.reward_kwargs`
    (veRL's managers may also pass `reward_router_address` / `reward_model_tokenizer`: ignored)."""
    kwargs.pop("reward_router_address", None)
    kwargs.pop("reward_model_tokenizer", None)
    gt = parse_ground_truth(data_source, ground_truth, extra_info)  # parsed once, scored by the family's reward
    tvr_settings, mv_settings = split_reward_kwargs(kwargs)
    if data_source == "tvr":
        from star_verl.rewards.tvr import tvr_reward

        return finalize(tvr_reward(solution_str, gt, tvr_settings))
    from star_verl.rewards.multiview import multiview_reward

    return finalize(multiview_reward(data_source, solution_str, gt, mv_settings))
