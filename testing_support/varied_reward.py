"""Test-only reward (not in the wheel): star-verl's real `compute_score` plus a term that varies
between random responses, reached through the recipe's `reward.custom_reward_function.path`.

A randomly initialized tiny model never writes `<think>`/`<answer>`, so the recipe's reward gives
every response of a prompt the same score, GRPO's advantages are all zero and no update would
happen. Adding the share of the letter "e" in the response (a number in [0, 1] that differs between
random responses) gives non-zero advantages, so an end-to-end run can show the actor's weights
change and the rollout engine generating with them. Every component `compute_score` returns is kept
unchanged except `score`, and `e_share` says how much was added.
"""

from __future__ import annotations

from typing import Any

from star_verl.rewards import compute_score as star_compute_score

E_SHARE_KEY = "e_share"


def e_share(text: str) -> float:
    return text.count("e") / len(text) if text else 0.0


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **kwargs: Any) -> dict[str, float]:
    result = dict(star_compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs))
    bonus = e_share(solution_str)
    result["score"] += bonus
    result[E_SHARE_KEY] = bonus
    return result
