"""The reference-aware multi-view reward (MindCube, SPAR, MMSI): R_total = R_format + R_ans + R_ref.

- R_format = `mv_format_weight` x `format`, `format` being 1 for a well-formed
  `<think>...</think><answer>...</answer>` response (`star_verl.tasks.tags`), else 0 (logged as 0/1,
  as TVR's: the weight enters only `score`).
- R_ans = `mv_answer_weight` x (1 for the right option letter | SPAR's MRA for a number | mean
  per-component MRA for a view change), from the last `<answer>` block (`star_verl.tasks.multiview`).
- R_ref (only where the ground truth has `references`; 0 when `ref_weight` is 0): the step-1 triplets of the
  `<think>` part are matched with the K key references (`star_verl.tasks.references.match_references`):

      raw   = (n_exact + ref_pair_credit * n_pair
               - ref_spurious_penalty * n_spurious
               - ref_under_penalty * max(0, K - n_exact - n_pair - n_spurious)) / K
      R_ref = ref_weight * max(-ref_penalty_cap, raw)          # raw <= 1

  n_exact: key references anchored with the right relation (a bare key object: named); n_pair: right
  pair, wrong or missing relation; n_spurious: triplets that anchor no key reference. The under
  term counts the key references the response leaves unnamed: fewer references stated (anchored or
  spurious) than key references, as TVR's under-prediction penalty counts missing predictions.
  n_pred (logged): distinct triplets read, at most `ref_max_triplets`.

Guarantees (enforced by `MultiViewRewardSettings`, proven by tests/test_multiview_reward_on_cpu.py):
- R_ref lies in [-ref_weight * ref_penalty_cap, ref_weight], and ref_weight * (1 + ref_penalty_cap)
  < mv_answer_weight, so a right answer with no references always beats a wrong answer with perfect ones;
- with ref_spurious_penalty > 0 and ref_spurious_penalty >= ref_under_penalty (the defaults), adding
  a triplet that anchors nothing never raises R_ref: listing every object never pays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from star_verl.rewards.base import RewardFamily, finalize
from star_verl.tasks.multiview import MultiViewGroundTruth, parse_multiview_ground_truth, score_answer
from star_verl.tasks.references import match_references, parse_reference_triplets
from star_verl.tasks.tags import parse_tags


@dataclass(frozen=True)
class MultiViewRewardSettings:
    """Settings of the multi-view reward (`reward.custom_reward_function.reward_kwargs`).

    Names are prefixed (`mv_`, `ref_`) like TVR's (`tvr_`), so one `reward_kwargs` block can hold both
    families without a name meaning two things. Credits and penalties of R_ref are in units of one key
    reference (a sample's R_ref is normalized by its number of key references)."""

    mv_format_weight: float = 1.0  # R_format for a well-formed <think><answer> response
    mv_answer_weight: float = 1.0  # R_ans = mv_answer_weight * (1 right option | MRA | view-change MRA)
    ref_weight: float = 0.5  # scale of R_ref; 0 turns the reference term off (the paper's ablation)
    ref_pair_credit: float = 0.5  # credit for the right object pair with a wrong or missing relation (right relation: 1)
    ref_spurious_penalty: float = 0.5  # per predicted triplet that anchors no key reference
    ref_under_penalty: float = 0.5  # per key reference left unnamed: K minus the references stated (anchored or spurious)
    ref_penalty_cap: float = 0.5  # R_ref >= -ref_weight * ref_penalty_cap
    ref_max_triplets: int = 64  # distinct step-1 triplets read per response (bounds work and credit)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ref_max_triplets":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"ref_max_triplets must be a positive integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value!r}")
        if self.ref_pair_credit > 1:
            raise ValueError(f"ref_pair_credit must be <= 1 (the credit of a right relation), got {self.ref_pair_credit}")
        if self.ref_weight > 0 and not self.ref_weight * (1 + self.ref_penalty_cap) < self.mv_answer_weight:
            raise ValueError(
                f"ref_weight * (1 + ref_penalty_cap) = {self.ref_weight * (1 + self.ref_penalty_cap)} must stay below "
                f"mv_answer_weight = {self.mv_answer_weight}: otherwise references could outscore a right answer"
            )


def reference_term(think: str | None, gt_refs, settings: MultiViewRewardSettings) -> dict[str, float]:
    """R_ref and its counts for the `<think>` text against the key references (non-empty)."""
    predicted = parse_reference_triplets(think or "", settings.ref_max_triplets)
    s = settings
    match = match_references(predicted, gt_refs, exact_value=1.0 + s.ref_spurious_penalty, pair_value=s.ref_pair_credit + s.ref_spurious_penalty)
    n_gt = len(gt_refs)
    unnamed = max(0, n_gt - match.n_exact - match.n_pair - match.n_spurious)
    raw = (match.n_exact + s.ref_pair_credit * match.n_pair - s.ref_spurious_penalty * match.n_spurious - s.ref_under_penalty * unnamed) / n_gt
    return {"r_ref": s.ref_weight * max(-s.ref_penalty_cap, min(1.0, raw)), "n_pred": len(predicted), "n_gt": n_gt, "n_exact": match.n_exact}


def multiview_reward(
    solution_str: Any, gt: Mapping[str, Any] | MultiViewGroundTruth, settings: MultiViewRewardSettings | None = None
) -> dict[str, float]:
    """All of REWARD_KEYS, in order, for one response (the ground truth's type decides the answer
    format). Never raises on the response; a malformed ground truth raises (ValueError/KeyError/TypeError).

    >>> gt = {"type": "choice", "answer": "B", "options": ["A", "B", "C"], "task": "toy", "references": [["sofa", "ball", "behind"]]}
    >>> r = multiview_reward("<think>Step 1: Image 1: [sofa, ball, behind]</think><answer>B</answer>", gt)
    >>> r["score"], r["format"], r["r_ans"], r["r_ref"]
    (2.5, 1.0, 1.0, 0.5)
    >>> r = multiview_reward("<answer>B</answer>", gt)  # no triplet: the key reference is unnamed
    >>> r["score"], r["format"], r["r_ans"], r["r_ref"]
    (0.75, 0.0, 1.0, -0.25)
    """
    s = settings or MultiViewRewardSettings()
    g = gt if isinstance(gt, MultiViewGroundTruth) else parse_multiview_ground_truth(gt)
    tagged = parse_tags(solution_str)
    answer = score_answer(g, tagged.answer)
    out = {
        "format": 1.0 if tagged.well_formed else 0.0,
        "r_ans": s.mv_answer_weight * answer.value,
        "acc": 1.0 if answer.correct else 0.0,
        "r_ref": 0.0,
        "has_ref": 1.0 if g.references else 0.0,
        "n_gt": float(len(g.references)),
    }
    if g.references:  # counted also with ref_weight 0, so the ablation logs how references evolve
        out.update(reference_term(tagged.think, g.references, s))
    out["score"] = s.mv_format_weight * out["format"] + out["r_ans"] + out["r_ref"]
    return finalize(out)  # every REWARD_KEYS entry; TVR's terms are 0.0


MULTIVIEW = RewardFamily("multiview", MultiViewRewardSettings, multiview_reward)
