"""`star-verl eval score`: read generations, score each one under a protocol, aggregate per benchmark.

Input lines (one JSON object per line), either
- star-verl's own: `{"id", "data_source", "response", "ground_truth" (object or JSON string),
  "extra_info" (optional object; `origin` picks the benchmark)}`, as `eval generate` writes them
  (plus a `generation` object with the decoding settings); or
- veRL's validation dumps (`trainer.validation_data_dir/<step>.jsonl`, written by
  `_write_generations` in `verl/trainer/ppo/ray_trainer.py` and the v1 trainer): `{"input",
  "output", "gts", "score", "step", <reward_extra_info keys>...}`. They carry no data source and no
  extra_info: the family is read from the ground truth (TVR's `transformations`, else its `task`),
  and `--origin` names the benchmark.
The ground truth's category (`task`; TVR's `view`) is read from `extra_info` where the ground truth
lacks it (`star_verl.tasks.ground_truth`): only a SPAR numeric line with no task anywhere fails,
naming the line and the field to add. A MindCube line without a task gets its setting from its
question id, as MindCube's evaluator does (`get_setting_from_id`).

A benchmark's block in metrics.json records its `origin`: None when a line has no
`extra_info.origin` and no `--origin` was passed (veRL dumps), so `eval report` never places the
paper's numbers beside data of unknown origin; `warnings` says how to pass `--origin`.

Protocols:
- `official`: each benchmark's own scorer (`star_verl.tasks.official`), quirks included; the same
  code gives the `official` reward key that veRL's validation logs during training.
- `strict`: the reward's parsers (`star_verl.rewards.compute_score`: `acc` is correctness, `r_ans`
  with `mv_answer_weight=1, mv_graded_share=1` is the sample's score, e.g. the MRA).
TVR has one protocol: TVR's official evaluator IS the metrics of `star_verl.tasks.tvr` (the
reward's answer parser, state-based distance), so both protocols give the same TVR numbers.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from star_verl.rewards import GroundTruthError, compute_score, load_ground_truth, parse_ground_truth
from star_verl.tasks import official, registry
from star_verl.tasks.registry import DATA_SOURCES, ORIGINS, ground_truth_family, mmsi_category
from star_verl.tasks.tags import as_text, parse_tags

PROTOCOLS = ("official", "strict")


class InputError(ValueError):
    """A generations line that cannot be scored: the file, the line number and the problem."""


@dataclass
class Sample:
    line_no: int
    id: str
    family: str  # scoring family = data_source: tvr, mindcube, spar, mmsi
    benchmark: str
    response: str
    gt: dict[str, Any]
    extra_info: dict[str, Any]
    generation: dict[str, Any] | None = None
    origin: str | None = None  # extra_info.origin or --origin; None: unknown (a dump scored without --origin)


@dataclass
class Scored:
    sample: Sample
    category: str  # TVR view; MindCube setting; SPAR task; MMSI category
    correct: bool
    score: float  # in [0, 1]: 1/0 for choices, MRA for numbers, TVR strict accuracy
    diff: int | None = None  # TVR attribute distance
    well_formed: bool = False
    tvr: dict[str, float] | None = None  # TVR per-sample metrics
    kind: str = ""  # SPAR: mca / na / vci


@dataclass
class ReadResult:
    samples: list[Sample] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    n_lines: int = 0
    formats: set[str] = field(default_factory=set)


def _problem(path: Path, line_no: int, message: str) -> str:
    return f"{path}:{line_no}: {message}"


def _parse_line(path: Path, line_no: int, text: str, origin: str | None, data_source: str | None) -> tuple[Sample, str]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(_problem(path, line_no, f"not JSON ({exc.msg} at column {exc.colno})")) from None
    if not isinstance(row, dict):
        raise InputError(_problem(path, line_no, f"a line must be a JSON object, got {type(row).__name__}"))
    if "gts" in row and "output" in row and "response" not in row:
        fmt = "verl_dump"
        gt_raw, response = row["gts"], row["output"]
        extra_info: dict[str, Any] = {}
        sample_id = str(row.get("uid") or f"step{row.get('step', '?')}/line{line_no}")
        source = data_source
    else:
        fmt = "star_verl"
        missing = [k for k in ("id", "data_source", "response", "ground_truth") if k not in row]
        if missing:
            raise InputError(
                _problem(
                    path,
                    line_no,
                    f"missing field(s) {missing} (a star-verl line has id, data_source, response, ground_truth, extra_info; a veRL dump line has input, output, gts, score, step)",
                )
            )
        gt_raw, response, sample_id, source = row["ground_truth"], row["response"], str(row["id"]), row["data_source"]
        extra_info = row.get("extra_info") or {}
        if not isinstance(extra_info, dict):
            raise InputError(_problem(path, line_no, f"extra_info must be an object, got {type(extra_info).__name__}"))
    try:
        gt = load_ground_truth(gt_raw)
        if source is None:  # a dump without --data-source: read the family off the ground truth
            source = ground_truth_family(gt)
            if source is None:
                raise InputError(_problem(path, line_no, f"cannot tell the data source of ground truth task {gt.get('task')!r}; pass --data-source"))
        parse_ground_truth(source, gt, extra_info)  # the one check, the category read from extra_info where the ground truth lacks it
    except GroundTruthError as exc:
        raise InputError(_problem(path, line_no, exc.problem)) from None
    sample_origin = extra_info.get("origin") or origin
    if sample_origin:
        if sample_origin not in ORIGINS:
            raise InputError(_problem(path, line_no, f"unknown extra_info.origin {sample_origin!r}; expected one of {sorted(ORIGINS)}"))
        family = ORIGINS[sample_origin].data_source
        if family != source:
            raise InputError(_problem(path, line_no, f"origin {sample_origin!r} belongs to data_source {family!r}, not {source!r}"))
        benchmark = ORIGINS[sample_origin].scored_as
    else:
        benchmark = source
    generation = row.get("generation") if isinstance(row.get("generation"), dict) else None
    sample = Sample(line_no, sample_id, source, benchmark, as_text(response), gt, dict(extra_info), generation, sample_origin or None)
    return sample, fmt


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                yield line_no, line


def read_generations(path: str | Path, *, skip_bad: bool = False, origin: str | None = None, data_source: str | None = None) -> ReadResult:
    """Every scorable line of a generations file. A bad line raises InputError (file:line: problem)
    unless `skip_bad`, where it is listed in `ReadResult.bad` instead (never dropped silently)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{path}: is a directory, not a generations file (give the .jsonl file itself, e.g. trainer.validation_data_dir/<step>.jsonl)"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".parquet":
        raise InputError(f"{path}: a parquet data file, not a generations file (JSON lines): star-verl eval generate writes one from it")
    if origin is not None and origin not in ORIGINS:
        raise InputError(f"--origin {origin!r} is not one of {sorted(ORIGINS)}")
    if data_source is not None and data_source not in DATA_SOURCES:
        raise InputError(f"--data-source {data_source!r} is not one of {DATA_SOURCES}")
    result = ReadResult()
    for line_no, text in iter_lines(path):
        result.n_lines += 1
        try:
            sample, fmt = _parse_line(path, line_no, text, origin, data_source)
        except InputError as exc:
            if not skip_bad:
                raise
            result.bad.append(str(exc))
            continue
        result.samples.append(sample)
        result.formats.add(fmt)
    return result


