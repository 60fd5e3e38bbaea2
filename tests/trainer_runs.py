"""The suite's four trainer start-ups, shared through session-scoped fixtures (each costs 1.5 to 3
minutes on 2 cores; tests/conftest.py imports the fixtures):

1. `tvr_run`: star_r1_tvr, 2 GRPO steps with validation before and after, on the synthetic TVR set
   that smoke builds with the project's converter (the recipe's data files do not exist);
2. `tvr_resumed`: the same run resumed from its step-2 checkpoint (`trainer.resume_mode=resume_path`)
   for one more step;
3. `sft_run`: star_r1_sft (torchrun) on the built-in synthetic multi-view set's oracle chains
   (`stage1`: `star-verl build-multiview --synthetic 30 --with-chains`, plus an MMSI-shaped benchmark),
   with the recipe's own data paths ($STAR_VERL_DATA/sft);
4. `mv_run`: star_r1_mv from `sft_run`'s Hugging Face checkpoint, on the same set's RL rows, validating
   on the recipe's benchmark files that exist (the synthetic one and MMSI's).

Every run is `star-verl smoke` in a subprocess: veRL's real entry point (`main_ppo`, or
`sft_trainer` under `torch.distributed.run`) with star-verl's CPU support, nothing mocked. Runs 1
and 2 use `testing_support/varied_reward.py` (the real compute_score plus a term that varies between
random responses) so that GRPO has non-zero advantages; run 4 keeps the recipe's own reward.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VARIED_REWARD = REPO / "testing_support" / "varied_reward.py"
RUN_TIMEOUT_S = 900
# The RL runs that assert weight changes: the varied reward, and a learning rate at which one step
# moves the tiny policy far enough that generating with stale weights shows (see SYNCED_PROBS_DIFF in
# tests/test_train_e2e_on_cpu.py) and the KL to the reference is above float32's resolution.
LEARNING = [f"reward.custom_reward_function.path={VARIED_REWARD}", "actor_rollout_ref.actor.optim.lr=1e-2"]
TVR_TRAIN_ROWS = 6  # 3 batches of 2: steps 1-2 in the first run, step 3 after the resume
SYNTHETIC_QUESTIONS = 30  # 5 validation, 15 RL, 10 SFT-pool questions -> 10 oracle chains: 2 val (20%) + 8 train
SFT_BATCH, SFT_STEPS, SFT_MAX_LENGTH = 4, 2, 1536  # the longest oracle-chain row: ~1300 tokens
# What the SFT stage changes in smoke's settings: one epoch of the 8 rows in 2 steps of 4, and a
# large lr so a few steps visibly move the weights.
SFT_SETTINGS = [
    f"data.train_batch_size={SFT_BATCH}", "data.micro_batch_size_per_gpu=2", f"data.max_length={SFT_MAX_LENGTH}",
    "optim.lr=1e-3", "optim.lr_warmup_steps_ratio=0",
]  # fmt: skip

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP_LINE = re.compile(r"(?:^|\) )step:(\d+) - (.*)$")
_VALUE = re.compile(r"^(?:np\.float\d+\()?([-+0-9.eEinfa]+)\)?$")


@dataclass
class SmokeRun:
    """A finished `star-verl smoke` run: its exit code, console output and output folder."""

    out: Path
    returncode: int
    console: str

    @property
    def log(self) -> str:
        path = self.out / "train.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def check(self) -> None:
        assert self.returncode == 0, f"smoke exit code {self.returncode}\n{self.console[-5000:]}\n--- train.log tail ---\n{self.log[-5000:]}"

    def steps(self) -> dict[int, dict[str, float]]:
        """The numeric metrics of the trainer's `step:N - key:value - ...` lines, merged per step."""
        steps: dict[int, dict[str, float]] = {}
        for line in _ANSI.sub("", self.log).splitlines():
            if m := _STEP_LINE.search(line):
                metrics = steps.setdefault(int(m.group(1)), {})
                for part in m.group(2).split(" - "):
                    key, _, value = part.strip().rpartition(":")
                    if (v := _VALUE.match(value)) and key:
                        metrics[key] = float(v.group(1))
        return steps

    def dump(self, kind: str, step: int) -> list[dict[str, Any]]:
        """veRL's rollout (`rollouts`) or validation (`validation`) dump of one step."""
        lines = (self.out / kind / f"{step}.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def config(self) -> dict[str, Any]:
        """The config the trainer ran with, as Hydra saved it."""
        return yaml.safe_load((self.out / ".hydra" / "config.yaml").read_text())


def run_smoke(out: Path, *args: str, env: dict[str, str] | None = None) -> SmokeRun:
    """`star-verl smoke ARGS --out OUT` in its own process group (a timeout ends the trainer and
    its Ray cluster too, not only smoke)."""
    command = [sys.executable, "-m", "star_verl.cli", "smoke", *args, "--out", str(out)]
    proc = subprocess.Popen(command, cwd=out.parent, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        console, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        console, _ = proc.communicate()
        pytest.fail(f"star-verl smoke {' '.join(args)} ran over {RUN_TIMEOUT_S} s\n{console[-5000:]}")
    return SmokeRun(out, proc.returncode, console)


# --------------------------------------------------------------------------------------------
# 1 and 2: star_r1_tvr, then resumed


@pytest.fixture(scope="session")
def tvr_run(tmp_path_factory) -> SmokeRun:
    root = tmp_path_factory.mktemp("tvr_run")
    no_data = root / "star_verl_data"  # empty: the recipe's files are missing, smoke builds the synthetic set
    no_data.mkdir()
    return run_smoke(root / "run", "+recipe=star_r1_tvr", "--steps", "2", *LEARNING, f"data.train_max_samples={TVR_TRAIN_ROWS}",
                     env={"STAR_VERL_DATA": str(no_data)})  # fmt: skip


@pytest.fixture(scope="session")
def tvr_resumed(tvr_run, tmp_path_factory) -> SmokeRun:
    tvr_run.check()
    data = tvr_run.out / "data" / "tvr"
    return run_smoke(
        tmp_path_factory.mktemp("tvr_resumed") / "run", "+recipe=star_r1_tvr", "--steps", "3", "--model", str(tvr_run.out / "model"),
        "trainer.resume_mode=resume_path", f"trainer.resume_from_path={tvr_run.out / 'checkpoints' / 'global_step_2'}",
        f"data.train_files={data / 'train.parquet'}", f"data.val_files={data / 'val.parquet'}", f"data.train_max_samples={TVR_TRAIN_ROWS}",
        "trainer.val_before_train=False", *LEARNING,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# 3 and 4: star_r1_sft, then star_r1_mv from its checkpoint


@pytest.fixture(scope="session")
def stage1(tmp_path_factory) -> Path:
    """$STAR_VERL_DATA as `star-verl build-multiview --synthetic 30 --with-chains` leaves it with the
    default --out: multiview/{rl_train,val,sft_pool}.parquet, multiview/bench/synthetic_mv.parquet and
    the oracle chains in sft/{train,val}.parquet; in the same run an MMSI-shaped benchmark
    (multiview/bench/mmsi.parquet, leakage-checked against the training rows). MindCube-Tiny and
    SPAR-Bench are not built: star_r1_mv leaves them out of validation."""
    from tests.multiview_fixtures import write_mmsi_fixture

    root = tmp_path_factory.mktemp("stage1")
    mmsi = write_mmsi_fixture(root / "MMSI_Bench.parquet", n=4)
    data = root / "star_verl_data"
    args = ["build-multiview", "--synthetic", str(SYNTHETIC_QUESTIONS), "--with-chains", "--benchmarks", "mmsi", "--mmsi", str(mmsi), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "star_verl.cli", *args], capture_output=True, text=True, env={**os.environ, "STAR_VERL_DATA": str(data)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "oracle chains (synthetic, labeled origin synthetic_mv): 8 train, 2 val rows" in done.stdout, done.stdout
    return data


@pytest.fixture(scope="session")
def sft_run(stage1, tiny_qwen25vl, tmp_path_factory) -> SmokeRun:
    # the recipe's own data paths: $STAR_VERL_DATA/sft/{train,val}.parquet
    return run_smoke(
        tmp_path_factory.mktemp("sft_run") / "run", "+recipe=star_r1_sft", "--steps", str(SFT_STEPS), "--model", tiny_qwen25vl, *SFT_SETTINGS,
        env={"STAR_VERL_DATA": str(stage1)},
    )  # fmt: skip


def sft_hf_checkpoint(sft_run: SmokeRun) -> Path:
    return sft_run.out / "checkpoints" / f"global_step_{SFT_STEPS}" / "huggingface"


@pytest.fixture(scope="session")
def mv_run(sft_run, stage1, tmp_path_factory) -> SmokeRun:
    """Stage 2 with the recipe's own reward and data paths (a run whose dumped scores `star-verl curves` must match)."""
    sft_run.check()
    # the recipe's own data paths under $STAR_VERL_DATA; 2 validation rows of each benchmark built
    return run_smoke(
        tmp_path_factory.mktemp("mv_run") / "run", "+recipe=star_r1_mv", "--model", str(sft_hf_checkpoint(sft_run)), "data.star.val_subset=4",
        env={"STAR_VERL_DATA": str(stage1)},
    )  # fmt: skip
