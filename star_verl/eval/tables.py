"""Markdown tables of `metrics.json` (one section per benchmark) and of a run comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from star_verl.tasks.registry import SPARBENCH_LEVELS
from star_verl.tasks.tvr import VIEWS


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: Sequence[int] | None = None, labels: int = 1) -> str:
    """A markdown table; the first `labels` columns are left-aligned text, the rest right-aligned numbers."""
    digits = digits or [1] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < labels else "---:" for i in range(len(header))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, d) for v, d in zip(row, digits, strict=True)) + " |")
    return "\n".join(lines)


TVR_COLUMNS = ("Acc", "LAcc", "Diff", "NDiff", "ObjAcc", "AttrAcc", "ValAcc", "StepDiff")


def tvr_section(block: dict[str, Any]) -> str:
    rows = [[view, b["n"], *(b[c] for c in TVR_COLUMNS)] for view, b in block["views"].items()]
    rows.append(["**total**", block["total"]["n"], *(block["total"][c] for c in TVR_COLUMNS)])
    h = block["headline"]
    head = f"TAcc **{fmt(h['TAcc'])}** · ID (center) {fmt(h['ID'])} · OOD (left/right) {fmt(h['OOD'])} · Diff {fmt(h['Diff'], 3)} · NDiff {fmt(h['NDiff'], 3)}"
    missing = [v for v in VIEWS if v not in block["views"]]
    if missing:
        head += f"\n\nNo {', '.join(missing)} view: TAcc, OOD and NDiff average the views present, so they are not the paper's metrics."
    return head + "\n\n" + table(["view", "n", *TVR_COLUMNS], rows, [0, 0, 1, 1, 3, 3, 1, 1, 1, 2])


def mindcube_section(block: dict[str, Any]) -> str:
    rows = [[s, v["n"], v["correct"], v["accuracy"]] for s, v in block["settings"].items()]
    rows.append(["**overall** (excl. translation)", block["n_overall"], block["correct_overall"], block["overall"]])
    return table(["setting", "n", "correct", "accuracy"], rows)


def spar_section(block: dict[str, Any]) -> str:
    level_of = {t: level for level, tasks in SPARBENCH_LEVELS.items() for t in tasks}
    rows = [[t, level_of.get(t, "–"), v["metric"], v["n"], v["value"]] for t, v in block["tasks"].items()]
    for level, value in block["levels"].items():
        rows.append([f"**{level}**", "", "mean", None, value])
    rows.append(["**overall** (mean over tasks)", "", "mean", sum(v["n"] for v in block["tasks"].values()), block["overall"]])
    note = (
        ""
        if block["middle_includes_view_change"]
        else "\n\nMiddle is the mean of position_matching and camera_motion_infer: lmms-eval's level grouping misses view_change_infer (kept in the official protocol)."
    )
    return table(["task", "level", "metric", "n", "score"], rows, labels=3) + note


def mmsi_section(block: dict[str, Any]) -> str:
    rows = [[c, v["n"], v["correct"], v["accuracy"]] for c, v in block["categories"].items()]
    rows.append(
        ["**overall**", sum(v["n"] for v in block["categories"].values()), sum(v["correct"] for v in block["categories"].values()), block["overall"]]
    )
    return table(["category", "n", "correct", "accuracy"], rows)


SECTIONS = {"tvr": tvr_section, "mindcube": mindcube_section, "spar": spar_section, "mmsi": mmsi_section}


def metrics_markdown(metrics: dict[str, Any]) -> str:
    parts = [f"# Evaluation: protocol `{metrics['protocol']}`", "", metrics["protocol_description"], "",
             f"Input `{metrics['input']}`: {metrics['n_scored']} scored, {metrics['n_bad']} bad line(s) skipped.", ""]  # fmt: skip
    parts += [f"**Warning:** {warning}\n" for warning in metrics.get("warnings", [])]
    for name, block in metrics["benchmarks"].items():
        f = block["format"]
        parts += [
            f"## {name}",
            "",
            SECTIONS[block["family"]](block),
            "",
            f"Well-formed `<think><answer>` responses: {fmt(f['well_formed'])}% of {f['n']}.",
            "",
        ]
        if len(block["splits"]) > 1:
            rows = [[split, v["n"], ", ".join(f"{k} {fmt(x)}" for k, x in v["headline"].items())] for split, v in block["splits"].items()]
            parts += ["Per split:", "", table(["split", "n", "headline"], rows, labels=1), ""]
    return "\n".join(parts)
