"""Filtering and outputs: each cached sample judged (once), what to write decided from the pool and
the cache alone (`decide`, pure), then written (`write_outputs`) under temporary names that are
renamed at the end, or removed when writing fails."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from star_verl.prep.schema import SFT_SCHEMA, ParquetRowWriter, image_entry, make_extra_info, make_sft_row
from star_verl.prep.teacher.cache import CacheKey, ResponseCache, cache_key
from star_verl.prep.teacher.pool import PoolQuestion, digest, iter_pool_images
from star_verl.prep.teacher.settings import TEMPLATE_NAME, TeacherSettings
from star_verl.rewards import compute_score
from star_verl.tasks.references import three_step_structure
from star_verl.tasks.tags import parse_tags

OUTPUT_FILES = ("train.parquet", "val.parquet", "rejected.jsonl", "failed.jsonl", "report.json", "report.md")
_COUNTS = ("questions", "samples", "answered", "kept", "rejected", "failed", "questions_kept")


@dataclass(frozen=True)
class Decision:
    keep: bool
    reasons: tuple[str, ...]  # each "code: detail"; codes: empty, truncated, wrong_answer, structure, duplicate
    acc: float
    score: float


def reason_code(reason: str) -> str:
    return reason.split(":", 1)[0]


def judge(response: str, question: PoolQuestion, finish_reason: str | None = None) -> Decision:
    """Keep a chain only if its answer is right (`compute_score(...)['acc'] == 1.0`), it follows the
    three steps (`three_step_structure` with the question's image count) and it was not cut off."""
    reasons: list[str] = []
    if not response.strip():
        reasons.append("empty: the teacher returned no text")
    if finish_reason == "length":
        reasons.append("truncated: finish_reason=length (raise --max-tokens)")
    scores = compute_score(question.data_source, response, question.ground_truth, question.extra_info)
    if scores["acc"] != 1.0:
        answer = parse_tags(response).answer
        shown = "no <answer>" if answer is None else repr(answer.strip()[:80])
        reasons.append(f"wrong_answer: {shown}, expected {question.ground_truth.get('answer')!r} (acc={scores['acc']:g})")
    structure = three_step_structure(response, question.extra_info.get("n_images"))
    reasons.extend(f"structure: {r}" for r in structure.reasons)
    return Decision(keep=not reasons, reasons=tuple(reasons), acc=float(scores["acc"]), score=float(scores["score"]))


class Verdicts:
    """Each sample judged once per run: the progress counts of the requests and the outputs read the
    same decision (a cache record never changes under its key)."""

    def __init__(self) -> None:
        self._decisions: dict[CacheKey, Decision] = {}

    def of(self, key: CacheKey, record: Mapping[str, Any], question: PoolQuestion) -> Decision:
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = judge(record["response"], question, record.get("finish_reason"))
        return decision


@dataclass(frozen=True)
class Outputs:
    """What a run writes, decided before anything is written."""

    kept: dict[str, list[str]]  # question_id -> the kept chains, in sample order
    val_ids: frozenset[str]  # the held-out questions (val.parquet)
    rejected: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    report: dict[str, Any]


def decide(
    settings: TeacherSettings, pool_name: str, questions: Sequence[PoolQuestion], hashes: Mapping[str, str], cache: ResponseCache, verdicts: Verdicts
) -> Outputs:
    """Judge every sample of the pool from the cache, in pool order: a pure function of (pool, cache,
    settings), so the same inputs give the same outputs, byte for byte."""
    kept: dict[str, list[str]] = {}
    rejected: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    per_cat: dict[str, Counter] = {}
    reasons_cat: dict[str, Counter] = {}
    tokens = Counter()
    for q in questions:
        cat = per_cat.setdefault(q.category, Counter())
        rc = reasons_cat.setdefault(q.category, Counter())
        cat["questions"] += 1
        seen: dict[str, int] = {}
        for k in range(settings.samples_per_question):
            cat["samples"] += 1
            key = cache_key(q.question_id, k, settings.model, hashes[q.question_id])
            record = cache.get(key)
            if record is None:
                cat["failed"] += 1
                failed.append({"question_id": q.question_id, "sample": k, "data_source": q.data_source, "task": q.extra_info.get("task")})
                continue
            cat["answered"] += 1
            tokens["prompt_tokens"] += record["usage"]["prompt_tokens"]
            tokens["completion_tokens"] += record["usage"]["completion_tokens"]
            text = record["response"].strip()
            decision = verdicts.of(key, record, q)
            reasons = list(decision.reasons)
            if decision.keep and text in seen:
                reasons.append(f"duplicate: the same chain as sample {seen[text]}")
            if reasons:
                cat["rejected"] += 1
                rc.update({reason_code(r) for r in reasons})
                rejected.append(
                    {
                        "question_id": q.question_id,
                        "sample": k,
                        "data_source": q.data_source,
                        "task": q.extra_info.get("task"),
                        "acc": decision.acc,
                        "reasons": reasons,
                        "response": record["response"],
                    }
                )
                continue
            seen[text] = k
            cat["kept"] += 1
            kept.setdefault(q.question_id, []).append(text)
        cat["questions_kept"] += q.question_id in kept

    val_ids = frozenset(_val_questions([q.question_id for q in questions if q.question_id in kept], settings.val_fraction))
    n_val = sum(len(chains) for qid, chains in kept.items() if qid in val_ids)
    total = sum(per_cat.values(), Counter())
    report = {
        "pool": pool_name,
        "model": settings.model,
        "template": TEMPLATE_NAME,
        "samples_per_question": settings.samples_per_question,
        "val_fraction": settings.val_fraction,
        "total": _rates(total),
        "rows": {"train": sum(map(len, kept.values())) - n_val, "val": n_val},
        "tokens": {"prompt": int(tokens["prompt_tokens"]), "completion": int(tokens["completion_tokens"])},
        "categories": {name: {**_rates(per_cat[name]), "rejected_by": dict(sorted(reasons_cat[name].items()))} for name in sorted(per_cat)},
        "rejected_by": dict(sorted(sum(reasons_cat.values(), Counter()).items())),
    }
    return Outputs(kept=kept, val_ids=val_ids, rejected=rejected, failed=failed, report=report)


def _rates(c: Counter) -> dict[str, Any]:
    out: dict[str, Any] = {key: int(c[key]) for key in _COUNTS}
    out["kept_rate"] = round(c["kept"] / c["answered"], 4) if c["answered"] else None
    return out


def _val_questions(kept_ids: Sequence[str], fraction: float) -> set[str]:
    """A deterministic held-out slice: the round(fraction * n) kept questions (at least one when
    fraction > 0 and at least two questions have kept chains) with the smallest sha256(question_id)."""
    if fraction <= 0 or len(kept_ids) < 2:
        return set()
    n = min(len(kept_ids) - 1, max(1, round(fraction * len(kept_ids))))
    return set(sorted(kept_ids, key=digest)[:n])


def write_outputs(outputs: Outputs, pool_path: Path, out_dir: Path, questions: Sequence[PoolQuestion]) -> None:
    """Write the decided outputs: SFT rows (the raw question, the chain, the pool row's images) in pool
    order, the rejected and failed lists, the report. Every file goes to a temporary name first; all
    are renamed once all are written, and a failure removes them (the previous outputs stay)."""
    tmp = {name: out_dir / f"{name}.tmp" for name in OUTPUT_FILES}
    writers: dict[str, ParquetRowWriter] = {}
    try:
        for split in ("train", "val"):
            writers[split] = ParquetRowWriter(tmp[f"{split}.parquet"], SFT_SCHEMA, overwrite=True)
        by_row = {q.row: q for q in questions if q.question_id in outputs.kept}
        index = {"sft_train": 0, "sft_val": 0}
        for row, images in iter_pool_images(pool_path, by_row):
            q = by_row[row]
            split = "sft_val" if q.question_id in outputs.val_ids else "sft_train"
            entries = [image_entry(data, path) for data, path in images]
            for chain in outputs.kept[q.question_id]:
                info = q.extra_info
                extra = make_extra_info(
                    index=index[split],
                    split=split,
                    origin=info["origin"],
                    task=info["task"],
                    view=info.get("view", ""),
                    question_id=q.question_id,
                    n_images=info["n_images"],
                )
                index[split] += 1
                writers[split.removeprefix("sft_")].write(
                    make_sft_row(
                        data_source=q.data_source, question=q.question, response=chain, images=entries, ground_truth=q.ground_truth, extra_info=extra
                    )
                )
        for writer in writers.values():
            writer.close()
        _write_jsonl(tmp["rejected.jsonl"], outputs.rejected)
        _write_jsonl(tmp["failed.jsonl"], outputs.failed)
        tmp["report.json"].write_text(json.dumps(outputs.report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp["report.md"].write_text(report_markdown(outputs.report), encoding="utf-8")
    except BaseException:
        for writer in writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise
    for name, path in tmp.items():
        os.replace(path, out_dir / name)


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def report_markdown(report: Mapping[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [
        f"# Teacher chains of thought: {report['model']} on {report['pool']}",
        "",
        f"Template `{report['template']}`, {report['samples_per_question']} sample(s) per question. A chain is kept when "
        "`compute_score(...)['acc'] == 1.0` and it follows the three steps. "
        f"SFT rows: {report['rows']['train']} train, {report['rows']['val']} val. "
        f"Tokens: {report['tokens']['prompt']} prompt, {report['tokens']['completion']} completion.",
        "",
        "| category | questions | samples | answered | kept | kept rate | questions kept | failed | rejected by |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, c in [*report["categories"].items(), ("**total**", {**report["total"], "rejected_by": report["rejected_by"]})]:
        why = ", ".join(f"{code} {n}" for code, n in c["rejected_by"].items()) or "-"
        lines.append(
            f"| {name} | {c['questions']} | {c['samples']} | {c['answered']} | {c['kept']} | {pct(c['kept_rate'])} | {c['questions_kept']} | {c['failed']} | {why} |"
        )
    return "\n".join(lines) + "\n"
