"""STAR-R1's dense, penalized TVR reward.

    score = w_format * format + r_pos + r_incorrect + r_under
    r_pos       = 5.0 * n_exact + 1.5 * n_attr + 0.5 * n_index      (one-to-one tiered matching)
    r_incorrect = -1.0 * n_incorrect                                  (n_pred - n_exact by default)
    r_under     = -1.0 * max(0, n_gt - n_pred)

`format` is 1.0 for exactly one `<think>` block followed by exactly one `<answer>` block with only
white space around them (`star_verl.tasks.tags`): repeated, nested or stray tags earn nothing.
Predictions are the `index.attribute.value` items of the last `<answer>` block
(`star_verl.tasks.tvr.response_triplets`, the parser the metrics use). Identical predictions earn
credit once, but every item is a prediction: a duplicate counts in n_pred and is incorrect.

Bounded work and range: only the first `tvr_max_items` items (default 64; TRANCE has at most 4
transformations) within the first 64 KiB of the answer block are read; the rest is ignored. The
tag parse is linear in the response length (string searches in C), so any response (megabytes,
binary junk) scores quickly and never raises, and the
score stays above -(tvr_max_items * incorrect + n_gt * under) (-68 with the defaults): one junk
response cannot blow up a GRPO group's standard deviation.

The paper's open readings are settings (worked examples and sources: docs/rewards.md):
- `tvr_mode="naive"`: score = w_format * format + acc, acc being 1 only for exactly the right set
  (the English papernotes' "naive GRPO"; the format term stays, as in the dense reward, so the
  ablation changes only the accuracy reward; set `tvr_format_weight: 0` for a pure 0/1 reward). The
  dense terms r_pos, r_incorrect and r_under are then 0.0; n_pred, n_exact and diff are still reported.
- `tvr_mode="count_diff"`: the Chinese papernotes' reading of the same row: the tiered r_pos with both
  penalties replaced by -|n_pred - n_gt|, logged as r_incorrect = -incorrect_penalty * (n_pred - n_gt)
  when over and r_under = -under_penalty * (n_gt - n_pred) when under (the defaults: 1 and 1).
- `n_hedge` (logged in every mode): distinct predictions beyond the first for the same (index,
  attribute), e.g. 1 for `2.size.large, 2.size.small`. With the paper's weights, listing both other
  values of a known 3-valued attribute (5 - 1 = 4) beats one guess (0.5 + 4.5 q) unless the model is
  over 7/9 (78%) sure; `tvr_first_prediction_only` lets only the first prediction per (index,
  attribute) earn credit (later ones still count in n_pred and as incorrect). The default is the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from star_verl.rewards.base import RewardFamily, finalize
from star_verl.tasks.tags import parse_tags
from star_verl.tasks.tvr import MAX_ANSWER_CHARS, Triplet, TVRGroundTruth, apply_prediction, match_triplets, parse_tvr_ground_truth, response_triplets

TVR_MODES = ("dense", "naive", "count_diff")
INCORRECT_MODES = ("not_exact", "no_credit")


@dataclass(frozen=True)
class TVRRewardSettings:
    """Every weight and term of the TVR reward (`reward.custom_reward_function.reward_kwargs`).

    A weight of 0 drops its term, so each ablation recipe is only settings. A credit tier with
    weight 0 is also left out of the matching: its predictions fall to the next tier (with the
    index+attribute tier off, `2.color.red` against `2.color.cyan` earns the index credit)."""

    tvr_mode: str = "dense"  # "dense": STAR-R1's reward; "naive": binary exact-set reward (+ format term); "count_diff": r_pos - |n_pred - n_gt|
    tvr_format_weight: float = 1.0
    tvr_exact_weight: float = 5.0  # index + attribute + value
    tvr_attr_weight: float = 1.5  # index + attribute
    tvr_index_weight: float = 0.5  # index only
    tvr_incorrect_penalty: float = 1.0  # per incorrect prediction
    tvr_incorrect_mode: str = "not_exact"  # "not_exact": every non-exact prediction; "no_credit": predictions earning nothing
    tvr_under_penalty: float = 1.0  # per missing prediction when n_pred < n_gt
    tvr_max_items: int = 64  # items read per answer (bounds work and the penalty); the rest are ignored
    tvr_first_prediction_only: bool = False  # only the first prediction per (index, attribute) can earn credit (the paper: False)

    def __post_init__(self):
        if self.tvr_mode not in TVR_MODES:
            raise ValueError(f"tvr_mode must be one of {TVR_MODES}, got {self.tvr_mode!r}")
        if self.tvr_incorrect_mode not in INCORRECT_MODES:
            raise ValueError(f"tvr_incorrect_mode must be one of {INCORRECT_MODES}, got {self.tvr_incorrect_mode!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_weight", "_penalty")):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise ValueError(f"{f.name} must be a finite number >= 0 (penalties are magnitudes), got {value!r}")
        if isinstance(self.tvr_max_items, bool) or not isinstance(self.tvr_max_items, int) or self.tvr_max_items < 1:
            raise ValueError(f"tvr_max_items must be an integer >= 1, got {self.tvr_max_items!r}")
        if not isinstance(self.tvr_first_prediction_only, bool):
            raise ValueError(f"tvr_first_prediction_only must be true or false, got {self.tvr_first_prediction_only!r}")


def first_predictions(pred: list[Triplet]) -> list[Triplet]:
    """The distinct predictions that come first for their (index, attribute), in order."""
    seen: set[tuple[int, str]] = set()
    out = []
    for t in dict.fromkeys(pred):
        if (t.obj_idx, t.attr) not in seen:
            seen.add((t.obj_idx, t.attr))
            out.append(t)
    return out


def tvr_reward(solution_str: object, gt: Mapping[str, Any] | TVRGroundTruth, settings: TVRRewardSettings | None = None) -> dict[str, float]:
    """All of REWARD_KEYS, in order, for one response. Never raises on the response; a malformed
    ground truth raises (ValueError/KeyError/TypeError).

    >>> cube = {"color": "gray", "material": "metal", "shape": "cube", "size": "small", "position": [0, 0]}
    >>> gt = {"transformations": [{"obj_idx": 0, "attr": "color", "val": "red"}], "objects": [cube], "view": "center"}
    >>> r = tvr_reward("<think>gray to red</think><answer>0.color.red</answer>", gt)
    >>> r["score"], r["acc"], r["r_pos"], r["r_incorrect"]
    (6.0, 1.0, 5.0, 0.0)
    >>> r = tvr_reward("<answer>0.color.blue, 0.size.large</answer>", gt)  # index+attribute credit, two incorrect, no format
    >>> r["score"], r["r_pos"], r["r_incorrect"], r["format"]
    (-0.5, 1.5, -2.0, 0.0)
    """
    s = settings or TVRRewardSettings()
    g = gt if isinstance(gt, TVRGroundTruth) else parse_tvr_ground_truth(gt)
    tags = parse_tags(solution_str)
    pred = response_triplets(tags, limit=s.tvr_max_items, max_chars=MAX_ANSWER_CHARS)
    n_pred, n_gt = len(pred), len(g.transformations)
    firsts = first_predictions(pred)
    n_unique = len(set(pred))
    m = match_triplets(firsts if s.tvr_first_prediction_only else pred, g.transformations, tiers=(s.tvr_attr_weight > 0, s.tvr_index_weight > 0))
    acc = m.n_exact == n_gt and n_unique == n_gt
    fmt = 1.0 if tags.well_formed else 0.0
    out = {
        "acc": float(acc),
        "format": fmt,
        "n_pred": float(n_pred),
        "n_gt": float(n_gt),
        "n_exact": float(m.n_exact),
        "n_hedge": float(n_unique - len(firsts)),
        "diff": float(apply_prediction(pred, g)["diff"]),
    }
    if s.tvr_mode == "naive":
        out.update(score=s.tvr_format_weight * fmt + float(acc), r_pos=0.0, r_incorrect=0.0, r_under=0.0)
        return finalize(out)
    r_pos = s.tvr_exact_weight * m.n_exact + s.tvr_attr_weight * m.n_attr + s.tvr_index_weight * m.n_index
    if s.tvr_mode == "count_diff":  # -|n_pred - n_gt|: the over-count in r_incorrect, the under-count in r_under
        r_incorrect = -s.tvr_incorrect_penalty * max(0, n_pred - n_gt) + 0.0
    else:
        credited = m.n_exact if s.tvr_incorrect_mode == "not_exact" else m.n_exact + m.n_attr + m.n_index
        r_incorrect = -s.tvr_incorrect_penalty * (n_pred - credited) + 0.0
    r_under = -s.tvr_under_penalty * max(0, n_gt - n_pred) + 0.0  # + 0.0: no -0.0 in logs
    out.update(score=s.tvr_format_weight * fmt + r_pos + r_incorrect + r_under, r_pos=r_pos, r_incorrect=r_incorrect, r_under=r_under)
    return finalize(out)  # every REWARD_KEYS entry; the multi-view terms are 0.0


TVR = RewardFamily("tvr", TVRRewardSettings, tvr_reward)
