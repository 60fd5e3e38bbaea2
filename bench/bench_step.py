"""star-verl inside a real GRPO step: the same steps of `main_ppo` twice in one invocation, on CPU.

    .venv/bin/python bench/bench_step.py [--steps 5] [--out DIR]

1. `star`: star_r1_tvr as `star-verl smoke` runs it: star-verl's dataset class (`StarRLDataset`:
   template, pixel budget, measured length filter) and reward manager (`StarRewardManager`), scoring
   with `star_verl.rewards.compute_score`.
2. `verl`: the same prompts, images, model and settings with veRL's built-ins: `RLHFDataset` on a
   copy of the rows whose prompts are already templated (the same tokens reach the model) and
   veRL's naive reward manager calling the same `compute_score` (a reward function of the same cost).

No validation, no checkpoint: only training steps. This module is also loaded in every process of
both runs (`VERL_USE_EXTERNAL_MODULES=bench_step`, with this folder on PYTHONPATH): it times the
dataset's `__getitem__` and `_process_multi_modal_info` and the managers' `run_single` where they run
(TaskRunner, AgentLoop and RewardLoop workers) and appends each call's duration to
`$BENCH_STEP_TIMINGS/<pid>.jsonl`. Printed: per run the mean step time (`timing_s/step`, the first
step left out as warm-up), the dataset's and the reward's summed time per step and their share of it;
then the step-time ratio star / verl (goal: at most 1.05), and the difference of the dataset and
reward times alone (the step times of two runs also differ by the machine's noise, a few percent on
a shared 2-core machine; the two runs see the same prompt and response lengths, so the rest of the
step is the same work).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

TIMINGS_ENV = "BENCH_STEP_TIMINGS"


# --------------------------------------------------------------------------------------------
# the timers (active only in the benchmark's runs)


def _record(kind: str, seconds: float) -> None:
    with open(Path(os.environ[TIMINGS_ENV]) / f"{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps({"kind": kind, "s": seconds}) + "\n")


_depth = threading.local()


def _timed(kind: str, fn):
    """fn timed (the outermost call only, so an override calling super() counts once)."""
    import functools
    import inspect

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                _record(kind, time.perf_counter() - start)

        return timed_async

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        outer = not getattr(_depth, "n", 0)
        _depth.n = getattr(_depth, "n", 0) + 1
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _depth.n -= 1
            if outer:
                _record(kind, time.perf_counter() - start)

    return timed


def _time_dataset(module) -> None:
    for cls in [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]:
        if "__getitem__" in vars(cls):
            cls.__getitem__ = _timed("dataset", cls.__getitem__)
        if "_process_multi_modal_info" in vars(cls):
            fn = vars(cls)["_process_multi_modal_info"].__func__
            cls._process_multi_modal_info = classmethod(_timed("dataset", fn))


def _time_manager(module) -> None:
    for cls in [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]:
        if "run_single" in vars(cls):
            cls.run_single = _timed("reward", cls.run_single)


if os.environ.get(TIMINGS_ENV):
    from star_verl.cpu.patches import after_import

    for name in ("verl.utils.dataset.rl_dataset", "star_verl.data.rl_dataset"):
        after_import(name, _time_dataset)
    for name in ("verl.experimental.reward_loop.reward_manager.naive", "star_verl.rewards.managers"):
        after_import(name, _time_manager)


# --------------------------------------------------------------------------------------------
# the benchmark


def templated_copy(src: Path, dst: Path, model: str, overrides: list[str]) -> None:
    """src's rows with the prompt StarRLDataset builds (template applied, `<image>` placeholders), so
    that RLHFDataset gives the model the same tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils import hf_processor, hf_tokenizer

    from star_verl.recipes import compose_recipe

    cfg = compose_recipe("star_r1_tvr", overrides)
    dataset = create_rl_dataset([str(src)], cfg.data, hf_tokenizer(model), hf_processor(model), max_samples=-1)
    table = pq.read_table(src)
    rows = table.to_pylist()
    assert len(rows) == len(dataset)
    for i, row in enumerate(rows):
        messages = dataset[i]["raw_prompt"]
        row["prompt"] = [
            {"role": m["role"], "content": m["content"] if isinstance(m["content"], str)
             else "".join("<image>" if part.get("type") == "image" else part["text"] for part in m["content"])}
            for m in messages
        ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), dst)


