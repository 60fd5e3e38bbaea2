"""The SFT filter: which chains of thought the cold start may learn from. One public function,
`judge_chain`, for every producer of SFT chains (the teacher, and any generator of oracle chains),
so stage 1 keeps only what stage 2 (the RL reward) pays for:

- `wrong_answer`: the final answer must be right (`compute_score(...)["acc"] == 1.0`, the paper's
  result-oriented filter);
- `structure`: the three steps of the template (`three_step_structure` with the question's image
  count: Step 1 triplets under every image's heading, as R_ref reads them);
- `references`: on a row with key references that have a relation (`has_ref`), at least one of them
  stated with its relation (`n_exact >= 1`), so that every kept chain earns R_ref > 0 under any
  reward settings with `ref_weight > 0` that read at least the default 64 Step 1 triplets
  (docs/rewards.md, "One agreement between stage 1 and stage 2");
- `too_long`: with a `ResponseLimit`, at most the RL recipe's `data.max_response_length` tokens of the
  student model (the chain plus its end-of-turn token): a longer chain would be cut off in RL and earn
  the reward's floor;
- `truncated` (the teacher stopped at its own token limit) and `empty`.

Each reason is "code: detail"; the codes are counted in the teacher's report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from star_verl.rewards import compute_score
from star_verl.tasks.references import three_step_structure
from star_verl.tasks.tags import parse_tags

REASON_CODES = ("empty", "truncated", "wrong_answer", "structure", "references", "too_long", "duplicate")


@dataclass(frozen=True)
class Decision:
    keep: bool
    reasons: tuple[str, ...]  # each "code: detail", codes from REASON_CODES
    acc: float
    score: float


@dataclass(frozen=True)
class ResponseLimit:
    """The RL recipe's response length in the student model's tokens."""

    max_response_length: int
    count_tokens: Callable[[str], int]  # tokens the student generates for a response text (end-of-turn token included)
    tokenizer: str  # what the tokens are counted with (for the report)

    @classmethod
    def from_tokenizer(cls, path: str, max_response_length: int) -> ResponseLimit:
        """Count with the tokenizer at `path` (a model folder or hub name, loaded with transformers)."""
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        return cls(max_response_length, lambda text: len(tok(text, add_special_tokens=False)["input_ids"]) + 1, str(path))


def reason_code(reason: str) -> str:
    return reason.split(":", 1)[0]


def judge_chain(
    response: str,
    *,
    data_source: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any],
    finish_reason: str | None = None,
    limit: ResponseLimit | None = None,
) -> Decision:
    """Keep a chain of thought only if every rule of the module docstring holds; `reasons` says why not."""
    reasons: list[str] = []
    if not response.strip():
        reasons.append("empty: the teacher returned no text")
    if finish_reason == "length":
        reasons.append("truncated: finish_reason=length (raise --max-tokens)")
    scores = compute_score(data_source, response, ground_truth, extra_info)
    if scores["acc"] != 1.0:
        answer = parse_tags(response).answer
        shown = "no <answer>" if answer is None else repr(answer.strip()[:80])
        expected = ground_truth.get("answer") if isinstance(ground_truth, Mapping) else None
        reasons.append(f"wrong_answer: {shown}, expected {expected!r} (acc={scores['acc']:g})")
    structure = three_step_structure(response, extra_info.get("n_images"))
    reasons.extend(f"structure: {r}" for r in structure.reasons)
    if scores["has_ref"] == 1.0 and scores["n_exact"] == 0.0 and structure.n_triplets:  # no triplets at all: `structure` says so
        reasons.append(f"references: Step 1 states none of the {int(scores['n_gt'])} key references with its relation (R_ref would pay nothing)")
    if limit is not None:
        n = limit.count_tokens(response.strip())
        if n > limit.max_response_length:
            reasons.append(f"too_long: {n} student tokens > data.max_response_length {limit.max_response_length}")
    return Decision(keep=not reasons, reasons=tuple(reasons), acc=float(scores["acc"]), score=float(scores["score"]))
