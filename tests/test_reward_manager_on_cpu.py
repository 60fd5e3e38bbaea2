"""StarRewardManager through veRL's own loader and through Ray's RewardLoopManager, on CPU."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from star_verl.rewards import REWARD_KEYS, compute_score
from tests.tvr_fixtures import WORKED_GT, tagged

GT = json.dumps(WORKED_GT)
MV_GT = json.dumps({"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], "task": "rotation"})

# (data_source, response, ground truth): perfect, partial, enumerating, empty, malformed, multi-view
CASES = [
    ("tvr", tagged("2.color.cyan, 4.color.brown"), GT),
    ("tvr", tagged("2.color.cyan, 4.color.red, 5.size.large"), GT),
    ("tvr", tagged(", ".join(f"{i}.color.{c}" for i in range(10) for c in ("red", "cyan", "brown"))), GT),
    ("tvr", "", GT),
    ("tvr", "<think>a</think><think>b</think><answer>2.color.cyan</answer>", GT),
    ("mindcube", tagged("C"), MV_GT),
]
# hand-computed TVR scores: 1 + 10; the worked example; 1 + 10 - 28 (30 predictions, 2 exact); -2; 5 - 1 (no format)
EXPECTED_TVR = [11.0, 5.5, -17.0, -2.0, 4.0]
MANAGER = [
    "reward.reward_manager.source=importlib",
    "reward.reward_manager.name=StarRewardManager",
    "reward.reward_manager.module.path=pkg://star_verl.rewards.managers",
]
CUSTOM_FN = ["reward.custom_reward_function.path=pkg://star_verl.rewards", "reward.custom_reward_function.name=compute_score"]


def compose(tiny_qwen25vl, *overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return hydra_compose(
            config_name="ppo_trainer",
            overrides=[f"actor_rollout_ref.model.path={tiny_qwen25vl}", "reward.num_workers=2", *MANAGER, *overrides],
        )


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen25vl):
    from verl.utils import hf_tokenizer

    return hf_tokenizer(tiny_qwen25vl)


def make_batch(tok, cases, prompt="Find every transformation."):
    """A rollout batch as veRL builds it: prompts left-padded, responses right-padded, one mask."""
    from verl import DataProto

    prompts = [tok.encode(prompt + f" #{i}" * i, add_special_tokens=False) for i in range(len(cases))]
    responses = [tok.encode(resp, add_special_tokens=False) + [tok.eos_token_id] for _, resp, _ in cases]
    p_len, r_len = max(map(len, prompts)), max(map(len, responses))
    pad = tok.pad_token_id
    p_ids = torch.tensor([[pad] * (p_len - len(p)) + p for p in prompts])
    r_ids = torch.tensor([r + [pad] * (r_len - len(r)) for r in responses])
    mask = torch.tensor(
        [[0] * (p_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (r_len - len(r)) for p, r in zip(prompts, responses, strict=True)]
    )
    return DataProto.from_dict(
        tensors={"prompts": p_ids, "responses": r_ids, "input_ids": torch.cat([p_ids, r_ids], 1), "attention_mask": mask},
        non_tensors={
            "data_source": np.array([c[0] for c in cases], dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": c[2]} for c in cases], dtype=object),
            "extra_info": np.array([{"index": i, "split": "test"} for i in range(len(cases))], dtype=object),
        },
    )


def expected(**kwargs):
    return [compute_score(ds, resp, gt, None, **kwargs) for ds, resp, gt in CASES]


def test_tags_that_are_special_tokens_survive_decoding(tiny_qwen25vl):
    """Qwen2.5-VL writes <think>/<answer> as plain text, but a tokenizer that has them as special
    tokens (Qwen3-style) loses them in veRL's decode(skip_special_tokens=True): the manager keeps them."""
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils import hf_tokenizer

    tok = hf_tokenizer(tiny_qwen25vl)
    tok.add_tokens(["<think>", "</think>", "<answer>", "</answer>"], special_tokens=True)
    ids = tok.encode(tagged("2.color.cyan"), add_special_tokens=False)
    assert "<answer>" not in tok.decode(ids, skip_special_tokens=True)  # what a plain decode would score
    manager = load_reward_manager(compose(tiny_qwen25vl), tok)
    out = asyncio.run(manager.run_single(make_batch(tok, CASES[:1])[0:1]))
    assert out["reward_extra_info"]["format"] == 1.0
    assert out["reward_score"] == expected()[0]["score"]