def run(name: str, work: Path, overrides: list[str]) -> dict[str, float]:
    import subprocess
    import sys

    from star_verl.cpu import cpu_env
    from star_verl.smoke import merge_overrides, trainer_command

    out = work / name
    timings = out / "timings"
    timings.mkdir(parents=True)
    env = cpu_env({**os.environ, "VERL_USE_EXTERNAL_MODULES": "bench_step", TIMINGS_ENV: str(timings),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))})  # fmt: skip
    log = out / "train.log"
    print(f"[{name}] main_ppo ... (log: {log})", flush=True)
    with log.open("w") as f:
        command = trainer_command(
            "star_r1_tvr", merge_overrides(overrides, [f"hydra.run.dir={out}", f"trainer.default_local_dir={out / 'checkpoints'}"])
        )
        done = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"[{name}] main_ppo failed (exit code {done.returncode}): {log}")
    step_times = {}
    for line in log.read_text().splitlines():
        if "step:" in line and "timing_s/step:" in line:
            step = int(line.split("step:", 1)[1].split(" ", 1)[0])
            step_times[step] = float(line.split("timing_s/step:", 1)[1].split(" ", 1)[0])
    totals = {"dataset": 0.0, "reward": 0.0}
    for path in timings.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            totals[record["kind"]] += record["s"]
    steps = sorted(step_times)
    measured = [step_times[s] for s in steps[1:]]
    return {
        "steps": len(steps), "step_s": sum(measured) / len(measured),
        "dataset_s": totals["dataset"] / len(steps), "reward_s": totals["reward"] / len(steps),
        "all_steps_s": sum(step_times.values()) / len(steps),
    }  # fmt: skip


def main() -> int:
    import argparse
    import subprocess
    import sys
    import tempfile

    from star_verl.smoke import BATCH, merge_overrides, run_overrides
    from star_verl.tiny_model import build_tiny_qwen25vl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="training steps per run (the first is left out of the mean)")
    parser.add_argument("--out", type=Path, help="work folder (default: a new temporary folder)")
    args = parser.parse_args()
    work = (args.out or Path(tempfile.mkdtemp(prefix="bench_step_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = build_tiny_qwen25vl(work / "model")
    tvr = work / "data"
    build = [
        sys.executable,
        "-m",
        "star_verl.cli",
        "build-tvr",
        "--synthetic",
        str(BATCH * args.steps + 3),
        "--seed",
        "0",
        "--out",
        str(tvr),
        "--workers",
        "1",
        "--no-progress",
    ]
    subprocess.run(build, check=True, stdout=subprocess.DEVNULL)

    base = merge_overrides(
        run_overrides("star_r1_tvr", work / "unused", model, args.steps, BATCH),
        ["trainer.val_before_train=False", "trainer.test_freq=-1", "trainer.save_freq=-1", "trainer.rollout_data_dir=null",
         "trainer.validation_data_dir=null", f"data.val_files={tvr / 'val.parquet'}"],
    )  # fmt: skip
    star = merge_overrides(base, [f"data.train_files={tvr / 'train.parquet'}"])
    templated_copy(tvr / "train.parquet", work / "train_templated.parquet", str(model), [o for o in star if not o.startswith("hydra.")])
    builtin = merge_overrides(base, [
        f"data.train_files={work / 'train_templated.parquet'}", "data.custom_cls.path=null", "data.custom_cls.name=null",
        "reward.reward_manager.source=register", "reward.reward_manager.name=naive",
    ])  # fmt: skip

    results = {"star": run("star", work, star), "verl": run("verl", work, builtin)}
    print(f"\n{args.steps} steps of {BATCH} prompts x 2 responses; step time = mean timing_s/step of steps 2..{args.steps}")
    print(f"{'run':<6}{'step s':>9}{'dataset s/step':>16}{'share':>8}{'reward s/step':>15}{'share':>8}")
    for name, r in results.items():
        print(
            f"{name:<6}{r['step_s']:>9.3f}{r['dataset_s']:>16.4f}{r['dataset_s'] / r['all_steps_s']:>8.2%}{r['reward_s']:>15.4f}{r['reward_s'] / r['all_steps_s']:>8.2%}"
        )
    ratio = results["star"]["step_s"] / results["verl"]["step_s"]
    print(f"step-time ratio star-verl / veRL built-ins: {ratio:.3f} (goal: at most 1.05)")
    # the measured difference of the two parts that differ, free of the runs' step-time noise
    extra = sum(results["star"][k] - results["verl"][k] for k in ("dataset_s", "reward_s"))
    print(f"dataset + reward, star-verl minus built-ins: {extra:+.4f} s per step ({extra / results['verl']['step_s']:+.2%} of the built-ins' step)")
    print(f"(dataset and reward: summed call times per step over all steps, shares of the mean step time over all steps; work folder {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
