"""`star-verl smoke +recipe=NAME [key=value ...] [--out DIR] [--model DIR] [--steps N]`: a recipe's real
trainer for a few steps on CPU.

It runs the recipe's own entry point, spawned with this Python (`python -m verl.trainer.main_ppo` for
the RL recipes, `python -m torch.distributed.run -m verl.trainer.sft_trainer` for star_r1_sft) with
star-verl's CPU support (`star_verl.cpu`) and small sizes: 2 steps (`--steps`), batches of 2 prompts
x 2 responses of at most 64 tokens, the first training rows of the recipe's data files in file order,
3 validation rows (RL: the stratified subset of `data.star.val_subset`; SFT: the first rows), and the
built-in tiny Qwen2.5-VL (`--model` for another small local model, e.g. an SFT checkpoint).
`key=value` overrides beat everything, as in veRL. RL recipes validate before and after training,
save one checkpoint and dump rollouts and validation generations; then `star-verl curves` plots the
rollouts (and checks the dumped scores against `compute_score`) and `star-verl eval score` scores the
last validation dump. star_r1_sft trains and saves its Hugging Face checkpoint.

Where the recipe's data files do not exist (and none were given on the command line), a TVR recipe
gets the built-in synthetic TVR set, built into DIR/data/tvr, and the multi-view recipes (star_r1_sft,
star_r1_mv) the built-in synthetic multi-view set with its oracle chains (`star-verl build-multiview
--synthetic 24 --with-chains`), built into DIR/data/multiview and DIR/data/sft. The data is
loaded in this process with the recipe's dataset class (as veRL's trainer does) before anything
starts, so bad data fails with the dataset's own message (file, row, problem) rather than inside Ray.

Outputs in DIR (default ./star_verl_smoke/<recipe>): train.log (the trainer's whole output; its step
lines are echoed here), rollouts/, validation/, checkpoints/, curves/, eval/. Running again into the
same DIR replaces them (DIR/data and DIR/model are kept). Exit code 0 only if everything succeeded.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from star_verl.cli import SUBCOMMANDS, HelpFormatter
from star_verl.data.files import file_list
from star_verl.data.validation import validation_files_left_out
from star_verl.eval.curves import EXIT_MISMATCH
from star_verl.recipes import SFT_CONFIG, compose_recipe, recipe_config_name, recipe_files

DEFAULT_STEPS = 2
BATCH = 2  # prompts per step
GROUP = 2  # responses per prompt (GRPO group)
RESPONSE_TOKENS = 64
VAL_ROWS = 3  # a TVR sample in its three final views (RL: data.star.val_subset's stratified subset; SFT: data.val_max_samples)
SYNTHETIC_TVR_SAMPLES = 24  # 21 train rows, 1 val sample x 3 views, 2 test samples (build-tvr's split)
SYNTHETIC_MV_QUESTIONS = 24  # 12 RL rows, 4 validation rows, 8 SFT-pool questions -> 6 + 2 oracle-chain SFT rows
STAR_REWARD = ("pkg://star_verl.rewards", "compute_score")
OUTPUTS = (
    "train.log",
    "rollouts",
    "validation",
    "checkpoints",
    "curves",
    "eval",
    ".hydra",
    "main_ppo.log",
    "sft_trainer.log",
)  # Hydra: .hydra, <job>.log
RL_SIZES = (
    f"actor_rollout_ref.rollout.n={GROUP}",
    f"data.max_response_length={RESPONSE_TOKENS}",
    f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
)
SFT_SIZES = ("data.micro_batch_size_per_gpu=1",)

EXIT_OK, EXIT_FAILED, EXIT_SETUP = 0, 1, 2
VALUED_OPTIONS = ("--out", "--model", "--steps")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_PREFIX = re.compile(r"^\(\w+ pid=\d+\)\s*")
_STEP = re.compile(r"^step:(\d+) - (.*)$")
_SAVING = re.compile(r"Saving checkpoint to:? (\S+)")
_SHOWN = (  # (metric, label) of a step line shown on the console
    ("critic/score/mean", "score"), ("actor/grad_norm", "grad_norm"), ("actor/kl_loss", "kl_loss"),
    ("training/rollout_probs_diff_max", "rollout_probs_diff_max"), ("train/loss", "loss"), ("train/grad_norm", "grad_norm"),
    ("val/loss", "val_loss"), ("timing_s/step", "seconds"),
)  # fmt: skip
_METRIC = re.compile(r"([\w/@.\-]+):(?:np\.float\d+\()?([-+\w.]+)\)?$")


class SmokeError(Exception):
    """A problem smoke reports in one message (and an exit code) instead of a traceback."""

    def __init__(self, message: str, code: int = EXIT_SETUP):
        super().__init__(message)
        self.code = code


def say(message: str = "") -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------
# overrides


def override_key(override: str) -> str:
    """`+a.b=1` / `++a.b=1` / `~a.b` / `a.b=1` -> `a.b`."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(base: list[str], user: list[str]) -> list[str]:
    """`base` without the keys `user` sets, then `user`: the user's value wins. Where a dropped base
    entry added the key (`+key=`), a plain user `key=` becomes `++key=` (add or override)."""
    user_keys = {override_key(o) for o in user}
    added = {override_key(o) for o in base if o.startswith("+") and not o.startswith("++")}
    kept = [o for o in base if override_key(o) not in user_keys]
    merged_user = [f"++{o}" if override_key(o) in added and not o.startswith(("+", "~")) else o for o in user]
    return kept + merged_user


