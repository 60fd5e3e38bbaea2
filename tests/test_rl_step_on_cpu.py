"""One GRPO step of each RL recipe up to the GPU, on CPU, with veRL 0.9.1's own code end to end.

Per recipe (star_r1_tvr, star_r1_mv, and the ablation star_r1_tvr_no_incorrect):
1. the recipe composed with veRL's config (`compose_recipe`) and checked by veRL's `validate_config`;
2. data built by the project's own converters (synthetic TVR through the TRANCE converter;
   MindCube- and SPAR-7M-shaped sources through the multi-view converter);
3. `create_rl_dataset` and `collate_fn`, a `uid` per prompt and `repeat(n, interleave=True)`, as
   `RayPPOTrainer.fit` does;
4. veRL's `AgentLoopWorker.generate_sequences`: the single-turn AgentLoop calls the dataset class's
   `process_multi_modal_info`, builds the prompt with the processor (Continuous Token builder), pads
   prompts left and responses right, computes the multimodal inputs and mrope position ids, and
   scores every trajectory in the recipe's reward manager inside Ray `RewardLoopWorker`s (the
   streaming path). The only stand-in is the LLM server: `ScriptedRollout` answers each prompt's
   group with five scripted responses (exact, partial, enumerating, empty, malformed), token ids as
   vLLM returns them (ending in the EOS token);
5. the batch reward path too (`RewardLoopManager.compute_rm_score`, `assemble_rm_scores`), which must agree;
6. `extract_reward`, token-level rewards and GRPO advantages by the v1 trainer's
   `compute_advantage_for_multi_trajectories` -> `ray_trainer.compute_advantage` ->
   `core_algos.compute_grpo_outcome_advantage`, grouped by `uid`.

What the method promises is then asserted on the advantages: within each group the exact answer is
the best, enumerating and answering nothing are below the group mean (negative advantage); without
the incorrect-prediction penalty (the ablation) enumeration pays as much as the exact answer, which
is why the paper's model learns to enumerate there. Every reward component arrives in the batch
with the same keys for every data source.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from star_verl.rewards import REWARD_KEYS, compute_score
from star_verl.tasks.tvr import ATTRIBUTES, VOCAB
from star_verl.templates import IMAGE_PLACEHOLDER
from tests.multiview_fixtures import response_for, write_mindcube_fixture, write_spar_fixture
from tests.tvr_fixtures import tagged
from tests.tvr_prep_fixtures import synthetic_tvr_set

KINDS = ("exact", "partial", "enumerating", "empty", "malformed")
N = len(KINDS)  # the GRPO group size (actor_rollout_ref.rollout.n)
RECIPES = ("star_r1_tvr", "star_r1_mv", "star_r1_tvr_no_incorrect")
# A tiny run of the recipe on one "GPU": only the sizes change; the algorithm, data and reward
# settings are the recipe's.
SMALL = [
    "data.train_batch_size=4",
    f"actor_rollout_ref.rollout.n={N}",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "trainer.n_gpus_per_node=1",
    "reward.num_workers=1",
    "data.dataloader_num_workers=0",
]


# --------------------------------------------------------------------------------------------
# scripted responses


def tvr_responses(gt: dict[str, Any]) -> dict[str, str]:
    items = [f"{t['obj_idx']}.{t['attr']}.{t['val']}" for t in gt["transformations"]]
    last = gt["transformations"][-1]
    wrong = next(v for v in VOCAB[last["attr"]] if v != last["val"])
    # Enumerating: every value of every attribute of each object that changed (it covers the answer).
    # (Listing every object too would sink the group mean so far that answering nothing, -n_gt,
    # lands above it: GRPO's advantages are relative to the group.)
    changed = sorted({t["obj_idx"] for t in gt["transformations"]})
    every = [f"{i}.{a}.{v}" for i in changed for a in ATTRIBUTES for v in VOCAB[a]]
    return {
        "exact": tagged(", ".join(items)),
        "partial": tagged(", ".join(items[: max(1, len(items) // 2)] + [f"{last['obj_idx']}.{last['attr']}.{wrong}"])),
        "enumerating": tagged(", ".join(every), think="list every object with every value"),
        "empty": "",
        "malformed": f"<think>a</think><think>b</think><answer>{', '.join(items)}</answer>",  # two think blocks
    }


def mv_responses(gt: dict[str, Any]) -> dict[str, str]:
    answer = str(gt["answer"])
    if gt["type"] == "choice":
        every = ", ".join(gt["options"])
    elif gt["type"] == "numeric":
        every = ", ".join(str(v) for v in range(11))
    else:
        every = " or ".join(f"{move}:1" for move in ("move_left", "move_right", "move_forward", "move_backward"))
    return {
        "exact": response_for(gt, right=True),  # the three steps with the key references, right answer
        "partial": tagged(answer, think="The views overlap, so the answer follows."),  # right answer, no references
        "enumerating": tagged(every, think="It could be any of them."),
        "empty": "",
        "malformed": f"<think>a</think><think>b</think><answer>{answer}</answer>",
    }


class ScriptedRollout:
    """Stands in for veRL's LLM server client (vLLM/SGLang): `generate` returns the next scripted
    response of the prompt's row as token ids ending in EOS, like a finished vLLM request. (A plain
    class: Hydra's instantiate would turn a dataclass argument into a structured config.)"""

    def __init__(self, tokenizer, markers: list[str], scripts: list[dict[str, str]]):
        self.tokenizer = tokenizer
        self.markers = markers  # per row: a text only that row's question contains
        self.scripts = scripts  # per row: kind -> response
        self.served: dict[int, int] = {}
        self.requests: list[tuple[int, int]] = []  # (row, images) per request

    def row_of(self, prompt_ids: list[int]) -> int:
        text = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        rows = [i for i, marker in enumerate(self.markers) if marker in text]
        assert len(rows) == 1, f"prompt matches rows {rows}"
        return rows[0]

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        row = self.row_of(prompt_ids)
        k = self.served.get(row, 0)
        self.served[row] = k + 1
        self.requests.append((row, len(image_data or [])))
        text = self.scripts[row][KINDS[k]]
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, stop_reason="completed")


