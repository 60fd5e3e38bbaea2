"""The reference-aware multi-view reward (MindCube, SPAR, MMSI): R_total = R_format + R_ans + R_ref.

The formulas, their reasons and the proofs of the order properties are in docs/rewards.md; in short:

- R_format = `mv_format_weight` x `format`, `format` being 1 for a well-formed
  `<think>...</think><answer>...</answer>` response (`star_verl.tasks.tags`), else 0 (logged as 0/1,
  as TVR's: the weight enters only `score`).
- R_ans = `mv_answer_weight` x (`mv_graded_share` x value + (1 - `mv_graded_share`) x acc): value is 1/0
  for an option letter (then R_ans = mv_answer_weight x acc), SPAR's MRA for a number, the mean
  per-component MRA for a view change; acc = 1 only for a fully right answer.
- R_ref = `ref_weight` x the mean over the images with key references of F_beta(image k), where
  image k's Step 1 triplets (those under its "Image k" heading, `star_verl.tasks.references.step1_triplets`)
  are matched one-to-one with image k's key references (`match_references`: 1 per right relation,
  `ref_pair_credit` per right pair with a wrong or missing relation; m_k the matched credit):

      F_beta(k) = (1 + beta^2) m_k / (beta^2 n_k + p_k)       # n_k key references, p_k triplets stated

  (the F-score of precision m_k / p_k and recall m_k / n_k; 0 when nothing is stated). A ground truth
  in the flat form (image unknown: old files) is one set matched against all of Step 1's triplets.
  Only key references with a relation count (`has_ref`); bare names earn nothing. With
  `ref_gate: answer` R_ref is paid only for a right answer (SpatialThinker's gate).

Guarantees (enforced by `MultiViewRewardSettings`, proven in docs/rewards.md, tested with hypothesis
in tests/test_multiview_reward_on_cpu.py):
- 0 <= R_ref <= ref_weight; R_ref = ref_weight exactly when every image with key references states
  exactly its key references, each with the right relation: copying one image's triplets under every
  heading, naming pairs without relations, listing every pair with every relation and stating
  nothing all score lower; a triplet that matches nothing never raises R_ref;
- a right answer scores above a wrong one whatever the format and the references: the settings refuse
  weights unless mv_format_weight + ref_weight (0 with the answer gate) < mv_answer_weight x (1 - mv_graded_share).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from star_verl.rewards.base import RewardFamily, finalize
from star_verl.tasks.multiview import MultiViewGroundTruth, parse_multiview_ground_truth, score_answer
from star_verl.tasks.references import Reference, match_references, parse_reference_triplets, step1_triplets
from star_verl.tasks.tags import parse_tags

REF_GATES = ("none", "answer")


@dataclass(frozen=True)
class MultiViewRewardSettings:
    """Settings of the multi-view reward (`reward.custom_reward_function.reward_kwargs`).

    Names are prefixed (`mv_`, `ref_`) like TVR's (`tvr_`), so one `reward_kwargs` block can hold both
    families without a name meaning two things. The defaults and how they were chosen: docs/rewards.md."""

    mv_format_weight: float = 0.1  # R_format for a well-formed <think><answer> response (the paper has no format term)
    mv_answer_weight: float = 1.0  # scale of R_ans
    mv_graded_share: float = 0.5  # share of R_ans a graded answer (MRA) earns by closeness; the rest only when fully right
    ref_weight: float = 0.3  # scale of R_ref; 0 turns the reference term off (the paper's "w/o R_ref" ablation)
    ref_pair_credit: float = 0.5  # credit of the right object pair with a wrong or missing relation (right relation: 1)
    ref_beta: float = 1.0  # the F-score's beta: > 1 weighs recall (stating every key reference) above precision
    ref_gate: str = "none"  # "answer": R_ref only for a right answer (SpatialThinker); "none": always (the paper's sum)
    ref_max_triplets: int = 64  # Step 1 triplets read per response (bounds work and credit)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ref_gate":
                if value not in REF_GATES:
                    raise ValueError(f"ref_gate must be one of {REF_GATES}, got {value!r}")
            elif f.name == "ref_max_triplets":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"ref_max_triplets must be a positive integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value!r}")
        if self.mv_graded_share > 1:
            raise ValueError(f"mv_graded_share must be <= 1 (a share of R_ans), got {self.mv_graded_share}")
        if self.ref_pair_credit >= 1:
            raise ValueError(f"ref_pair_credit must be < 1 (below the credit of a right relation), got {self.ref_pair_credit}")
        if not self.ref_beta > 0:
            raise ValueError(f"ref_beta must be > 0, got {self.ref_beta}")
        # A right answer earns R_ans = w, a wrong one w * share * value with value < 1 (less than w * share,
        # strictly when share > 0, else 0); format and references move a score by at most
        # mv_format_weight + ref_weight (mv_format_weight alone when R_ref needs a right answer).
        spread = self.mv_format_weight + (self.ref_weight if self.ref_gate == "none" else 0.0)
        margin = self.mv_answer_weight * (1 - self.mv_graded_share)
        if not (spread < margin or (self.mv_graded_share > 0 and self.mv_answer_weight > 0 and spread <= margin)):
            need = "<=" if self.mv_graded_share > 0 else "<"
            raise ValueError(
                f"a right answer must score above a wrong one whatever the format and the references: need "
                f"mv_format_weight + ref_weight{' (ref_gate: answer: 0)' if self.ref_gate != 'none' else ''} = {spread:g} {need} "
                f"mv_answer_weight * (1 - mv_graded_share) = {margin:g}"
            )


def f_score(matched: float, n_key: int, n_stated: int, beta: float) -> float:
    """F_beta of precision matched / n_stated and recall matched / n_key (0 when nothing matched)."""
    if matched <= 0:
        return 0.0
    if matched == n_key == n_stated:
        return 1.0  # exactly, whatever rounding (1 + b2) * n / (b2 * n + n) would give
    b2 = beta * beta
    return min(1.0, (1 + b2) * matched / (b2 * n_key + n_stated))


def _term(predicted: tuple[Reference, ...] | list[Reference], key: tuple[Reference, ...], s: MultiViewRewardSettings) -> tuple[float, int]:
    """(F_beta, exact matches) of one set of stated triplets against its key references (relational ones)."""
    match = match_references(predicted, key, pair_credit=s.ref_pair_credit)
    return f_score(match.value(s.ref_pair_credit), len(key), len(predicted), s.ref_beta), match.n_exact


def reference_term(think: str | None, gt: MultiViewGroundTruth, settings: MultiViewRewardSettings) -> dict[str, float]:
    """R_ref (before the gate) and its counts for the `<think>` text; the ground truth has relations."""
    s = settings
    if gt.per_view:
        stated = step1_triplets(think or "", s.ref_max_triplets)
        views = [(k, tuple(r for r in refs if r.relational)) for k, refs in gt.view_references]
        views = [(k, refs) for k, refs in views if refs]
        scores = [_term(stated.view(k), refs, s) for k, refs in views]
        n_pred, n_gt = stated.count, sum(len(refs) for _, refs in views)
    else:
        predicted = parse_reference_triplets(think or "", s.ref_max_triplets)
        key = tuple(r for r in gt.references if r.relational)
        scores = [_term(predicted, key, s)]
        n_pred, n_gt = len(predicted), len(key)
    mean_f = sum(f for f, _ in scores) / len(scores)
    return {"r_ref": s.ref_weight * mean_f, "n_pred": n_pred, "n_gt": n_gt, "n_exact": sum(n for _, n in scores)}


def multiview_reward(
    solution_str: Any, gt: Mapping[str, Any] | MultiViewGroundTruth, settings: MultiViewRewardSettings | None = None
) -> dict[str, float]:
    """All of REWARD_KEYS, in order, for one response (the ground truth's type decides the answer
    format). Never raises on the response; a malformed ground truth raises (ValueError/KeyError/TypeError).

    >>> gt = {"type": "choice", "answer": "B", "options": ["A", "B", "C"], "task": "toy", "references": {"1": [["sofa", "ball", "behind"]], "2": [["ball", "sofa", "left"]]}}
    >>> r = multiview_reward("<think>Step 1:\\nImage 1: [sofa, ball, behind]\\nImage 2: [ball, sofa, left]</think><answer>B</answer>", gt)
    >>> round(r["score"], 4), r["format"], r["r_ans"], r["r_ref"]  # each image's own relation: R_ref's maximum
    (1.4, 1.0, 1.0, 0.3)
    >>> r = multiview_reward("<think>Step 1:\\nImage 1: [sofa, ball, behind]\\nImage 2: [sofa, ball, behind]</think><answer>B</answer>", gt)
    >>> round(r["r_ref"], 4)  # image 1's triplet copied under image 2: the right pair, the wrong relation there
    0.225
    >>> r = multiview_reward("<answer>B</answer>", gt)  # malformed, no triplet: no format, no R_ref, no penalty
    >>> r["score"], r["format"], r["r_ans"], r["r_ref"]
    (1.0, 0.0, 1.0, 0.0)
    """
    s = settings or MultiViewRewardSettings()
    g = gt if isinstance(gt, MultiViewGroundTruth) else parse_multiview_ground_truth(gt)
    tagged = parse_tags(solution_str)
    answer = score_answer(g, tagged.answer)
    acc = 1.0 if answer.correct else 0.0
    out = {
        "format": 1.0 if tagged.well_formed else 0.0,
        "r_ans": s.mv_answer_weight * (s.mv_graded_share * answer.value + (1 - s.mv_graded_share) * acc),
        "acc": acc,
        "r_ref": 0.0,
        "has_ref": 1.0 if g.has_relations else 0.0,
    }
    if g.has_relations:  # counted also with ref_weight 0 or a closed gate, so the ablations log how references evolve
        out.update(reference_term(tagged.think, g, s))
        if s.ref_gate == "answer" and not acc:
            out["r_ref"] = 0.0
    out["score"] = s.mv_format_weight * out["format"] + out["r_ans"] + out["r_ref"]
    return finalize(out)  # every REWARD_KEYS entry; TVR's terms are 0.0


MULTIVIEW = RewardFamily("multiview", MultiViewRewardSettings, multiview_reward)