# --------------------------------------------------------------------------------------------
# what the run needs before it starts


def check_rollout_engine() -> None:
    from star_verl.cpu import rollout_engine_problem

    problem = rollout_engine_problem()
    if problem:
        raise SmokeError(problem)


def build_tiny_model(model: Path) -> None:
    from star_verl.tiny_model import build_tiny_qwen25vl

    if not (model / "config.json").is_file():
        say(f"building the tiny Qwen2.5-VL in {model}")
        build_tiny_qwen25vl(model)


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    """A star-verl subcommand in a subprocess of this Python (its public command line), its output indented."""
    done = subprocess.run([sys.executable, "-m", "star_verl.cli", *args], capture_output=True, text=True)
    for line in (done.stdout + done.stderr).strip().splitlines():
        say(f"  {line}")
    return done


def build_synthetic_tvr(out: Path) -> tuple[Path, Path]:
    tvr = out / "data" / "tvr"
    train, val = tvr / "train.parquet", tvr / "val.parquet"
    if train.is_file() and val.is_file():
        say(f"using the built-in synthetic TVR set built earlier in {tvr}")
        return train, val
    say(f"building the built-in synthetic TVR set ({SYNTHETIC_TVR_SAMPLES} samples) in {tvr}")
    done = run_cli(
        ["build-tvr", "--synthetic", str(SYNTHETIC_TVR_SAMPLES), "--seed", "0", "--out", str(tvr), "--workers", "1", "--no-progress", "--overwrite"]
    )
    if done.returncode != 0:
        raise SmokeError(f"star-verl build-tvr failed (exit code {done.returncode})", EXIT_FAILED)
    return train, val


def build_synthetic_multiview(out: Path) -> Path:
    """The built-in synthetic multi-view set in DIR/data/multiview and its oracle chains in DIR/data/sft; returns DIR/data."""
    data = out / "data"
    built = [
        data / "multiview" / "rl_train.parquet",
        data / "multiview" / "bench" / "synthetic_mv.parquet",
        data / "sft" / "train.parquet",
        data / "sft" / "val.parquet",
    ]
    if all(p.is_file() for p in built):
        say(f"using the built-in synthetic multi-view set built earlier in {data}")
        return data
    say(f"building the built-in synthetic multi-view set ({SYNTHETIC_MV_QUESTIONS} questions, with oracle chains) in {data}")
    done = run_cli(["build-multiview", "--synthetic", str(SYNTHETIC_MV_QUESTIONS), "--seed", "0", "--with-chains", "--out", str(data / "multiview"),
                    "--no-progress", "--overwrite"])  # fmt: skip
    if done.returncode != 0:
        raise SmokeError(f"star-verl build-multiview failed (exit code {done.returncode})", EXIT_FAILED)
    return data