async def test_verls_load_reward_manager_builds_ours_with_the_recipes_kwargs(tiny_qwen25vl, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    from star_verl.rewards.managers import StarRewardManager

    cfg = compose(tiny_qwen25vl, *CUSTOM_FN, "+reward.custom_reward_function.reward_kwargs.tvr_incorrect_penalty=0.5")
    manager = load_reward_manager(cfg, tokenizer)
    assert isinstance(manager, StarRewardManager)
    batch = make_batch(tokenizer, CASES)
    outs = [await manager.run_single(batch[i : i + 1]) for i in range(len(CASES))]
    want = expected(tvr_incorrect_penalty=0.5)  # the recipe's reward_kwargs reach compute_score once
    for out, w in zip(outs, want, strict=True):
        assert list(out["reward_extra_info"]) == list(REWARD_KEYS)
        assert out["reward_extra_info"] == w and out["reward_score"] == w["score"]
    assert [o["reward_score"] for o in outs[:5]] == [11.0, 6.5, -3.0, -2.0, 4.0]
    assert outs[0]["reward_extra_info"]["format"] == 1.0  # the tags survived decoding


def test_manager_built_outside_the_loop_and_without_custom_function(tiny_qwen25vl, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    # no custom_reward_function: veRL passes its default scorer (no 'tvr'); the manager uses star-verl's
    manager = load_reward_manager(compose(tiny_qwen25vl), tokenizer)
    batch = make_batch(tokenizer, CASES[:5])
    scores = [asyncio.run(manager.run_single(batch[i : i + 1]))["reward_score"] for i in range(5)]
    assert scores == EXPECTED_TVR


async def test_bad_ground_truth_raises_naming_the_sample(tiny_qwen25vl, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    from star_verl.rewards import GroundTruthError

    manager = load_reward_manager(compose(tiny_qwen25vl, *CUSTOM_FN), tokenizer)
    bad = json.dumps({**WORKED_GT, "transformations": [{"obj_idx": 42, "attr": "color", "val": "red"}]})
    with pytest.raises(GroundTruthError, match="index=0.*obj_idx 42"):
        await manager.run_single(make_batch(tokenizer, [("tvr", tagged("1.color.red"), bad)]))


def test_rays_reward_loop_manager_puts_each_score_on_the_last_response_token(ray_local, tiny_qwen25vl, tokenizer):
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    cfg = compose(tiny_qwen25vl, *CUSTOM_FN)
    manager = RewardLoopManager(cfg)
    batch = make_batch(tokenizer, CASES)
    out = manager.compute_rm_score(batch)
    want = expected()
    assert out.meta_info["reward_extra_keys"] == list(REWARD_KEYS)
    # the score sits on the last valid response token
    # (rm_scores is float32: 1.1, the MindCube sample's score, is not exact there)
    want32 = torch.tensor([w["score"] for w in want], dtype=out.batch["rm_scores"].dtype).tolist()
    assert out.batch["rm_scores"].sum(-1).tolist() == want32
    last = batch.batch["attention_mask"][:, batch.batch["prompts"].shape[1] :].sum(-1) - 1
    assert out.batch["rm_scores"][torch.arange(len(CASES)), last].tolist() == want32
    for key in REWARD_KEYS:
        assert out.non_tensor_batch[key].tolist() == [w[key] for w in want], key
    # the streaming path (one trajectory per call, from the AgentLoop workers)
    single = ray.get(manager.reward_loop_workers[0].compute_score.remote(batch[1:2]))
    assert single["reward_score"] == 5.5 and single["reward_extra_info"]["r_incorrect"] == -2.0
