"""Stage 1 end to end on CPU: the built-in synthetic multi-view set's oracle chains (filtered by the
teacher's SFT filter, written by the teacher's writer) -> veRL's SFT trainer (`torch.distributed.run -m verl.trainer.sft_trainer +recipe=star_r1_sft`, run by
`star-verl smoke`) on the tiny Qwen2.5-VL -> an HF checkpoint that loads and that the stage-2 recipe
(`star_r1_mv`) accepts; and the prompt the SFT model is trained on is token for token the prompt the
RL dataset gives the policy.

The trainer run is the session fixture `sft_run` (tests/trainer_runs.py), which stage 2's run
(`mv_run`, tests/test_train_e2e_on_cpu.py) starts from: one start-up for both."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from star_verl.data.settings import StarDataSettings
from star_verl.pixels import dataset_patch_size, image_tokens, merge_factor, processor_pixel_range
from star_verl.prep.trance_format import HEIGHT, WIDTH
from star_verl.recipes import compose_recipe
from tests.dataset_fixtures import agent_loop_prompts
from tests.trainer_runs import SFT_SETTINGS, SFT_STEPS, sft_hf_checkpoint

_STEP_LINE = re.compile(r"^step:(\d+) - .*train/loss:([-\d.e+na]+) .*train/global_tokens:(\d+)", re.MULTILINE)


def sft_overrides(stage1: Path, model: str) -> list[str]:
    """The dataset settings of the SFT run (smoke's CPU settings aside): the recipe's files under $STAR_VERL_DATA."""
    cot = stage1 / "sft"
    return [f"data.train_files={cot / 'train.parquet'}", f"data.val_files={cot / 'val.parquet'}", f"model.path={model}", *SFT_SETTINGS]


def test_sft_trainer_runs_the_recipe_on_cpu_and_writes_a_loadable_hf_checkpoint(sft_run, stage1, tiny_qwen25vl, tok_proc):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from star_verl.data.sft_dataset import StarSFTDataset

    sft_run.check()
    log, ckpt = sft_run.log, sft_run.out / "checkpoints"
    steps = [(int(s), float(loss), int(tokens)) for s, loss, tokens in _STEP_LINE.findall(log)]
    assert [s for s, _, _ in steps] == list(range(1, SFT_STEPS + 1)), log[-3000:]
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss, _ in steps)
    assert "val/loss" in log

    # The trainer consumed exactly the pipeline's rows, image tokens included: one epoch of 8 rows
    # in batches of 4 covers every row once, so its token count is the sum of the dataset's lengths.
    tok, proc = tok_proc
    cfg = compose_recipe("star_r1_sft", sft_overrides(stage1, tiny_qwen25vl))
    ds = StarSFTDataset(parquet_files=[str(stage1 / "sft" / "train.parquet")], tokenizer=tok, config=cfg.data, processor=proc)
    assert len(ds) == 8
    image_pad = tok.convert_tokens_to_ids(proc.image_token)
    # the 320x240 views are over the tiny processor's cap, so the pixel budget is exercised: each view
    # reaches the model at the processor's fit, 2 to 4 views per row
    patch = dataset_patch_size("sft", proc, cfg.data)
    assert WIDTH * HEIGHT > processor_pixel_range(proc)[1]
    budget = StarDataSettings.from_config(cfg.data).budget
    n_views = [int(ds.dataframe.iloc[i]["extra_info"]["n_images"]) for i in range(len(ds))]
    assert len(set(n_views)) > 1 and all(2 <= n <= 4 for n in n_views)
    expected = [sum(image_tokens(w, h, merge_factor(patch)) for w, h in budget.fitted_sizes([(WIDTH, HEIGHT)] * n, patch, processor_pixel_range(proc)))
                for n in n_views]  # fmt: skip
    assert [int((ds[i]["input_ids"] == image_pad).sum()) for i in range(len(ds))] == expected
    assert sum(tokens for _, _, tokens in steps) == int(ds.sample_lengths.sum())

    hf_dir = sft_hf_checkpoint(sft_run)
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == str(SFT_STEPS)
    trained = Qwen2_5_VLForConditionalGeneration.from_pretrained(hf_dir)
    initial = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen25vl)
    after, before = trained.state_dict(), initial.state_dict()
    assert after.keys() == before.keys() and all(after[k].shape == before[k].shape for k in after)
    changed = [k for k in after if not torch.equal(after[k].float(), before[k].float())]
    assert any("language_model" in k or "lm_head" in k or "embed_tokens" in k for k in changed), changed[:5]
    # Stage 2 starts from this folder: it carries the tokenizer and the processor, and star_r1_mv takes it.
    assert type(AutoProcessor.from_pretrained(hf_dir)).__name__ == "Qwen2_5_VLProcessor"
    rl = compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={hf_dir}"])
    assert rl.actor_rollout_ref.model.path == str(hf_dir)


def test_sft_prompt_is_byte_identical_to_the_rl_prompt(stage1, tiny_qwen25vl, tok_proc):
    """For every kept question: the tokens before the first trained token of the SFT sample (system,
    user with image pads, assistant header) == the AgentLoop's prompt for the pool's RL row, and the
    pixel values are the same tensors."""
    from verl.trainer.ppo.utils import create_rl_dataset

    from star_verl.data.sft_dataset import StarSFTDataset

    tok, proc = tok_proc
    sft_cfg = compose_recipe("star_r1_sft", sft_overrides(stage1, tiny_qwen25vl))
    rl_cfg = compose_recipe(
        "star_r1_mv",
        [
            f"actor_rollout_ref.model.path={tiny_qwen25vl}",
            f"data.train_files={stage1 / 'multiview' / 'sft_pool.parquet'}",
            "data.max_prompt_length=1024",
        ],
    )
    # the recipes agree on the template and the pixel budget (what the prompt tokens depend on)
    star = ("template", "min_pixels", "max_pixels", "total_max_pixels")
    assert {k: sft_cfg.data.star[k] for k in star} == {k: rl_cfg.data.star[k] for k in star}
    assert sft_cfg.data.star.template == "three_step"
    sft = StarSFTDataset(
        parquet_files=[str(stage1 / "sft" / "train.parquet"), str(stage1 / "sft" / "val.parquet")], tokenizer=tok, config=sft_cfg.data, processor=proc
    )
    rl = create_rl_dataset([str(stage1 / "multiview" / "sft_pool.parquet")], rl_cfg.data, tok, proc)
    rl_row = {rl.dataframe[i]["extra_info"]["question_id"]: i for i in range(len(rl))}

    assert len(sft) == 10
    qids = [sft.dataframe.iloc[i]["extra_info"]["question_id"] for i in range(len(sft))]
    rl_prompts = agent_loop_prompts(rl_cfg, [rl[rl_row[qid]] for qid in qids], tok_proc)
    for i, qid in enumerate(qids):
        item = sft[i]
        first_trained = int(torch.nonzero(item["loss_mask"])[0])
        sft_prompt = item["input_ids"][:first_trained].tolist()
        rl_ids, rl_mm, _ = rl_prompts[i]
        assert sft_prompt == list(rl_ids), qid
        assert tok.decode(sft_prompt) == tok.decode(rl_ids)
        assert tok.decode(item["input_ids"][first_trained:]).startswith("<think>Step 1")  # training starts at the chain
        assert torch.equal(item["multi_modal_inputs"]["pixel_values"], rl_mm["pixel_values"])
        assert torch.equal(item["multi_modal_inputs"]["image_grid_thw"], rl_mm["image_grid_thw"])
