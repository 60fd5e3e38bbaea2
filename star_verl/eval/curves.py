"""`star-verl curves ROLLOUT_DIR --out DIR`: each reward component per training step.

Why this command (checked in veRL 0.9.1's source): the default v1 trainer (`trainer.use_v1=true`)
logs `reward_extra_info` only at validation (`val-aux/<source>/<key>/...`); during training it logs
the summed reward only, and its rollout dump (`trainer.rollout_data_dir`,
`RayPPOTrainer._log_rollout_data` in `verl/trainer/ppo/v1/trainer_base.py`) writes one
`<step>.jsonl` per step with just `input`, `output`, `gts`, `score` (the summed `rm_scores`),
`step` and `uid`. The legacy v0 trainer (`trainer.use_v1=false`) also writes every
`reward_extra_info` key into those lines. So, without changing veRL:
- lines that carry every component (v0) are read as they are;
- otherwise (v1) each `output` is scored again with `star_verl.rewards.compute_score` against its
  `gts` and the run's reward settings (`--config` the run's `.hydra/config.yaml`, or `--setting
  key=value`). The rescored `score` is checked against the dumped one: a mismatch means other
  settings than the run's, and is reported (`mismatch` column) rather than hidden.

Outputs: `DIR/curves.csv` and `DIR/curves.md` (mean of every component per step, per family
`tvr` / `multiview` when a run mixes them, and `all`), `DIR/curves.png` (one panel per component
that is not zero throughout).

Exit status: 0 when the curves were written and every rescored score matched the dumped one; 2 on bad
input (no rollout folder or dumps, a line that is not a rollout line, an unreadable --config, an unknown
or bad reward setting), with a one-line error naming the file (and line) and nothing written; 3 when
the curves were written but some rescored scores differ from the trainer's (other reward settings than
the run's, or a run whose reward is not star-verl's compute_score).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from star_verl.cli import SUBCOMMANDS, HelpFormatter
from star_verl.eval.tables import table
from star_verl.rewards import REWARD_KEYS, GroundTruthError, compute_score, load_ground_truth, split_reward_kwargs
from star_verl.tasks.registry import ground_truth_family

_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")
MISMATCH_TOL = 1e-4
EXIT_OK, EXIT_BAD_INPUT, EXIT_MISMATCH = 0, 2, 3


class CurvesInputError(ValueError):
    """Input curves cannot read: the message names the file (and line) or option, and the problem."""


def family(gt: dict[str, Any]) -> str:
    """The curve a rollout belongs to: tvr, or multiview for every other family."""
    return "tvr" if ground_truth_family(gt) == "tvr" else "multiview"


def _rollout_files(rollout_dir: Path) -> list[tuple[int, Path]]:
    if not rollout_dir.is_dir():
        raise CurvesInputError(f"{rollout_dir}: not a directory (expected trainer.rollout_data_dir with <step>.jsonl files)")
    files = sorted((int(m.group(1)), p) for p in rollout_dir.iterdir() if (m := _STEP_FILE.match(p.name)))
    if not files:
        raise CurvesInputError(f"{rollout_dir}: no <step>.jsonl rollout dumps (validation dumps live in trainer.validation_data_dir)")
    return files


def iter_components(rollout_dir: Path, settings: dict[str, Any]) -> Iterator[tuple[int, str, dict[str, float], bool]]:
    """(step, family, components, rescored) for every rollout line; mismatch is checked by the caller."""
    for file_step, path in _rollout_files(rollout_dir):
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CurvesInputError(f"{where}: not a JSON line ({exc})") from None
                if not isinstance(row, dict) or "gts" not in row:
                    raise CurvesInputError(
                        f"{where}: a rollout line needs 'gts' (veRL's dump format), got keys {sorted(row) if isinstance(row, dict) else type(row).__name__}"
                    )
                step = int(row.get("step", file_step))
                try:
                    gt = load_ground_truth(row["gts"])
                except GroundTruthError as exc:
                    raise CurvesInputError(f"{where}: {exc.problem}") from None
                fam = family(gt)
                if all(key in row for key in REWARD_KEYS):
                    yield step, fam, {key: float(row[key]) for key in REWARD_KEYS}, False
                    continue
                data_source = "tvr" if fam == "tvr" else "mindcube"  # the multi-view formula reads the ground truth's type only
                try:
                    comp = compute_score(data_source, row.get("output", ""), gt, None, **settings)
                except GroundTruthError as exc:
                    raise CurvesInputError(f"{where}: {exc.problem}") from None
                dumped = row.get("score")
                comp = dict(comp)
                comp["mismatch"] = float(dumped is not None and abs(float(dumped) - comp["score"]) > MISMATCH_TOL)
                yield step, fam, comp, True


def aggregate(records) -> tuple[list[dict[str, Any]], int, int]:
    """Rows (step, family, n, mean of each component) sorted by step; (rescored, mismatched) counts."""
    sums: dict[tuple[int, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    rescored = mismatched = 0
    families = set()
    for step, fam, comp, was_rescored in records:
        families.add(fam)
        rescored += was_rescored
        mismatched += int(comp.get("mismatch", 0.0))
        for group in (fam, "all"):
            acc = sums[(step, group)]
            acc["n"] += 1
            for key, value in comp.items():
                acc[key] += value
    keep = {"all"} | (families if len(families) > 1 else set())
    rows = []
    for (step, group), acc in sorted(sums.items()):
        if group in keep:
            n = acc["n"]
            row = {"step": step, "family": group, "n": int(n)}
            row.update({key: acc[key] / n for key in REWARD_KEYS})
            row["mismatch"] = acc["mismatch"] / n
            rows.append(row)
    return rows, rescored, mismatched


def write_outputs(rows: list[dict[str, Any]], out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    columns = ["step", "family", "n", *REWARD_KEYS, "mismatch"]
    with (out / "curves.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (out / "curves.md").write_text(table(columns, [[row[c] for c in columns] for row in rows], [3] * len(columns), labels=2) + "\n")

    from star_verl.eval.plots import curves_figure  # matplotlib only when writing

    plotted = [key for key in REWARD_KEYS if any(row[key] != 0.0 for row in rows)] or ["score"]
    curves_figure(rows, plotted, out / "curves.png")
    return plotted


def run_settings(config: Path | None, settings: list[str]) -> dict[str, Any]:
    """reward_kwargs of the run (`.hydra/config.yaml`), then `--setting key=value` on top."""
    kwargs: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise CurvesInputError(f"{config}: no such file (--config: the run's .hydra/config.yaml)")
        try:
            cfg = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as exc:
            raise CurvesInputError(f"{config}: not YAML ({' '.join(str(exc).split())})") from None
        fn = ((cfg.get("reward") or {}).get("custom_reward_function") or {}) if isinstance(cfg, dict) else {}
        kwargs.update(fn.get("reward_kwargs") or {})
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CurvesInputError(f"--setting expects key=value, got {item!r}")
        try:
            kwargs[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise CurvesInputError(f"--setting {item!r}: the value is not YAML ({' '.join(str(exc).split())})") from None
    try:
        split_reward_kwargs(kwargs)  # an unknown or bad setting stops here, before any rollout is read
    except (TypeError, ValueError) as exc:
        raise CurvesInputError(f"reward settings ({'--config ' + str(config) if config else '--setting'}): {exc}") from None
    return kwargs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="star-verl curves",
        description=SUBCOMMANDS["curves"][1],
        epilog=f"Exit status: {EXIT_OK} written, {EXIT_BAD_INPUT} bad input (nothing written), {EXIT_MISMATCH} written but rescored scores differ from the run's.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("rollout_dir", type=Path, help="trainer.rollout_data_dir of a run (<step>.jsonl files)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (curves.csv, curves.md, curves.png)")
    parser.add_argument(
        "--config", type=Path, help="the run's .hydra/config.yaml: its reward_kwargs are used to rescore (default: the reward's defaults)"
    )
    parser.add_argument(
        "--setting", action="append", default=[], metavar="KEY=VALUE", help="a reward setting, repeatable, over --config (default: none)"
    )
    args = parser.parse_args(argv)
    try:
        settings = run_settings(args.config, args.setting)
        rows, rescored, mismatched = aggregate(iter_components(args.rollout_dir, settings))
        if not rows:
            raise CurvesInputError(f"{args.rollout_dir}: the <step>.jsonl files hold no rollout line")
    except CurvesInputError as exc:
        print(f"star-verl curves: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    plotted = write_outputs(rows, args.out)
    steps = sorted({row["step"] for row in rows})
    print(f"{len(steps)} steps ({steps[0]}..{steps[-1]}), {sum(r['n'] for r in rows if r['family'] == 'all')} rollouts, "
          f"{rescored} rescored; plotted {', '.join(plotted)} -> {args.out}/curves.png, curves.csv, curves.md")  # fmt: skip
    if mismatched:
        print(f"WARNING: {mismatched} of {rescored} rescored rollouts differ from the trainer's score: "
              f"pass the run's reward settings (--config RUN/.hydra/config.yaml or --setting). Exit status {EXIT_MISMATCH}.")  # fmt: skip
        return EXIT_MISMATCH
    return EXIT_OK
