"""`star-verl eval report DIR [DIR...] --out DIR`: runs scored by `eval score` side by side, beside
STAR-R1's reported numbers (`paper_numbers.json`, one data file with its sources).

Writes OUT/report.md (one table: every headline metric of every run, and the paper's number),
OUT/report.json (the same numbers) and OUT/report.png (one figure: the metrics the paper reports,
plus each benchmark's overall score).

The report never puts unlike beside like, and says so in one warning line each:
- a benchmark block whose origin is unknown (a veRL dump scored without `--origin`) is shown as
  "<name> (origin unknown)", with no paper numbers; synthetic data has none either;
- a TVR run that lacks a view shows no TAcc (nor OOD without left or right, ID without center,
  Diff and NDiff without all three): those would average other views than the paper's. Its
  per-view accuracies ("Acc (center)", ...) are shown instead."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from star_verl.eval.tables import table
from star_verl.tasks.registry import ORIGINS
from star_verl.tasks.tvr import OOD_VIEWS, VIEWS

LOWER_IS_BETTER = ("NDiff", "Diff")
UNKNOWN_ORIGIN = " (origin unknown)"
# the TVR headline metrics and the views each needs to be the paper's metric
TVR_VIEWS_NEEDED = {"TAcc": VIEWS, "ID": ("center",), "OOD": OOD_VIEWS, "Diff": VIEWS, "NDiff": VIEWS}


def paper_numbers() -> dict[str, Any]:
    return json.loads(resources.files("star_verl.eval").joinpath("paper_numbers.json").read_text(encoding="utf-8"))


def paper_values() -> dict[tuple[str, str], float]:
    data = paper_numbers()
    return {(b, m): float(v["value"]) for b, metrics in data["benchmarks"].items() for m, v in metrics.items()}


def _comparable(name: str, block: dict[str, Any], run: str, warnings: list[str]) -> tuple[str, dict[str, Any]]:
    """The block's label and headline as the report may show them beside the paper (see the module docstring)."""
    headline = {m: v for m, v in block["headline"].items() if v is not None}
    origin = ORIGINS.get(block.get("origin") or "")
    if origin is None:
        warnings.append(
            f"run `{run}`: `{name}` has lines of unknown origin (a veRL dump scored without --origin): shown as `{name}{UNKNOWN_ORIGIN}`, "
            f"without paper numbers; score it again with `star-verl eval score FILE --origin ORIGIN --out DIR` "
            f"(ORIGIN: {', '.join(o.name for o in ORIGINS.values() if o.benchmark)})"
        )
        return name + UNKNOWN_ORIGIN, headline
    if origin.benchmark is None:
        warnings.append(f"run `{run}`: `{name}` is {origin.name} data, no published benchmark: no paper numbers beside it")
    if block.get("family") == "tvr":
        present = [v for v in VIEWS if v in block.get("views", {})]
        dropped = [m for m, needed in TVR_VIEWS_NEEDED.items() if m in headline and not set(needed) <= set(present)]
        if dropped:
            warnings.append(
                f"run `{run}`: `{name}` has only the {', '.join(present)} view(s): {', '.join(dropped)} would average other views than the "
                "paper's, so they are not shown; its per-view accuracies (`Acc (<view>)`) are shown instead"
            )
            headline = {m: v for m, v in headline.items() if m not in dropped}
            headline.update({f"Acc ({v})": block["views"][v]["Acc"] for v in present})
    return name, headline


def load_run(run_dir: str | Path, name: str | None = None) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.json (run `star-verl eval score ... --out {run_dir}` first)")
    run = name or Path(run_dir).resolve().name
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        warnings: list[str] = []
        headline = {}
        for bench, block in metrics["benchmarks"].items():
            label, values = _comparable(bench, block, run, warnings)
            headline.update(((label, m), v) for m, v in values.items())
        return {"protocol": metrics["protocol"], "headline": headline, "warnings": warnings}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a star-verl metrics.json ({exc})") from None


def report(run_dirs: list[str | Path], out_dir: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    from star_verl.eval.plots import comparison_figure

    if not run_dirs:
        raise ValueError("report needs at least one run directory")
    names = list(names) if names else [Path(d).resolve().name for d in run_dirs]
    if len(names) != len(run_dirs):
        raise ValueError(f"{len(names)} name(s) for {len(run_dirs)} run(s)")
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be distinct, got {names} (pass --names)")
    runs = {name: load_run(d, name) for name, d in zip(names, run_dirs, strict=True)}
    paper = paper_values()
    benchmarks_seen = list(dict.fromkeys(b for r in runs.values() for b, _ in r["headline"]))
    entries: list[tuple[str, str]] = []
    for bench in benchmarks_seen:
        # the paper's metrics first (in the data file's order), then the run's other headline metrics
        ordered = [e for e in paper if e[0] == bench] + [e for r in runs.values() for e in r["headline"] if e[0] == bench]
        entries += [e for e in dict.fromkeys(ordered) if e not in entries]
    rows = []
    for bench, metric in entries:
        values = [runs[n]["headline"].get((bench, metric)) for n in names]
        rows.append([bench, metric + (" ↓" if metric in LOWER_IS_BETTER else ""), *values, paper.get((bench, metric))])
    digits = [0, 0] + [2] * (len(names) + 1)
    protocols = {n: r["protocol"] for n, r in runs.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    note = ", ".join(f"`{n}`: {p}" for n, p in protocols.items())
    warnings = [w for r in runs.values() for w in r["warnings"]]
    warn = (
        "" if len(set(protocols.values())) == 1 else "\n\n**Warning: the runs were scored with different protocols; their numbers do not compare.**"
    ) + "".join(f"\n\n**Warning:** {w}." for w in warnings)
    md = (
        "# Runs beside STAR-R1's reported numbers\n\n"
        f"Protocols: {note}. Percent, except Diff and NDiff (lower is better, ↓). Paper numbers: "
        f'`star_verl/eval/paper_numbers.json` ({paper_numbers()["sources"]["papernotes"]}); "–": not reported / not evaluated.{warn}\n\n'
        + table(["benchmark", "metric", *names, "paper"], rows, digits, labels=2)
        + "\n"
    )
    (out / "report.md").write_text(md, encoding="utf-8")
    figure_entries = [e for e in entries if e in paper or e[1] in ("overall", "TAcc")]
    present = {e for r in runs.values() for e in r["headline"]}
    figure_entries = [e for e in figure_entries if e in present]
    fig_runs = {n: {e: v for e, v in runs[n]["headline"].items() if e in figure_entries} for n in names}
    fig_paper = {e: v for e, v in paper.items() if e in figure_entries}
    comparison_figure(figure_entries, fig_runs, fig_paper, out / "report.png", LOWER_IS_BETTER)
    result = {"runs": {n: {"dir": str(d), "protocol": protocols[n]} for n, d in zip(names, run_dirs, strict=True)}, "warnings": warnings,
              "rows": [{"benchmark": b, "metric": m, "values": {n: runs[n]["headline"].get((b, m)) for n in names}, "paper": paper.get((b, m))} for b, m in entries]}  # fmt: skip
    (out / "report.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result
