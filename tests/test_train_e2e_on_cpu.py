"""veRL 0.9.1's real GRPO loop end to end on CPU: `main_ppo` with the vLLM rollout server (vLLM's CPU
build), the FSDP2 actor and reference, star-verl's dataset class and reward manager in Ray workers,
the weight sync after every step, checkpoints, resume, and the two-stage chain SFT -> RL.

The runs are the session fixtures of tests/trainer_runs.py (`star-verl smoke` subprocesses of the
real entry points); the stage-1 (SFT) assertions are in tests/test_sft_stage_on_cpu.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import OmegaConf

from star_verl.rewards import REWARD_KEYS, compute_score
from star_verl.rewards.benchmark import TVR_VALIDATION_KEYS, validation_metric
from testing_support.varied_reward import E_SHARE_KEY, e_share
from tests.trainer_runs import TVR_TRAIN_ROWS, sft_hf_checkpoint

# veRL logs the largest |p_rollout - p_actor| over the batch's response tokens. With the weights
# synced after every step it stays at 7e-5 to 1e-4 (bf16 in both engines). A control run by hand
# that skipped the syncs after the first (same settings, lr 1e-2) logged 1.33e-3 and 1.36e-3 at
# steps 2 and 3 (at lr 1e-3: 4.2e-4, at lr 1e-4: 1.5e-4, below the noise bound of cpu_e2e.md's 1e-3).
SYNCED_PROBS_DIFF = 5e-4
VIEWS = {"center", "left", "right"}


def reward_settings(run) -> dict:
    return dict(run.config()["reward"]["custom_reward_function"]["reward_kwargs"])


def actor_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The FSDP actor's parameters in a veRL checkpoint (one rank)."""
    state = torch.load(checkpoint / "actor" / "model_world_size_1_rank_0.pt", map_location="cpu", weights_only=False)
    return {name: (t.to_local() if hasattr(t, "to_local") else t).float() for name, t in state.items()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    assert before.keys() == after.keys()
    return [name for name in before if not torch.equal(before[name], after[name])]


# --------------------------------------------------------------------------------------------
# star_r1_tvr


def test_tvr_grpo_steps_update_the_actor_and_the_rollout_engine_follows(tvr_run):
    from transformers import Qwen2_5_VLForConditionalGeneration

    tvr_run.check()
    steps = tvr_run.steps()
    assert sorted(steps) == [0, 1, 2], tvr_run.console[-3000:]  # validation before training (0), two training steps
    for step in (1, 2):
        metrics = steps[step]
        assert metrics["actor/grad_norm"] > 0, (step, metrics)  # non-zero advantages reached the actor
        assert metrics["actor/lr"] > 0
        # the rollout engine generated this step with the weights the actor had after the last update
        assert metrics["training/rollout_probs_diff_max"] < SYNCED_PROBS_DIFF, (step, metrics["training/rollout_probs_diff_max"])
    assert steps[1]["actor/kl_loss"] == 0.0  # actor == reference before the first update
    assert steps[2]["actor/kl_loss"] > 0  # ... and not after it
    # every parameter of the saved actor moved away from the initial model
    initial = {k: v.float() for k, v in Qwen2_5_VLForConditionalGeneration.from_pretrained(tvr_run.out / "model").state_dict().items()}
    trained = actor_weights(tvr_run.out / "checkpoints" / "global_step_2")
    assert changed(initial, trained) == list(initial)
    # greedy validation of the same prompts generates otherwise after training: vLLM has the new weights
    before, after = ([line["output"] for line in tvr_run.dump("validation", step)] for step in (0, 2))
    assert before != after
    # smoke saw the same run
    assert "step 2/2" in tvr_run.console and "smoke star_r1_tvr: OK" in tvr_run.console


def test_tvr_run_used_the_synthetic_set_built_by_the_converter(tvr_run):
    tvr_run.check()
    data = tvr_run.out / "data" / "tvr"
    assert "the recipe's data files do not exist" in tvr_run.console
    cfg = tvr_run.config()
    assert cfg["data"]["train_files"] == str(data / "train.parquet") and cfg["data"]["val_files"] == str(data / "val.parquet")
    assert json.loads((data / "summary.json").read_text())  # the converter's report


def test_every_reward_component_reaches_the_trainer_with_the_scorers_values(tvr_run):
    """The validation metrics carry every component; each dumped score (rollouts and validation) is
    the real compute_score of that response plus the test reward's share of "e"."""
    tvr_run.check()
    settings = reward_settings(tvr_run)
    for step in (0, 2):
        metrics = tvr_run.steps()[step]
        for key in (*REWARD_KEYS, E_SHARE_KEY):
            assert f"val-aux/tvr/{key}/mean@1" in metrics or f"val-core/tvr/{key}/mean@1" in metrics, (step, key)
    checked = 0
    for kind, step in (("rollouts", 1), ("rollouts", 2), ("validation", 0), ("validation", 2)):
        for line in tvr_run.dump(kind, step):
            want = compute_score("tvr", line["output"], line["gts"], None, **settings)
            assert math.isclose(line["score"], want["score"] + e_share(line["output"]), abs_tol=1e-4), (kind, step, line["output"][:80])
            if kind == "validation":  # veRL writes every reward_extra_info key into the validation dump
                assert {key: line[key] for key in REWARD_KEYS if key != "score"} == {key: want[key] for key in REWARD_KEYS if key != "score"}
            checked += 1
    assert checked == 2 * 2 * 2 + 2 * 3  # 2 steps x 2 prompts x 2 responses; 2 validations x 3 rows


def test_validation_dump_holds_the_three_views_and_scores_with_eval_score(tvr_run):
    tvr_run.check()
    for step in (0, 2):
        assert {json.loads(line["gts"])["view"] for line in tvr_run.dump("validation", step)} == VIEWS
    # smoke ran `star-verl eval score` on the last dump
    metrics = json.loads((tvr_run.out / "eval" / "metrics.json").read_text())
    assert metrics["input"] == str(tvr_run.out / "validation" / "2.jsonl")
    assert metrics["n_scored"] == 3 and metrics["n_bad"] == 0
    assert set(metrics["benchmarks"]["tvr"]["views"]) == VIEWS
    per_sample = (tvr_run.out / "eval" / "per_sample.jsonl").read_text().splitlines()
    assert len(per_sample) == 3
    # the trainer logged the paper's numbers for that dump, equal to what eval score computes from it
    logged = {key: tvr_run.steps()[2][validation_metric("tvr", key)] for key in TVR_VALIDATION_KEYS}
    tvr = metrics["benchmarks"]["tvr"]
    assert 100 * logged["tacc"] == pytest.approx(tvr["headline"]["TAcc"], abs=1e-9)
    assert 100 * logged["acc_id"] == pytest.approx(tvr["headline"]["ID"], abs=1e-9)
    assert 100 * logged["acc_ood"] == pytest.approx(tvr["headline"]["OOD"], abs=1e-9)
    assert logged["ndiff"] == pytest.approx(tvr["headline"]["NDiff"], abs=1e-9)
    assert 100 * logged["official"] == pytest.approx(tvr["total"]["Acc"], abs=1e-9)


def test_curves_rescores_the_rollouts_and_flags_the_test_reward(tvr_run):
    """`star-verl curves` rescored every rollout with compute_score; this run's reward adds the share
    of "e", so every rollout differs from its rescored score, and smoke says why."""
    tvr_run.check()
    rows = (tvr_run.out / "curves" / "curves.csv").read_text().splitlines()
    header = rows[0].split(",")
    steps = [dict(zip(header, row.split(","), strict=True)) for row in rows[1:]]
    assert [int(row["step"]) for row in steps] == [1, 2]
    assert all(float(row["mismatch"]) == 1.0 for row in steps)
    assert "not star-verl's compute_score" in tvr_run.console


def test_resume_continues_the_global_step_and_the_dataloader(tvr_run, tvr_resumed):
    tvr_resumed.check()
    assert sorted(tvr_resumed.steps()) == [3]  # no step 1 or 2 again, no validation before training
    assert sorted(p.name for p in (tvr_resumed.out / "rollouts").iterdir()) == ["3.jsonl"]
    step3 = tvr_resumed.dump("rollouts", 3)
    assert {line["step"] for line in step3} == {3}
    # The dataloader went on where it stopped: step 3 trains on the two rows steps 1 and 2 did not
    # use (a restarted loader would serve step 1's prompts again), so the 3 steps saw the 6 rows.
    prompts = {step: {line["input"] for line in tvr_run.dump("rollouts", step)} for step in (1, 2)}
    prompts[3] = {line["input"] for line in step3}
    assert all(len(p) == 2 for p in prompts.values()), {s: len(p) for s, p in prompts.items()}
    assert len(prompts[1] | prompts[2] | prompts[3]) == TVR_TRAIN_ROWS
    metrics = tvr_resumed.steps()[3]
    assert metrics["actor/kl_loss"] > 0  # the actor restored from the checkpoint is the trained one, not the initial model
    assert metrics["training/rollout_probs_diff_max"] < SYNCED_PROBS_DIFF  # and vLLM got it
    ckpt = tvr_resumed.out / "checkpoints"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
    assert (ckpt / "global_step_3" / "data.pt").is_file()
    # the weights changed between step 2 and step 3
    assert changed(actor_weights(tvr_run.out / "checkpoints" / "global_step_2"), actor_weights(ckpt / "global_step_3"))


# --------------------------------------------------------------------------------------------
# star_r1_sft -> star_r1_mv


def test_stage2_trains_from_the_sft_checkpoint_with_the_recipes_reward(mv_run, sft_run, stage1, monkeypatch):
    mv_run.check()
    cfg = mv_run.config()
    assert cfg["actor_rollout_ref"]["model"]["path"] == str(sft_hf_checkpoint(sft_run))
    assert (cfg["reward"]["custom_reward_function"]["path"], cfg["reward"]["custom_reward_function"]["name"]) == (
        "pkg://star_verl.rewards",
        "compute_score",
    )
    steps = mv_run.steps()
    assert sorted(steps) == [0, 1, 2]
    for step in (1, 2):
        assert steps[step]["training/rollout_probs_diff_max"] < SYNCED_PROBS_DIFF
    # trained on the synthetic set's RL rows; validation ran on the recipe's benchmark files that exist
    # (MMSI's and the synthetic one; MindCube-Tiny and SPAR-Bench were not built: left out, one line
    # each), and every component of both data sources reached the trainer
    monkeypatch.setenv("STAR_VERL_DATA", str(stage1))  # Hydra saved the recipe's paths unresolved: resolved as the run did
    data = OmegaConf.to_container(OmegaConf.create(cfg["data"]), resolve=True)
    assert data["train_files"] == str(stage1 / "multiview" / "rl_train.parquet")
    bench = stage1 / "multiview" / "bench"
    assert data["val_files"] == [str(bench / f"{b}.parquet") for b in ("mindcube_tiny", "sparbench", "mmsi", "synthetic_mv")]
    assert "sparbench.parquet was not built: left out of validation" in mv_run.console
    assert "mindcube_tiny.parquet was not built: left out of validation" in mv_run.console
    rl_rows = pq.read_table(stage1 / "multiview" / "rl_train.parquet").to_pylist()
    questions = [row["prompt"][0]["content"].rsplit("<image>\n", 1)[1] for row in rl_rows]
    assert {row["extra_info"]["origin"] for row in rl_rows} == {"synthetic_mv"}
    assert all(any(q in line["input"] for q in questions) for line in mv_run.dump("rollouts", 1))
    for source in ("mindcube", "mmsi"):
        for key in REWARD_KEYS:
            assert validation_metric(source, key) in steps[2], (source, key)
    assert not any(name.startswith("val-aux/spar/") for name in steps[2])


def test_stage2_dumped_scores_match_compute_score(mv_run):
    """With the recipe's own reward, `star-verl curves` rescoring every rollout finds no mismatch,
    and `star-verl eval score` scored the last validation dump."""
    mv_run.check()
    rows = (mv_run.out / "curves" / "curves.csv").read_text().splitlines()
    header = rows[0].split(",")
    steps = [dict(zip(header, row.split(","), strict=True)) for row in rows[1:]]
    assert [int(row["step"]) for row in steps] == [1, 2]
    assert all(float(row["mismatch"]) == 0.0 for row in steps)
    assert "WARNING" not in mv_run.console
    metrics = json.loads((mv_run.out / "eval" / "metrics.json").read_text())
    assert metrics["n_scored"] == 4 and metrics["n_bad"] == 0
    assert set(metrics["benchmarks"]) == {"mindcube", "mmsi"}
    # the trainer's `official` mean of each benchmark is eval score's official accuracy of the same dump
    for source in ("mindcube", "mmsi"):
        logged = mv_run.steps()[2][validation_metric(source, "official")]
        assert 100 * logged == pytest.approx(metrics["benchmarks"][source]["overall"], abs=1e-9), source