# ---------------------------------------------------------------------------------------- scoring


def _category(sample: Sample, gt) -> str:
    """TVR's view, MindCube's setting, SPAR's task, MMSI's category (in the release's spelling)."""
    if sample.family == "tvr":
        return gt.view
    if sample.family == "mmsi":
        return mmsi_category(gt.task)
    if sample.family == "mindcube" and not gt.task:  # MindCube's evaluator: the setting named by the id
        return official.mindcube_setting(str(sample.extra_info.get("question_id") or sample.id))
    return gt.task


def score_sample(sample: Sample, protocol: str) -> Scored:
    """One sample under a protocol. Never raises on the model's output (any text, however odd)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    response = sample.response
    gt = parse_ground_truth(sample.family, sample.gt, sample.extra_info)
    category = _category(sample, gt)
    well_formed = parse_tags(response).well_formed
    if sample.family == "tvr":
        from star_verl.tasks.tvr import tvr_sample_metrics

        metrics = tvr_sample_metrics(response, gt)
        return Scored(sample, category, metrics["strict"] == 1.0, metrics["strict"], int(metrics["diff"]), well_formed, metrics)
    if protocol == "strict":
        reward = compute_score(
            sample.family, response, gt, sample.extra_info, mv_answer_weight=1.0, mv_graded_share=1.0, mv_format_weight=0.0, ref_weight=0.0
        )
        kind = official.spar_task_kind(gt.task, gt.type) if sample.family == "spar" else "mca"
        return Scored(sample, category, reward["acc"] == 1.0, reward["r_ans"], None, well_formed, kind=kind)
    result = official.official_score(sample.family, response, gt)
    return Scored(sample, category, result.correct, result.value, None, well_formed, kind=result.kind)


# ------------------------------------------------------------------------------------- aggregation


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _format_stats(rows: list[Scored]) -> dict[str, float]:
    return {"n": len(rows), "well_formed": _pct(sum(r.well_formed for r in rows) / len(rows))}


def aggregate_tvr(rows: list[Scored]) -> dict[str, Any]:
    from star_verl.tasks.tvr import VIEWS, aggregate_tvr_metrics

    agg = aggregate_tvr_metrics((r.category, r.tvr) for r in rows)

    def block(prefix: str) -> dict[str, float]:
        return {
            "n": int(agg[f"{prefix}n"]),
            "Acc": _pct(agg[f"{prefix}strict"]), "LAcc": _pct(agg[f"{prefix}loose"]),
            "Diff": agg[f"{prefix}diff"], "NDiff": agg[f"{prefix}ndiff"],
            "ObjAcc": _pct(agg[f"{prefix}obj_acc"]), "AttrAcc": _pct(agg[f"{prefix}attr_acc"]), "ValAcc": _pct(agg[f"{prefix}val_acc"]),
            "StepDiff": agg[f"{prefix}step_diff"],
            "ErrOverlap": _pct(agg[f"{prefix}err_overlap"]), "ErrInvalid": _pct(agg[f"{prefix}err_invalid"]),
        }  # fmt: skip

    views = {v: block(f"{v}/") for v in VIEWS if f"{v}/n" in agg}
    total = block("")
    total["TAcc"] = _pct(agg["tacc"])
    ood = [views[v]["Acc"] for v in ("left", "right") if v in views]
    headline = {
        "TAcc": total["TAcc"],
        "ID": views["center"]["Acc"] if "center" in views else None,
        "OOD": sum(ood) / len(ood) if ood else None,
        "NDiff": total["NDiff"],
        "Diff": total["Diff"],
    }
    return {
        "family": "tvr",
        "unit": "percent except Diff, NDiff, StepDiff",
        "headline": headline,
        "total": total,
        "views": views,
        "format": _format_stats(rows),
    }


def mindcube_aggregate(rows: Iterable[tuple[str, bool]]) -> dict:
    """(setting, correct) pairs -> MindCube's results (its `evaluator.py`): per-setting accuracy, and
    the overall micro accuracy over every setting except translation (tracked, excluded)."""
    counts = {s: [0, 0] for s in official.MINDCUBE_REPORT_ORDER}
    for setting, correct in rows:
        counts.setdefault(setting, [0, 0])
        counts[setting][0] += 1
        counts[setting][1] += int(bool(correct))
    order = [s for s in official.MINDCUBE_REPORT_ORDER if s in counts] + [s for s in counts if s not in official.MINDCUBE_REPORT_ORDER]
    settings = {s: {"n": counts[s][0], "correct": counts[s][1], "accuracy": 100.0 * counts[s][1] / counts[s][0]} for s in order if counts[s][0]}
    n_all = sum(n for s, (n, _) in counts.items() if s not in official.MINDCUBE_EXCLUDED_FROM_OVERALL)
    c_all = sum(c for s, (_, c) in counts.items() if s not in official.MINDCUBE_EXCLUDED_FROM_OVERALL)
    return {"overall": 100.0 * c_all / n_all if n_all else None, "n_overall": n_all, "correct_overall": c_all, "settings": settings}


def spar_aggregate(task_means: Mapping[str, float], task_kinds: Mapping[str, str], *, official_levels: bool = True) -> dict:
    """lmms-eval's `sparbench_aggregate_results` on per-task mean scores (fractions): overall is the
    unweighted mean over the tasks present; levels are the means of their tasks.

    Quirk kept when `official_levels`: lmms-eval finds a task's level by stripping the last
    "_"-piece of "<task>_<metric>"; for "view_change_infer_vci_metric" that leaves
    "view_change_infer_vci", which is in no level, so Middle is the mean of position_matching and
    camera_motion_infer only. `official_levels=False` (strict) counts view_change_infer in Middle.
    An empty level is None (lmms-eval: NaN). Results are in percent."""
    overall = float(np.mean(list(task_means.values()))) if task_means else None
    levels = {}
    for level, members in registry.SPARBENCH_LEVELS.items():
        values = []
        for task, mean in task_means.items():
            key = f"{task}_{official.SPAR_METRIC_NAME[task_kinds[task]]}"
            name = "_".join(key.split("_")[:-1]) if official_levels else task
            if name in members:
                values.append(mean)
        levels[level] = 100.0 * float(np.mean(values)) if values else None
    return {"overall": None if overall is None else 100.0 * overall, "levels": levels}


def aggregate_mindcube(rows: list[Scored]) -> dict[str, Any]:
    result = mindcube_aggregate((r.category, r.correct) for r in rows)
    headline = {"overall": result["overall"], **{s: v["accuracy"] for s, v in result["settings"].items()}}
    return {"family": "mindcube", "unit": "percent", "headline": headline, **result, "format": _format_stats(rows)}


def aggregate_spar(rows: list[Scored], protocol: str) -> dict[str, Any]:
    by_task: dict[str, list[Scored]] = defaultdict(list)
    for r in rows:
        by_task[r.category].append(r)
    means = {t: sum(r.score for r in rs) / len(rs) for t, rs in sorted(by_task.items())}
    kinds = {t: rs[0].kind for t, rs in by_task.items()}
    agg = spar_aggregate(means, kinds, official_levels=protocol == "official")
    tasks = {
        t: {"n": len(by_task[t]), "metric": official.SPAR_METRIC_NAME[kinds[t]], "value": 100.0 * m, "correct": sum(r.correct for r in by_task[t])}
        for t, m in means.items()
    }
    headline = {"overall": agg["overall"], **{k.capitalize(): v for k, v in agg["levels"].items()}}
    for task, label in (("obj_spatial_relation_oc_mv", "ObjRel-OC-MV"), ("obj_spatial_relation_oo_mv", "ObjRel-OO-MV")):
        if task in tasks:
            headline[label] = tasks[task]["value"]
    return {"family": "spar", "unit": "percent", "headline": headline, "overall": agg["overall"], "levels": agg["levels"],
            "middle_includes_view_change": protocol != "official", "tasks": tasks, "format": _format_stats(rows)}  # fmt: skip


def aggregate_mmsi(rows: list[Scored]) -> dict[str, Any]:
    by_cat: dict[str, list[Scored]] = defaultdict(list)
    for r in rows:
        by_cat[r.category].append(r)
    categories = {
        c: {"n": len(rs), "correct": sum(r.correct for r in rs), "accuracy": 100.0 * sum(r.correct for r in rs) / len(rs)}
        for c, rs in sorted(by_cat.items())
    }
    overall = 100.0 * sum(r.correct for r in rows) / len(rows)
    return {
        "family": "mmsi",
        "unit": "percent",
        "headline": {"overall": overall},
        "overall": overall,
        "categories": categories,
        "format": _format_stats(rows),
    }


def _aggregate_family(rows: list[Scored], protocol: str) -> dict[str, Any]:
    family = rows[0].sample.family
    if family == "tvr":
        return aggregate_tvr(rows)
    if family == "mindcube":
        return aggregate_mindcube(rows)
    if family == "spar":
        return aggregate_spar(rows, protocol)
    return aggregate_mmsi(rows)


def aggregate(scored: list[Scored], protocol: str) -> dict[str, dict[str, Any]]:
    """metrics.json's `benchmarks`: one block per benchmark, in first-seen order, each with its
    `origin` (the one origin of all its lines; None when some line's origin is unknown) and the
    headline of every split it holds (`splits`; "unknown" for lines without extra_info.split)."""
    groups: dict[str, list[Scored]] = {}
    for r in scored:
        groups.setdefault(r.sample.benchmark, []).append(r)
    out = {}
    for bench, rows in groups.items():
        block = _aggregate_family(rows, protocol)
        origins = {r.sample.origin for r in rows}
        block["origin"] = origins.pop() if len(origins) == 1 else None
        block["n_unknown_origin"] = sum(r.sample.origin is None for r in rows)
        by_split: dict[str, list[Scored]] = {}
        for r in rows:
            by_split.setdefault(str(r.sample.extra_info.get("split") or "unknown"), []).append(r)
        block["splits"] = {split: {"n": len(sub), "headline": _aggregate_family(sub, protocol)["headline"]} for split, sub in by_split.items()}
        out[bench] = block
    return out


def origin_warnings(benchmarks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per benchmark block that no paper number may stand beside: unknown or synthetic origin."""
    named = ", ".join(name for name, origin in ORIGINS.items() if origin.benchmark)
    out = []
    for name, block in benchmarks.items():
        origin = ORIGINS.get(block.get("origin") or "")
        if block.get("n_unknown_origin"):
            out.append(
                f"{name}: {block['n_unknown_origin']} line(s) without extra_info.origin (a veRL dump?): benchmark unknown, so no paper numbers "
                f"beside it; if it is a benchmark's test split, score it again with --origin ({named})"
            )
        elif origin is not None and origin.benchmark is None:
            out.append(
                f"{name}: origin {origin.name!r} is no published benchmark, so no paper numbers beside it "
                f"(the paper's are for {named}; a veRL dump of one is scored with --origin)"
            )
    return out


def per_sample_record(r: Scored) -> dict[str, Any]:
    score = r.score if math.isfinite(r.score) else 0.0
    return {"id": r.sample.id, "data_source": r.sample.family, "correct": bool(r.correct), "score": float(score), "diff": r.diff}


PROTOCOL_DESCRIPTIONS = {
    "official": (
        "Each benchmark's own scorer, quirks included (MindCube's extractor on the whole response; "
        "SPAR-Bench's lmms-eval scorer and MMSI-Bench's README extractor on the last <answer> block, "
        "else the response without <think> blocks). TVR: TVR's evaluator metrics (one protocol)."
    ),
    "strict": (
        "The reward's parsers (star_verl.rewards.compute_score): correct = acc, score = r_ans with "
        "mv_answer_weight=1 and mv_graded_share=1 (the option, the MRA, the view-change MRA of the last <answer> block). "
        "TVR: TVR's evaluator metrics (one protocol)."
    ),
}


def score_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    protocol: str = "official",
    skip_bad: bool = False,
    origin: str | None = None,
    data_source: str | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Score a generations file and write DIR/metrics.json, DIR/per_sample.jsonl, DIR/metrics.md and
    one PNG per benchmark; return the metrics."""
    from star_verl import __version__
    from star_verl.eval.tables import metrics_markdown

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    read = read_generations(path, skip_bad=skip_bad, origin=origin, data_source=data_source)
    if not read.samples:
        raise InputError(f"{path}: no scorable line ({read.n_lines} line(s), {len(read.bad)} bad)")
    scored = [score_sample(s, protocol) for s in read.samples]
    generation = []
    for s in read.samples:
        if s.generation is not None:
            settings = {k: v for k, v in s.generation.items() if k != "sample_index"}
            if settings not in generation:
                generation.append(settings)
    metrics = {
        "protocol": protocol,
        "protocol_description": PROTOCOL_DESCRIPTIONS[protocol],
        "star_verl_version": __version__,
        "input": str(path),
        "input_formats": sorted(read.formats),
        "n_lines": read.n_lines,
        "n_scored": len(scored),
        "n_bad": len(read.bad),
        "bad_lines": read.bad,
        "generation": generation,
        "benchmarks": aggregate(scored, protocol),
    }
    metrics["warnings"] = origin_warnings(metrics["benchmarks"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(out / "per_sample.jsonl", "w", encoding="utf-8") as fh:
        for r in scored:
            fh.write(json.dumps(per_sample_record(r), ensure_ascii=False) + "\n")
    (out / "metrics.md").write_text(metrics_markdown(metrics), encoding="utf-8")
    if plots:
        from star_verl.eval.plots import benchmark_figures

        benchmark_figures(metrics["benchmarks"], out)
    return metrics