def data_files(recipe: str, cfg, user_keys: set[str], out: Path) -> list[str]:
    """Overrides pointing the run at existing data: the recipe's files if they exist; for a TVR or a
    multi-view recipe the built-in synthetic set where they do not; else a SmokeError naming what is missing."""
    files = {key: file_list(cfg.data[key.split(".")[1]]) for key in ("data.train_files", "data.val_files")}
    missing = [f for paths in files.values() for f in paths if not Path(f).is_file()]
    if cfg.data.get("star", {}).get("skip_missing_val_files"):
        # the dataset leaves out the validation files not built (one line each): only the rest must exist
        left_out = validation_files_left_out(files["data.val_files"])
        missing = [f for f in missing if f not in left_out]
    if not missing:
        return []
    listed = "\n".join(f"  {f}" for f in missing)
    set_by_user = sorted(user_keys & set(files))
    if set_by_user:
        raise SmokeError(f"data files given on the command line ({', '.join(set_by_user)}) do not exist:\n{listed}")
    template = cfg.data.get("star", {}).get("template")
    if template in ("tvr", "three_step"):
        say(f"the recipe's data files do not exist:\n{listed}")
    if template == "tvr":
        train, val = build_synthetic_tvr(out)
        return [f"data.train_files={train}", f"data.val_files={val}"]
    if template == "three_step":
        data = build_synthetic_multiview(out)
        if recipe_config_name(recipe) == SFT_CONFIG:
            return [f"data.train_files={data / 'sft' / 'train.parquet'}", f"data.val_files={data / 'sft' / 'val.parquet'}"]
        return [
            f"data.train_files={data / 'multiview' / 'rl_train.parquet'}",
            f"data.val_files={data / 'multiview' / 'bench' / 'synthetic_mv.parquet'}",
        ]
    raise SmokeError(
        f"{recipe}'s data files do not exist:\n{listed}\n"
        f"smoke has no built-in synthetic set for the template {template!r}: point the run at existing files with data.train_files=... data.val_files=..."
    )


def check_data(cfg, is_sft: bool) -> None:
    """Build the run's train and validation datasets with the recipe's dataset class, exactly as
    veRL's trainer does, and read every row the run uses: bad data fails here, with the dataset's
    message, not inside a Ray worker."""
    import datasets
    from verl.utils import hf_processor, hf_tokenizer

    datasets.disable_progress_bars()
    model = cfg.model.path if is_sft else cfg.actor_rollout_ref.model.path
    tokenizer, processor = hf_tokenizer(model), hf_processor(model)
    for split in ("train", "val"):
        paths, max_samples = file_list(cfg.data[f"{split}_files"]), int(cfg.data.get(f"{split}_max_samples", -1))
        try:
            if is_sft:
                from verl.trainer.sft_trainer import create_sft_dataset

                dataset = create_sft_dataset(paths, cfg.data, tokenizer, processor, max_samples=max_samples)
            else:
                from verl.trainer.ppo.utils import create_rl_dataset

                dataset = create_rl_dataset(paths, cfg.data, tokenizer, processor, is_train=split == "train", max_samples=max_samples)
            for i in range(len(dataset)):
                dataset[i]
        except Exception as exc:  # the dataset's own message is the report
            raise SmokeError(f"the {split} data does not load, nothing was started:\n  {type(exc).__name__}: {exc}", EXIT_FAILED) from None
        say(f"{split} data: {len(dataset)} rows of {', '.join(paths)} load with {type(dataset).__name__}")


