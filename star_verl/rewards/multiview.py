"""The reference-aware multi-view reward (MindCube, SPAR, MMSI): R_total = R_format + R_ans + R_ref."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MultiViewRewardSettings:
    """Settings of the multi-view reward (`reward.custom_reward_function.reward_kwargs`).

    Names are prefixed (`mv_`, `ref_`) like TVR's (`tvr_`), so one `reward_kwargs` block can hold both
    families without a name meaning two things."""

    mv_format_weight: float = 1.0  # R_format for a well-formed <think><answer> response
    mv_answer_weight: float = 1.0  # R_ans = mv_answer_weight * (1 right option | MRA | view-change MRA)
    ref_weight: float = 0.5  # scale of R_ref; 0 turns the reference term off (the paper's ablation)
    ref_pair_credit: float = 0.5  # credit (of 1 per key reference) for the right object pair with a wrong/missing relation
    ref_spurious_penalty: float = 0.25  # per predicted triplet that anchors no key reference (of 1 per key reference)
    ref_under_penalty: float = 0.5  # per key reference missing from the count when fewer triplets than key references are named
    ref_penalty_cap: float = 0.5  # R_ref >= -ref_weight * ref_penalty_cap
    ref_max_triplets: int = 64  # triplets parsed from step 1 beyond this are ignored (bounded work)
