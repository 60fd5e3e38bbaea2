"""STAR-R1's dense, penalised TVR reward (work in progress: settings first)."""

from __future__ import annotations

from dataclasses import dataclass

TVR_MODES = ("dense", "naive")
INCORRECT_MODES = ("not_exact", "no_credit")


@dataclass(frozen=True)
class TVRRewardSettings:
    """Every weight and term of the TVR reward (`reward.custom_reward_function.reward_kwargs`).

    A weight of 0 drops its term, so each ablation recipe is only settings."""

    tvr_mode: str = "dense"  # "dense": STAR-R1's reward; "naive": binary exact-set reward (+ format term)
    tvr_format_weight: float = 1.0
    tvr_exact_weight: float = 5.0  # index + attribute + value
    tvr_attr_weight: float = 1.5  # index + attribute
    tvr_index_weight: float = 0.5  # index only
    tvr_incorrect_penalty: float = 1.0  # per incorrect prediction
    tvr_incorrect_mode: str = "not_exact"  # "not_exact": every non-exact prediction; "no_credit": predictions earning nothing
    tvr_under_penalty: float = 1.0  # per missing prediction when n_pred < n_gt
    tvr_max_items: int = 64  # items parsed from one answer (bounds the work; the rest count as predictions)