def prepare_out(out: Path, user_keys: set[str]) -> None:
    """DIR holds smoke's outputs: an earlier smoke run's are replaced (unless the run resumes), any
    other non-empty folder is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / "train.log").exists() and not all(p.name in ("data", "model") for p in out.iterdir()):
            raise SmokeError(f"{out} is not empty and holds no earlier smoke run: give another --out")
        if "trainer.resume_mode" not in user_keys and (out / "train.log").exists():
            say(f"replacing the earlier smoke run in {out}")
            for name in OUTPUTS:
                path = out / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
    out.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------------------------
# the trainer


def run_overrides(recipe: str, out: Path, model: Path, steps: int, batch: int) -> list[str]:
    """smoke's own settings (CPU support, sizes, outputs), before the user's overrides; the run
    reads the first `batch * steps` training rows."""
    from star_verl.cpu import RL_OVERRIDES, SFT_OVERRIDES

    common = [
        f"data.train_batch_size={BATCH}", f"data.train_max_samples={batch * steps}",
        f"trainer.total_training_steps={steps}", f"trainer.default_local_dir={out / 'checkpoints'}",
        "trainer.resume_mode=disable", f"hydra.run.dir={out}",
    ]  # fmt: skip
    if recipe_config_name(recipe) == SFT_CONFIG:
        return [*SFT_OVERRIDES, *SFT_SIZES, *common, f"data.val_max_samples={VAL_ROWS}", f"model.path={model}"]
    # the GRPO recipes bound validation with data.star.val_subset (StarRLDataset refuses data.val_max_samples beside it)
    return [
        *RL_OVERRIDES, *RL_SIZES, *common, f"data.star.val_subset={VAL_ROWS}", f"actor_rollout_ref.model.path={model}", "data.shuffle=False",
        f"trainer.save_freq={steps}", f"trainer.test_freq={steps}", "trainer.val_before_train=True",
        f"trainer.rollout_data_dir={out / 'rollouts'}", f"trainer.validation_data_dir={out / 'validation'}",
    ]  # fmt: skip


def compose(recipe: str, overrides: list[str]):
    """The config the trainer will run with (Hydra's own settings aside)."""
    from hydra.errors import HydraException

    try:
        return compose_recipe(recipe, [o for o in overrides if not o.startswith("hydra.")])
    except HydraException as exc:
        raise SmokeError(f"the recipe does not compose with these overrides: {exc}") from None


def trainer_command(recipe: str, overrides: list[str]) -> list[str]:
    if recipe_config_name(recipe) == SFT_CONFIG:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            "--nproc-per-node=1",
            "-m",
            "verl.trainer.sft_trainer",
        ]
    else:
        launcher = [sys.executable, "-m", "verl.trainer.main_ppo"]
    return [*launcher, f"+recipe={recipe}", *overrides]


def metrics_of(step_line: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for part in step_line.split(" - ") if (m := _METRIC.fullmatch(part.strip()))}


def step_summary(step: int, steps: int, metrics: dict[str, str]) -> list[str]:
    """Console lines for one trainer step line: its training metrics, and its validation's if any."""
    lines = []
    shown = [f"{label} {float(metrics[key]):.4g}" for key, label in _SHOWN if key in metrics]
    if shown:
        lines.append(f"step {step}/{steps}: " + ", ".join(shown))
    shown = [f"{key.split('/', 1)[1].replace('/mean@1', '')} {float(value):.3f}" for key, value in metrics.items()
             if key.startswith("val-core/") or (key.startswith("val-aux/") and "/score/" in key)]  # fmt: skip
    if shown:
        lines.append(f"validation at step {step}: " + ", ".join(shown))
    return lines


