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
from star_verl.prep.teacher.filter import Decision, ResponseLimit, judge_chain, reason_code
from star_verl.prep.teacher.pool import PoolQuestion, digest, iter_pool_images
from star_verl.prep.teacher.settings import TEMPLATE_NAME, TeacherSettings

OUTPUT_FILES = ("train.parquet", "val.parquet", "rejected.jsonl", "failed.jsonl", "report.json", "report.md")
_COUNTS = ("questions", "samples", "answered", "kept", "rejected", "failed", "questions_kept")


class Verdicts:
    """Each sample judged once per run (`judge_chain`, with the run's length limit): the progress
    counts of the requests and the outputs read the same decision (a cache record never changes under its key)."""

    def __init__(self, limit: ResponseLimit | None = None) -> None:
        self.limit = limit
        self._decisions: dict[CacheKey, Decision] = {}

    def of(self, key: CacheKey, record: Mapping[str, Any], question: PoolQuestion) -> Decision:
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = judge_chain(
                record["response"],
                data_source=question.data_source,
                ground_truth=question.ground_truth,
                extra_info=question.extra_info,
                finish_reason=record.get("finish_reason"),
                limit=self.limit,
            )
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

    val_ids = frozenset(val_questions([q.question_id for q in questions if q.question_id in kept], settings.val_fraction))
    n_val = sum(len(chains) for qid, chains in kept.items() if qid in val_ids)
    total = sum(per_cat.values(), Counter())
    report = {
        "pool": pool_name,
        "model": settings.model,
        "template": TEMPLATE_NAME,
        "samples_per_question": settings.samples_per_question,
        "val_fraction": settings.val_fraction,
        "length_check": _length_check(verdicts.limit, settings),
        "total": rates(total),
        "rows": {"train": sum(map(len, kept.values())) - n_val, "val": n_val},
        "tokens": {"prompt": int(tokens["prompt_tokens"]), "completion": int(tokens["completion_tokens"])},
        "categories": {name: {**rates(per_cat[name]), "rejected_by": dict(sorted(reasons_cat[name].items()))} for name in sorted(per_cat)},
        "rejected_by": dict(sorted(sum(reasons_cat.values(), Counter()).items())),
    }
    return Outputs(kept=kept, val_ids=val_ids, rejected=rejected, failed=failed, report=report)


def _length_check(limit: ResponseLimit | None, settings: TeacherSettings) -> dict[str, Any]:
    """What the `too_long` rule checked: the student's tokenizer and the RL response length, or that it was skipped."""
    if limit is None:
        return {"checked": False, "tokenizer": None, "max_response_length": settings.max_response_length}
    return {"checked": True, "tokenizer": limit.tokenizer, "max_response_length": limit.max_response_length}


def rates(c: Counter) -> dict[str, Any]:
    out: dict[str, Any] = {key: int(c[key]) for key in _COUNTS}
    out["kept_rate"] = round(c["kept"] / c["answered"], 4) if c["answered"] else None
    return out


def val_questions(kept_ids: Sequence[str], fraction: float) -> set[str]:
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

    length = report["length_check"]
    if length["checked"]:
        length_line = f"Chains longer than {length['max_response_length']} tokens of `{length['tokenizer']}` (the RL response length) are rejected. "
    else:
        length_line = "The length check was skipped (no --tokenizer): kept chains may be longer than RL's data.max_response_length. "
    lines = [
        f"# Teacher chains of thought: {report['model']} on {report['pool']}",
        "",
        f"Template `{report['template']}`, {report['samples_per_question']} sample(s) per question. A chain is kept when "
        "`compute_score(...)['acc'] == 1.0`, it follows the three steps and it states a key reference where the row has some "
        "(star_verl.prep.teacher.filter). " + length_line + f"SFT rows: {report['rows']['train']} train, {report['rows']['val']} val. "
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
