"""The pool: the multi-view RL rows the teacher is asked about, validated before any request, and
their images read a batch at a time (never the whole pool's images in memory)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from star_verl.prep.teacher.settings import TeacherError
from star_verl.prompts import PromptError, image_bytes, raw_question
from star_verl.rewards import GroundTruthError, validate_ground_truth
from star_verl.tasks.registry import MULTIVIEW_SOURCES
from star_verl.templates import IMAGE_PLACEHOLDER

POOL_COLUMNS_NO_IMAGES = ["data_source", "prompt", "reward_model", "extra_info"]


@dataclass(frozen=True)
class PoolQuestion:
    row: int
    question_id: str
    data_source: str
    question: str
    ground_truth: dict[str, Any]
    extra_info: dict[str, Any]

    @property
    def category(self) -> str:
        return f"{self.data_source}/{self.extra_info.get('task') or '-'}"


def where(path: Path, row: int, question_id: str | None = None) -> str:
    return f"{path} row {row}" + (f" (question_id {question_id!r})" if question_id else "")


def digest(text: str) -> str:
    """sha256 of a question id: the order of the stable pseudo-random subsets (max_questions, val)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _question_of(path: Path, row: int, record: Mapping[str, Any]) -> PoolQuestion:
    info = dict(record.get("extra_info") or {})
    qid = str(info.get("question_id") or "")
    at = where(path, row, qid)
    if not qid:
        raise TeacherError(f"{at}: extra_info.question_id is missing or empty")
    source = record.get("data_source")
    if source not in MULTIVIEW_SOURCES:
        raise TeacherError(f"{at}: data_source {source!r}: the three-step teacher pool holds multi-view questions only {MULTIVIEW_SOURCES}")
    try:
        question = raw_question(record.get("prompt"))
    except PromptError as exc:
        raise TeacherError(f"{at}: {exc}") from None
    n_images = info.get("n_images")
    if question.count(IMAGE_PLACEHOLDER) != n_images:
        raise TeacherError(f"{at}: {question.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} placeholders but extra_info.n_images={n_images}")
    reward_model = record.get("reward_model") or {}
    try:
        gt = validate_ground_truth(source, reward_model.get("ground_truth"), info)
    except GroundTruthError as exc:
        raise TeacherError(f"{at}: {exc.problem}") from None
    return PoolQuestion(row=row, question_id=qid, data_source=source, question=question, ground_truth=gt, extra_info=info)


def _iter_records(path: Path, columns: Sequence[str], rows: Collection[int] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row, record) of the file's rows, or of `rows` only, one batch in memory at a time."""
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"{path}: not a readable parquet file ({exc})") from None
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise TeacherError(f"{path}: missing column(s) {missing}; a pool is an RL parquet (columns {list(columns)})")
    start = 0
    for batch in parquet.iter_batches(batch_size=64, columns=list(columns)):
        wanted = range(start, start + batch.num_rows) if rows is None else [r for r in range(start, start + batch.num_rows) if r in rows]
        if wanted:
            records = batch.take([r - start for r in wanted]).to_pylist() if rows is not None else batch.to_pylist()
            yield from zip(wanted, records, strict=True)
        start += batch.num_rows


def load_pool(path: str | os.PathLike, max_questions: int | None = None) -> list[PoolQuestion]:
    """The pool's questions (without images), in pool order, all validated before any request:
    multi-view source, one raw user message, placeholders == n_images, a ground truth the scorer
    accepts, unique question ids. With `max_questions` N: the N questions with the smallest
    sha256(question_id), a pseudo-random subset that does not depend on the pool's row order (converters
    group rows by image) and that a larger N extends, so the cache of a small run is reused."""
    path = Path(path)
    questions = [_question_of(path, row, record) for row, record in _iter_records(path, POOL_COLUMNS_NO_IMAGES)]
    seen: dict[str, int] = {}
    for q in questions:
        if q.question_id in seen:
            raise TeacherError(
                f"{path}: question_id {q.question_id!r} appears in rows {seen[q.question_id]} and {q.row}; the cache is keyed by question_id"
            )
        seen[q.question_id] = q.row
    if not questions:
        raise TeacherError(f"{path}: no rows")
    if max_questions is not None and max_questions < len(questions):
        chosen = {q.question_id for q in sorted(questions, key=lambda q: digest(q.question_id))[:max_questions]}
        questions = [q for q in questions if q.question_id in chosen]
    return questions


def _original_path(entry: Any) -> str | None:
    """The path an SFT row keeps for an image entry: its `path`, or the file an `{"image": path}` names."""
    if not isinstance(entry, Mapping):
        return None
    ref = entry.get("path") or entry.get("image")
    return ref if isinstance(ref, str) and ref else None


def iter_pool_images(path: str | os.PathLike, rows: Collection[int] | None = None) -> Iterator[tuple[int, list[tuple[bytes, str | None]]]]:
    """(row, [(image bytes, original path), ...]) for each row (or each of `rows`), a batch at a time.
    An entry is `{"bytes", "path"}` or `{"image": path}`; a relative path is looked up next to the pool."""
    path = Path(path)
    for row, record in _iter_records(path, ["images"], rows):
        images = []
        for entry in record["images"] or []:
            try:
                images.append((image_bytes(entry, base_dir=path.parent), _original_path(entry)))
            except PromptError as exc:
                raise TeacherError(f"{where(path, row)}: {exc}") from None
        yield row, images