def run_trainer(command: list[str], log_path: Path, steps: int) -> tuple[int, list[str], list[float]]:
    """Run the trainer with the CPU environment; its whole output goes to log_path, its step lines
    (and checkpoint saves) to the console as they come. Returns (exit code, error lines seen, the
    steps' gradient norms)."""
    from star_verl.cpu import cpu_env

    errors: list[str] = []
    grad_norms: list[float] = []
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=cpu_env())
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                log.write(raw)
                line = _RAY_PREFIX.sub("", _ANSI.sub("", raw.rstrip("\n")))
                if m := _STEP.match(line):
                    metrics = metrics_of(m.group(2))
                    grad_norms += [float(metrics[k]) for k in ("actor/grad_norm", "train/grad_norm") if k in metrics]
                    for summary in step_summary(int(m.group(1)), steps, metrics):
                        say(f"  {summary}")
                elif m := _SAVING.search(line):
                    say(f"  saving a checkpoint to {m.group(1)}")
                elif re.search(r"\b\w*(Error|Exception)\b: ", line) and "Warning" not in line:
                    errors.append(line)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        return proc.wait(), errors, grad_norms


def last_step_file(folder: Path) -> Path | None:
    files = sorted((int(p.stem), p) for p in folder.glob("*.jsonl") if p.stem.isdigit())
    return files[-1][1] if files else None


def after_rl(cfg, out: Path) -> list[str]:
    """curves on the rollouts, eval score on the last validation dump; the failures."""
    failures = []
    fn = cfg.reward.get("custom_reward_function") or {}
    own_reward = (fn.get("path"), fn.get("name")) == STAR_REWARD
    say("star-verl curves (reward components per step, rescored with compute_score):")
    done = run_cli(["curves", str(out / "rollouts"), "--out", str(out / "curves"), "--config", str(out / ".hydra" / "config.yaml")])
    if done.returncode == EXIT_MISMATCH and not own_reward:
        say(
            f"  (the run's reward is {fn.get('path')}:{fn.get('name')}, not star-verl's compute_score: its scores differ from the rescored ones by design)"
        )
    elif done.returncode != 0:
        failures.append(f"star-verl curves (exit code {done.returncode})")
    validation = last_step_file(out / "validation")
    if validation is None:
        failures.append(f"no validation dump in {out / 'validation'}")
    else:
        say(f"star-verl eval score {validation}:")
        done = run_cli(["eval", "score", str(validation), "--out", str(out / "eval")])
        if done.returncode != 0:
            failures.append(f"star-verl eval score (exit code {done.returncode})")
    return failures


def describe_outputs(out: Path, is_sft: bool) -> list[str]:
    def listing(folder: Path) -> str:
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return ", ".join(names) if names else "(missing)"

    lines = [f"  log          {out / 'train.log'}"]
    if not is_sft:
        lines += [
            f"  rollouts     {out / 'rollouts'}: {listing(out / 'rollouts')}",
            f"  validation   {out / 'validation'}: {listing(out / 'validation')}",
        ]
    lines.append(f"  checkpoints  {out / 'checkpoints'}: {listing(out / 'checkpoints')}")
    if is_sft:
        hf = sorted((out / "checkpoints").glob("global_step_*/huggingface"))
        if hf:
            lines.append(f"  HF model     {hf[-1]}  (stage 2: star-verl smoke +recipe=star_r1_mv --model {hf[-1]})")
    else:
        lines += [f"  curves       {out / 'curves'}: {listing(out / 'curves')}", f"  eval         {out / 'eval'}: {listing(out / 'eval')}"]
    return lines


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="star-verl smoke", description=SUBCOMMANDS["smoke"][1], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=HelpFormatter)  # fmt: skip
    parser.add_argument(
        "overrides", nargs="*", metavar="+recipe=NAME [key=value ...]", help="the recipe and veRL overrides (they beat smoke's settings)"
    )
    parser.add_argument(VALUED_OPTIONS[0], type=Path, help="output folder (default: ./star_verl_smoke/<recipe>)")
    parser.add_argument(VALUED_OPTIONS[1], type=Path, help="a small local model folder (default: the built-in tiny Qwen2.5-VL, built into DIR/model)")
    parser.add_argument(VALUED_OPTIONS[2], type=int, default=DEFAULT_STEPS, help="training steps (default: %(default)s)")
    return parser


