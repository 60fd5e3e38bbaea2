"""`star-verl doctor`: a preflight check of the environment, a recipe and its data, in seconds.

    star-verl doctor                                   # the environment only
    star-verl doctor +recipe=star_r1_tvr [key=value ...]   # the same overrides as the training command
    star-verl doctor --cpu-ok +recipe=star_r1_mv actor_rollout_ref.model.path=CKPT   # on a machine without GPUs

It finds, before a cluster spends an hour starting up, what would break a run later: a veRL outside
the tested range, torchvision missing (veRL's `hf_processor` then silently returns None and every
image sample is dropped), no rollout engine, too few GPUs, a recipe that does not compose or that
veRL's `validate_config` refuses, a `pkg://` path that does not import, a model whose processor does
not load or whose chat template drops the system prompt, data files that are missing or whose rows
fail the dataset's own validation (placeholders vs images, images that do not decode, ground truth
that does not parse, prompts over `data.max_prompt_length`), `rollout.limit_images` below the
largest image count in the data, keys veRL 0.9.1 composes but silently ignores (the legacy
`reward_model.reward_manager`, top-level `custom_reward_function`), and a train set smaller than one
batch (veRL then trains nothing, without an error).

GPUs. Without `--cpu-ok`, no visible GPU is a failure: doctor is meant to run on a node of the
cluster the recipe trains on. With `--cpu-ok` (a laptop, CI, a login node) the GPU count and the
GPU-only packages (rollout engine, flash-attn) report SKIP ("skipped: no GPU") when no GPU is
visible; everything else is checked as usual. A node with GPUs, but fewer than the recipe's
`trainer.n_gpus_per_node`, always fails. On a multi-node recipe each node must hold
`n_gpus_per_node` GPUs: doctor checks this node's share (run it on every node).

Data rows are sampled (the first `--rows` of each file, so row numbers in messages are the file's;
a PASS on a sample says so, "the first n of N rows"); `--rows all` validates every row. Only the
text column is scanned over the whole file, for the image counts.

Output: a table of checks (check, status PASS/FAIL/SKIP, detail) with each failure's fix on the line
below it (`--json`: the same four fields per check); exit status 1 when any check fails, 0 otherwise.

Layout: each check is a function of an explicit `Context` (`context.py`) that stages build in the
order of `CHECKS` (the recipe, the GPU count, the data settings, the model, the data sample); the
checks live by subject in `environment.py`, `recipe.py` and `data.py` (the one module that uses
`star_verl.data` and the prompt assembly), the output in `table.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from star_verl.cli import HelpFormatter
from star_verl.doctor import data, environment, recipe
from star_verl.doctor.context import DEFAULT_ROWS, FAIL, Check, Context, Options, short
from star_verl.doctor.table import format_json, format_table


@dataclass(frozen=True)
class Step:
    """One entry of CHECKS. `run(ctx)` returns its check(s) or, for a stage (`provides` names a
    Context field), (that field's value, its check(s)). An unexpected exception is the step's own
    failure under `name` with `fix`, never doctor's crash; a stage that raised leaves its field unset."""

    name: str
    run: Callable[[Context], Any]
    fix: str
    provides: str | None = None
    needs_recipe: bool = False  # skipped (no row) without a composed recipe


CHECKS: tuple[Step, ...] = (
    Step("verl", environment.check_verl, environment.VERL_INSTALL),
    Step("torch", environment.check_torch, "reinstall torch"),
    Step("torchvision", environment.check_torchvision, "pip install torchvision"),
    Step("transformers", environment.check_transformers, "reinstall transformers"),
    Step("recipe", recipe.compose, "see the message", provides="recipe"),
    Step("GPUs", environment.count_gpus, "check the CUDA driver", provides="gpus"),
    Step("rollout engine", environment.check_rollout_engine, "install the rollout engine"),
    Step("flash-attn", environment.check_flash_attn, "install flash-attn"),
    Step("ignored legacy keys", recipe.check_legacy_keys, "use the reward.* keys", needs_recipe=True),
    Step("pkg:// imports", recipe.check_pkg_paths, "install star-verl", needs_recipe=True),
    Step("reward settings", recipe.check_reward_settings, "fix reward_kwargs", needs_recipe=True),
    Step("data settings", data.check_data_settings, "fix data.star", provides="data_settings", needs_recipe=True),
    Step("model processor", data.load_model, "fix the model path", provides="model", needs_recipe=True),
    Step("data files", data.read_data, "fix the data files", provides="data", needs_recipe=True),
    Step("training steps", data.check_training_steps, "fix the data files", needs_recipe=True),
    Step("chat template", data.check_chat_template, "fix the chat template", needs_recipe=True),
    Step("rollout.limit_images", data.check_limit_images, "set actor_rollout_ref.rollout.limit_images", needs_recipe=True),
)


def _as_list(result: Check | list[Check]) -> list[Check]:
    return [result] if isinstance(result, Check) else list(result)


def run_checks(options: Options) -> list[Check]:
    """Every step of CHECKS in order, each on the context the stages before it built."""
    ctx = Context(options)
    checks: list[Check] = []
    for step in CHECKS:
        if step.needs_recipe and ctx.recipe is None:
            continue
        try:
            result = step.run(ctx)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            checks.append(Check(step.name, FAIL, short(exc), step.fix))
            continue
        if step.provides is not None:
            value, result = result
            ctx = dataclasses.replace(ctx, **{step.provides: value})
        checks.extend(_as_list(result))
    return checks


def row_count(value: str) -> int | None:
    """--rows: a positive count, or `all` (None: every row)."""
    if value == "all":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected a positive number of rows or all, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="star-verl doctor",
        description="Preflight check of the environment, a recipe (+recipe=NAME and key=value overrides, as on the training command line) and its data.",
        epilog="Exit status: 0 when nothing failed, 1 when a check failed, 2 on a usage error.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--cpu-ok", action="store_true", help="on a machine without GPUs, report the GPU checks as SKIP instead of FAIL")
    p.add_argument("--rows", type=row_count, default=DEFAULT_ROWS, help="rows of each data file to validate, or all (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")
    p.add_argument("overrides", nargs="*", help="+recipe=NAME and key=value overrides")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    recipe_name, overrides = None, []
    for item in args.overrides:
        if item.startswith("+recipe="):
            if recipe_name is not None:
                print("star-verl doctor: give +recipe= once", file=sys.stderr)
                return 2
            recipe_name = item.split("=", 1)[1]
        elif item.startswith("recipe=") or item.startswith("++recipe="):
            print(f"star-verl doctor: write +recipe=NAME (veRL's Hydra needs the +), got {item!r}", file=sys.stderr)
            return 2
        else:
            overrides.append(item)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    checks = run_checks(Options(recipe_name, tuple(overrides), cpu_ok=args.cpu_ok, rows=args.rows))
    print(format_json(checks) if args.json else format_table(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
