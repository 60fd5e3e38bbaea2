"""veRL reward manager for every star-verl recipe (TVR and multi-view): `StarRewardManager`.

Recipes load it with
    reward.reward_manager.source=importlib
    reward.reward_manager.name=StarRewardManager
    reward.reward_manager.module.path=pkg://star_verl.rewards.managers
    reward.custom_reward_function.path=pkg://star_verl.rewards
    reward.custom_reward_function.name=compute_score

What it adds to veRL's naive manager: every reward component (`REWARD_KEYS`: format, credit, each
penalty, counts, attribute distance) goes into `reward_extra_info` with the same keys for every
sample of every data source, so a mixed run never loses or mislogs a key; decoding keeps the
`<think>`/`<answer>` tags even where a tokenizer has them as special tokens (veRL's
`skip_special_tokens=True` would silently drop them, and every format and answer with them); and
decoding plus scoring is one hop to the executor instead of two.

veRL (`get_custom_reward_fn`) already binds `reward.custom_reward_function.reward_kwargs` to
`compute_score` with functools.partial, so the manager never passes them again. Without a custom
function veRL hands over its `default_compute_score`, which knows no star-verl data source: the
manager then uses `star_verl.rewards.compute_score` with the same `reward_kwargs` instead.
"""

from __future__ import annotations

import asyncio
import inspect
from functools import partial
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from star_verl.rewards import REWARD_KEYS
from star_verl.rewards import compute_score as star_compute_score
from star_verl.tasks.tags import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN


def _extra_info(result: Any) -> dict[str, Any]:
    """REWARD_KEYS first (0.0 where a function leaves one out), then any other keys it returns."""
    if not isinstance(result, dict):
        score = float(result)
        return {key: (score if key in ("score", "acc") else 0.0) for key in REWARD_KEYS}
    info: dict[str, Any] = {key: float(result.get(key, 0.0)) for key in REWARD_KEYS}
    info.update((key, value) for key, value in result.items() if key not in info)
    return info


class StarRewardManager(RewardManagerBase):
    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None, reward_model_tokenizer=None, **kwargs):
        super().__init__(config, tokenizer, compute_score)
        fn_cfg = config.reward.get("custom_reward_function") or {}
        if fn_cfg.get("path"):
            self.compute_score = compute_score  # reward_kwargs already bound by veRL
        else:
            self.compute_score = partial(star_compute_score, **dict(fn_cfg.get("reward_kwargs") or {}))
        self.is_async = inspect.iscoroutinefunction(self.compute_score)
        # A tokenizer that has <think>/<answer> as special tokens would lose them in
        # decode(skip_special_tokens=True), and with them every format and answer: keep those.
        self._keep_ids = self._tag_token_ids()
        self._skip_ids = set(getattr(tokenizer, "all_special_ids", ())) - self._keep_ids
        # Forwarded only when a reward model serves (as veRL's naive manager does): a rule-based
        # compute_score need not accept them.
        self.router_kwargs = (
            {"reward_router_address": reward_router_address, "reward_model_tokenizer": reward_model_tokenizer}
            if reward_router_address is not None
            else {}
        )

    def _inputs(self, data: DataProto) -> tuple[Any, dict[str, Any]]:
        item = data[-1]  # multi-turn trajectories: the last output is the answer
        response_ids = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        ntb = item.non_tensor_batch
        kwargs = {
            "data_source": ntb["data_source"],
            "ground_truth": ntb["reward_model"]["ground_truth"],
            "extra_info": dict(ntb.get("extra_info") or {}),
            **self.router_kwargs,
        }
        return response_ids[:valid], kwargs

    def _tag_token_ids(self) -> set[int]:
        """Ids of the think/answer tags that the tokenizer has as special tokens (decode drops them)."""
        ids = set()
        for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE):
            encoded = self.tokenizer.encode(tag, add_special_tokens=False)
            if len(encoded) == 1 and self.tokenizer.decode(encoded, skip_special_tokens=True) == "":
                ids.add(encoded[0])
        return ids

    def _decode(self, ids) -> str:
        if not self._keep_ids:  # the usual case (Qwen2.5-VL has no tag tokens): exactly veRL's decoding
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        kept = [i for i in ids.tolist() if i not in self._skip_ids]
        return self.tokenizer.decode(kept, skip_special_tokens=False)

    def _score(self, ids, kwargs: dict[str, Any]) -> Any:
        return self.compute_score(solution_str=self._decode(ids), **kwargs)

    async def run_single(self, data: DataProto) -> dict:
        ids, kwargs = self._inputs(data)
        # get_running_loop, not self.loop: the manager may be built outside the loop that runs it.
        loop = asyncio.get_running_loop()
        if self.is_async:
            text = await loop.run_in_executor(None, self._decode, ids)
            result = await self.compute_score(solution_str=text, **kwargs)
        else:
            result = await loop.run_in_executor(None, self._score, ids, kwargs)
        info = _extra_info(result)
        return {"reward_score": info["score"], "reward_extra_info": info}