def question_marker(prompt: list[dict[str, Any]]) -> str:
    """The longest text run of a row's raw question (between image placeholders)."""
    return max(prompt[0]["content"].split(IMAGE_PLACEHOLDER), key=len).strip()


# --------------------------------------------------------------------------------------------
# data (the project's converters)


@pytest.fixture(scope="module")
def tvr_files(tmp_path_factory) -> list[str]:
    out = synthetic_tvr_set(tmp_path_factory.mktemp("rl_step_tvr"), n=6)  # 4 train rows, center view
    return [str(out / "train.parquet")]


@pytest.fixture(scope="module")
def mv_files(tmp_path_factory) -> list[str]:
    from star_verl.prep.build_multiview import BuildOptions, build

    root = tmp_path_factory.mktemp("rl_step_mv")
    mindcube = write_mindcube_fixture(root / "mindcube", n=12, n_tiny=4)
    spar = write_spar_fixture(root / "spar", n=1, image_size=(160, 120))
    build(BuildOptions(out=root / "out", mindcube=mindcube, spar=spar, rl_samples=12, val_samples=0, sft_pool=0, progress=False))
    return [str(root / "out" / "rl_train.parquet")]


def pick_tvr(rows: list[dict[str, Any]]) -> list[int]:
    return list(range(4))


def pick_mv(rows: list[dict[str, Any]]) -> list[int]:
    """A MindCube question with the most views and SPAR's three answer types (choice, numeric, view change)."""
    gts = [json.loads(r["reward_model"]["ground_truth"]) for r in rows]
    mindcube = max((i for i, r in enumerate(rows) if r["data_source"] == "mindcube"), key=lambda i: rows[i]["extra_info"]["n_images"])
    spar = [
        next(i for i, r in enumerate(rows) if r["data_source"] == "spar" and gts[i]["type"] == kind) for kind in ("choice", "numeric", "view_change")
    ]
    return [mindcube, *spar]


