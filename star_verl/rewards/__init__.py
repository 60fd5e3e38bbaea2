"""`compute_score`: veRL's custom-reward signature, one entry point for every data source.

Pure Python (no torch, no veRL): data prep, the teacher filter and evaluation call it too. The veRL
reward managers are in `star_verl.rewards.managers`, which only veRL imports.

Every call returns the same keys (`REWARD_KEYS`) in the same order for every data source, because
veRL takes the key set of the first sample for the whole batch. A term that does not apply to a
source is 0.0, never None or NaN. Each family (`tvr`, `multiview`: a `RewardFamily` of
`star_verl.rewards.base`) has its settings and one scorer, all called the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from star_verl.rewards.base import REWARD_KEYS
from star_verl.rewards.multiview import MULTIVIEW, MultiViewRewardSettings
from star_verl.rewards.tvr import TVR, TVRRewardSettings

__all__ = [
    "DATA_SOURCES", "FAMILIES", "MULTIVIEW_SOURCES", "REWARD_KEYS", "GroundTruthError", "RewardSettings", "compute_score",
    "load_ground_truth", "parse_ground_truth", "sample_name", "split_reward_kwargs", "validate_ground_truth",
]  # fmt: skip

DATA_SOURCES = ("tvr", "mindcube", "spar", "mmsi")
MULTIVIEW_SOURCES = ("mindcube", "spar", "mmsi")
FAMILIES = (TVR, MULTIVIEW)
FAMILY_OF_SOURCE = {"tvr": TVR, **{source: MULTIVIEW for source in MULTIVIEW_SOURCES}}


class GroundTruthError(ValueError):
    """A ground truth that cannot be scored: always a data bug, never a model's fault."""


def sample_name(extra_info: Mapping[str, Any] | None) -> str:
    info = dict(extra_info or {})
    parts = [f"{key}={info[key]!r}" for key in ("origin", "split", "index", "question_id") if info.get(key) not in (None, "")]
    return "sample(" + ", ".join(parts) + ")" if parts else "sample(without extra_info)"


def load_ground_truth(ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ground-truth object of DESIGN.md from the parquet's JSON string (or an already decoded dict)."""
    if isinstance(ground_truth, Mapping):
        return dict(ground_truth)
    if isinstance(ground_truth, (bytes, str)):
        try:
            value = json.loads(ground_truth)
        except json.JSONDecodeError as exc:
            raise GroundTruthError(f"{sample_name(extra_info)}: ground truth is not JSON ({exc}): {str(ground_truth)[:200]!r}") from None
        if isinstance(value, dict):
            return value
    raise GroundTruthError(f"{sample_name(extra_info)}: ground truth must be a JSON object, got {type(ground_truth).__name__}: {str(ground_truth)[:200]!r}")


class RewardSettings(NamedTuple):
    """Every family's settings, by family name (`RewardFamily.name`)."""

    tvr: TVRRewardSettings
    multiview: MultiViewRewardSettings


def split_reward_kwargs(kwargs: Mapping[str, Any]) -> RewardSettings:
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
def _split_reward_kwargs_cached(items: tuple[tuple[str, Any], ...]) -> RewardSettings:
    return _split_reward_kwargs(dict(items))


def _split_reward_kwargs(kwargs: Mapping[str, Any]) -> RewardSettings:
    names = {family.name: {f.name for f in dataclasses.fields(family.settings)} for family in FAMILIES}
    known = set().union(*names.values())
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"unknown reward setting(s) {unknown}; valid: {sorted(known)}")
    return RewardSettings(**{family.name: family.settings(**{k: v for k, v in kwargs.items() if k in names[family.name]}) for family in FAMILIES})


def parse_ground_truth(data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None):
    """The typed ground truth of a data source (`TVRGroundTruth` or `MultiViewGroundTruth`, both
    immutable); raise GroundTruthError naming the sample.

    The JSON strings of the parquet are parsed once per distinct string: a GRPO group's responses
    (and every epoch) share their ground truth."""
    if isinstance(ground_truth, str):
        try:
            return _parse_ground_truth_text(data_source, ground_truth)
        except GroundTruthError:
            pass  # parsed again below, so that the error names the sample
    return _parse_ground_truth(data_source, ground_truth, extra_info)


@functools.lru_cache(maxsize=4096)
def _parse_ground_truth_text(data_source: str, text: str):
    return _parse_ground_truth(data_source, text, None)


def _parse_ground_truth(data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None):
    if data_source not in DATA_SOURCES:
        raise GroundTruthError(f"{sample_name(extra_info)}: unknown data_source {data_source!r}; expected one of {DATA_SOURCES}")
    gt = load_ground_truth(ground_truth, extra_info)
    try:
        if data_source == "tvr":
            from star_verl.tasks.tvr import parse_tvr_ground_truth

            return parse_tvr_ground_truth(gt)
        from star_verl.tasks.multiview import parse_multiview_ground_truth

        return parse_multiview_ground_truth(gt)
    except (KeyError, TypeError, ValueError) as exc:
        raise GroundTruthError(f"{sample_name(extra_info)}: bad {data_source} ground truth: {exc}") from None


def validate_ground_truth(data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a ground truth for its data source and return it as a dict; raise GroundTruthError naming the sample."""
    parse_ground_truth(data_source, ground_truth, extra_info)
    return load_ground_truth(ground_truth, extra_info)


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, float]:
    """veRL's custom reward function. `kwargs` are `reward.custom_reward_function.reward_kwargs`
    (veRL's managers may also pass `reward_router_address` / `reward_model_tokenizer`: ignored)."""
    kwargs.pop("reward_router_address", None)
    kwargs.pop("reward_model_tokenizer", None)
    gt = parse_ground_truth(data_source, ground_truth, extra_info)  # parsed once (the data source checked), scored by its family
    family = FAMILY_OF_SOURCE[data_source]
    return family.score(solution_str, gt, getattr(split_reward_kwargs(kwargs), family.name))