def smoke(args: argparse.Namespace) -> int:
    recipes = [o.split("=", 1)[1] for o in args.overrides if o.startswith("+recipe=")]
    if len(recipes) != 1:
        raise SmokeError(f"give the recipe once as +recipe=NAME (one of {', '.join(recipe_files())})")
    recipe = recipes[0]
    if recipe not in recipe_files():
        raise SmokeError(f"unknown recipe {recipe!r}; available: {', '.join(recipe_files())}")
    if args.steps < 1:
        raise SmokeError(f"--steps must be at least 1, got {args.steps}")
    user = [o for o in args.overrides if not o.startswith("+recipe=")]
    bad = [o for o in user if "=" not in o and not o.startswith("~")]
    if bad:
        raise SmokeError(f"overrides are key=value: {bad}")
    user_keys = {override_key(o) for o in user}
    is_sft = recipe_config_name(recipe) == SFT_CONFIG
    if not is_sft:
        check_rollout_engine()
    out = (args.out or Path("star_verl_smoke") / recipe).resolve()
    model = args.model.resolve() if args.model else out / "model"
    if args.model and not (model / "config.json").is_file():
        raise SmokeError(f"--model {model}: no config.json there (a Hugging Face model folder is expected)")
    prepare_out(out, user_keys)

    started = time.monotonic()
    batch = [int(o.split("=", 1)[1]) for o in user if override_key(o) == "data.train_batch_size"]
    overrides = merge_overrides(run_overrides(recipe, out, model, args.steps, batch[-1] if batch else BATCH), user)
    cfg = compose(recipe, overrides)
    data = data_files(recipe, cfg, user_keys, out)
    if data:
        overrides = merge_overrides(overrides, data)
        cfg = compose(recipe, overrides)
    if not args.model:
        build_tiny_model(model)
    check_data(cfg, is_sft)

    entry = "torch.distributed.run -m verl.trainer.sft_trainer" if is_sft else "verl.trainer.main_ppo"
    say(f"running {entry} +recipe={recipe} on CPU for {args.steps} steps (the start takes a minute or two); full log: {out / 'train.log'}")
    rc, errors, grad_norms = run_trainer(trainer_command(recipe, overrides), out / "train.log", args.steps)
    failures = []
    if rc != 0:
        failures.append(f"the trainer (exit code {rc})")
        for line in dict.fromkeys(errors[-8:]):
            say(f"  {line}")
        say(f"  (the trainer's whole output: {out / 'train.log'})")
    else:
        if grad_norms and not any(grad_norms):
            say("  note: every step's gradient is 0: each prompt's responses all earned the same reward (a random tiny model never "
                "writes the format), so GRPO's advantages are 0; every component ran, nothing learnt")  # fmt: skip
        if not is_sft:
            failures += after_rl(cfg, out)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    say(f"\nsmoke {recipe}: {'FAILED: ' + '; '.join(failures) if failures else 'OK'} in {minutes}:{seconds:02d}")
    for line in describe_outputs(out, is_sft):
        say(line)
    return EXIT_FAILED if failures else EXIT_OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options and overrides in any order: argparse reads positionals as one block, so the options
    (with their values) are moved after them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options, overrides = [], []
    tokens = iter(argv)
    for token in tokens:
        if token in VALUED_OPTIONS:
            value = next(tokens, None)
            options += [token] if value is None else [token, value]
        elif token.startswith("-"):
            options.append(token)
        else:
            overrides.append(token)
    return build_parser().parse_args(overrides + options)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return smoke(args)
    except SmokeError as exc:
        print(f"star-verl smoke: {exc}", file=sys.stderr, flush=True)
        return exc.code