# --------------------------------------------------------------------------------------------
# one step


@dataclass
class Step:
    recipe: str
    cfg: Any
    batch: Any  # DataProto after rollout, rewards and advantages, as the trainer holds it
    batch_path: Any  # RewardLoopManager.compute_rm_score on the same batch
    rows: list[dict[str, Any]]  # per prompt: data_source, ground truth, extra_info
    kinds: list[str]  # per trajectory
    rollout: ScriptedRollout

    def advantage(self, i: int) -> float:
        mask = self.batch.batch["response_mask"][i].bool()
        values = self.batch.batch["advantages"][i][mask]
        assert torch.all(values == values[0]), "GRPO: one advantage per trajectory"
        return float(values[0])

    def groups(self) -> list[dict[str, float]]:
        """kind -> advantage, per prompt (rows are interleaved: prompt p holds rows p*N .. p*N+N-1, one uid)."""
        uids = self.batch.non_tensor_batch["uid"]
        assert [len(set(uids[p * N : (p + 1) * N])) for p in range(len(self.rows))] == [1] * len(self.rows)
        assert len(set(uids)) == len(self.rows)
        return [{self.kinds[p * N + k]: self.advantage(p * N + k) for k in range(N)} for p in range(len(self.rows))]


def wait_for_free_names(ray, n: int, timeout: float = 30.0) -> None:
    """RewardLoopManager names its actors reward_loop_worker_<i>: wait until an earlier manager's are gone."""
    import time

    deadline = time.monotonic() + timeout
    for i in range(n):
        while True:
            try:
                ray.get_actor(f"reward_loop_worker_{i}")
            except ValueError:
                break
            assert time.monotonic() < deadline, f"reward_loop_worker_{i} still alive"
            time.sleep(0.2)


def run_step(recipe: str, files: list[str], pick, model: str, ray) -> Step:
    from verl import DataProto
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.reward import extract_reward
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import collate_fn

    from star_verl.recipes import compose_recipe, validate_recipe_config

    cfg = compose_recipe(recipe, [f"actor_rollout_ref.model.path={model}", f"data.train_files={files}", f"data.val_files={files}", *SMALL])
    validate_recipe_config(cfg, "ppo_trainer")
    assert cfg.algorithm.adv_estimator == "grpo" and not cfg.algorithm.use_kl_in_reward

    # the TaskRunner's tokenizer and processor, and its dataset
    tokenizer, processor = hf_tokenizer(model), hf_processor(model, use_fast=True)
    assert processor is not None, "hf_processor returned None (torchvision?)"
    dataset = create_rl_dataset(list(cfg.data.train_files), cfg.data, tokenizer, processor)
    items = [dataset[i] for i in range(len(dataset))]
    chosen = pick(items)
    items = [items[i] for i in chosen]
    rows = [{"data_source": it["data_source"], "gt": json.loads(it["reward_model"]["ground_truth"]), "extra_info": it["extra_info"]} for it in items]
    respond = {"tvr": tvr_responses}
    scripts = [respond.get(r["data_source"], mv_responses)(r["gt"]) for r in rows]
    rollout = ScriptedRollout(tokenizer, [question_marker(it["prompt"]) for it in items], scripts)

    # RayPPOTrainer.fit: a uid per prompt, the generation batch, n trajectories per prompt
    batch = DataProto.from_single_dict(collate_fn(items))
    batch.meta_info["temperature"] = cfg.actor_rollout_ref.rollout.temperature
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    gen_batch = RayPPOTrainer._get_gen_batch(None, batch)  # a pure function of the batch in 0.9.1
    gen_batch.meta_info["global_steps"] = 1
    gen_batch = gen_batch.repeat(repeat_times=N, interleave=True)

    wait_for_free_names(ray, int(cfg.reward.num_workers))
    manager = RewardLoopManager(cfg)
    try:
        worker = AgentLoopWorker(cfg, llm_client=rollout, reward_loop_worker_handles=manager.reward_loop_workers)
        out = asyncio.run(worker.generate_sequences(gen_batch))
        batch = batch.repeat(repeat_times=N, interleave=True).union(out)
        batch_path = manager.compute_rm_score(batch)
    finally:
        for handle in manager.reward_loop_workers:
            ray.kill(handle)

    # the trainer's reward and advantage step (v1 `_compute_advantage`)
    reward_tensor, extra = extract_reward(batch)
    batch.batch["token_level_scores"] = reward_tensor
    batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
    batch.non_tensor_batch.update({k: np.array(v) for k, v in extra.items()})
    keys = [f"{uid}_{i % N}_0" for i, uid in enumerate(batch.non_tensor_batch["uid"])]  # {uid}_{session}_{output}
    batch = compute_advantage_for_multi_trajectories(
        batch,
        batch_keys=keys,
        adv_estimator=cfg.algorithm.adv_estimator,
        gamma=cfg.algorithm.gamma,
        lam=cfg.algorithm.lam,
        num_repeat=N,
        norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True),
        config=cfg.algorithm,
    )

    decoded = [
        tokenizer.decode(batch.batch["responses"][i][batch.batch["response_mask"][i].bool()], skip_special_tokens=True) for i in range(len(batch))
    ]
    kinds = []
    for i, text in enumerate(decoded):
        script = scripts[i // N]
        match = [
            k for k, resp in script.items() if tokenizer.decode(tokenizer.encode(resp, add_special_tokens=False), skip_special_tokens=True) == text
        ]
        assert len(match) == 1, (i, text[:200])
        kinds.append(match[0])
    return Step(recipe, cfg, batch, batch_path, rows, kinds, rollout)


@pytest.fixture(scope="module")
def steps(ray_local, tiny_qwen25vl, tvr_files, mv_files):
    """recipe -> Step, each run once for the module (lazily, in the order the tests ask)."""
    cache: dict[str, Step] = {}
    data = {"star_r1_tvr": (tvr_files, pick_tvr), "star_r1_tvr_no_incorrect": (tvr_files, pick_tvr), "star_r1_mv": (mv_files, pick_mv)}

    def get(recipe: str) -> Step:
        if recipe not in cache:
            files, pick = data[recipe]
            cache[recipe] = run_step(recipe, files, pick, tiny_qwen25vl, ray_local)
        return cache[recipe]

    return get


# --------------------------------------------------------------------------------------------
# what the method promises


@pytest.mark.parametrize("recipe", ["star_r1_tvr", "star_r1_mv"])
def test_exact_answer_leads_each_group_and_enumeration_and_inaction_lose(steps, recipe):
    step = steps(recipe)
    for p, group in enumerate(step.groups()):
        where = f"{recipe} prompt {p} ({step.rows[p]['data_source']} {step.rows[p]['extra_info']['task']}): {group}"
        assert group["exact"] == max(group.values()), where
        assert group["enumerating"] < 0 and group["empty"] < 0, where
        assert group["malformed"] < group["exact"], where  # the format reward counts
        assert abs(sum(group.values())) < 1e-4, where  # GRPO: advantages centered per group


def test_without_the_incorrect_penalty_enumeration_pays_like_the_exact_answer(steps):
    ablation, full = steps("star_r1_tvr_no_incorrect"), steps("star_r1_tvr")
    for group, full_group in zip(ablation.groups(), full.groups(), strict=True):
        assert group["enumerating"] == pytest.approx(group["exact"]) and group["exact"] > 0
        assert full_group["enumerating"] < 0 < full_group["exact"]
    r_incorrect = ablation.batch.non_tensor_batch["r_incorrect"]
    assert np.all(r_incorrect == 0.0)
    assert np.all(full.batch.non_tensor_batch["r_incorrect"][[k == "enumerating" for k in full.kinds]] < 0)


@pytest.mark.parametrize("recipe", RECIPES)
def test_rewards_are_the_scorers_with_the_recipes_settings(steps, recipe):
    step = steps(recipe)
    kwargs = dict(step.cfg.reward.custom_reward_function.reward_kwargs)
    scores = step.batch.batch["token_level_scores"]
    for i, kind in enumerate(step.kinds):
        row = step.rows[i // N]
        want = compute_score(row["data_source"], step.rollout.scripts[i // N][kind], json.dumps(row["gt"]), row["extra_info"], **kwargs)
        got = {key: float(step.batch.non_tensor_batch[key][i]) for key in REWARD_KEYS}
        assert got == want, (recipe, i, kind)
        # the score sits on the last response token, nowhere else (as the float32 the tensor holds: 1.1 is not exact there)
        last = int(step.batch.batch["response_mask"][i].sum()) - 1
        want32 = float(torch.tensor(want["score"], dtype=scores.dtype))
        assert float(scores[i, last]) == want32 and float(scores[i].sum()) == want32


@pytest.mark.parametrize("recipe", RECIPES)
def test_streaming_and_batch_reward_paths_agree(steps, recipe):
    step = steps(recipe)
    assert torch.equal(step.batch_path.batch["rm_scores"], step.batch.batch["rm_scores"])
    assert step.batch_path.meta_info["reward_extra_keys"] == step.batch.meta_info["reward_extra_keys"]
    for key in REWARD_KEYS:
        assert step.batch_path.non_tensor_batch[key].tolist() == step.batch.non_tensor_batch[key].tolist(), key


def test_every_reward_component_arrives_with_the_same_keys_for_every_source(steps):
    sources = set()
    for recipe in RECIPES:
        step = steps(recipe)
        assert step.batch.meta_info["reward_extra_keys"] == list(REWARD_KEYS), recipe
        for key in REWARD_KEYS:
            values = step.batch.non_tensor_batch[key]
            assert len(values) == len(step.kinds) and all(math.isfinite(float(v)) for v in values), (recipe, key)
        for i, info in enumerate(step.batch.non_tensor_batch["reward_extra_info"]):  # per trajectory (streaming path)
            assert list(info) == list(REWARD_KEYS), (recipe, i)
            sources.add(step.rows[i // N]["data_source"])
    assert sources == {"tvr", "mindcube", "spar"}


# --------------------------------------------------------------------------------------------
# the rollout batch veRL built


@pytest.mark.parametrize("recipe", ["star_r1_tvr", "star_r1_mv"])
def test_rollout_batch_layout_and_multimodal_inputs(steps, recipe):
    step = steps(recipe)
    b = step.batch.batch
    rows, width = b["prompts"].shape
    assert rows == N * len(step.rows) and b["responses"].shape[1] == step.cfg.data.max_response_length
    assert width == step.cfg.actor_rollout_ref.rollout.prompt_length
    prompt_mask, response_mask = b["attention_mask"][:, :width], b["attention_mask"][:, width:]
    for i in range(rows):
        # prompts left-padded, responses right-padded, one attention mask over both
        assert torch.all(prompt_mask[i].diff() >= 0) and torch.all(response_mask[i].diff() <= 0)
        assert torch.equal(b["input_ids"][i], torch.cat([b["prompts"][i], b["responses"][i]]))
        assert torch.equal(b["response_mask"][i], response_mask[i])
    assert b["position_ids"].shape == (rows, 4, width + b["responses"].shape[1])  # text row + 3 mrope rows (Qwen2.5-VL)
    # every image reached the model, at the recipe's pixel budget, through the dataset's own loader
    image_pad = step.rollout.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for i, mm in enumerate(step.batch.non_tensor_batch["multi_modal_inputs"]):
        row = step.rows[i // N]
        grid = mm["image_grid_thw"]
        assert grid.shape[0] == row["extra_info"]["n_images"]
        assert int((b["prompts"][i] == image_pad).sum()) == int(grid.prod(-1).sum()) // 4  # 2x2 merge
        assert int(grid[:, 1:].prod(-1).max()) * 14 * 14 <= step.cfg.data.star.max_pixels
    served = sorted(step.rollout.requests)
    assert served == sorted((p, row["extra_info"]["n_images"]) for p, row in enumerate(step.rows) for _ in range(N))
