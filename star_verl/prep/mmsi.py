"""MMSI-Bench (`RunsenXu/MMSI-Bench`, `MMSI_Bench.parquet`): `id` (int), `images` (a list of raw
JPEG bytes, not {bytes, path} structs), `question_type`, `question` ("...\\nOptions: A: ..., B: ..."),
`answer` (a letter), `thought`.

The category is `question_type` in the release's own spelling (`star_verl.tasks.registry.mmsi_category`):
the current release writes "Positional Relationship (Cam.–Obj.)" with an en dash, older copies a
hyphen, which becomes the en dash. A category outside the 11 MMSI defines is bad input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from star_verl.prep.multiview import BadInput, BadInputLog, ImageRef, Sample, choice_ground_truth, parquet_samples, with_placeholders
from star_verl.tasks.registry import MMSI_CATEGORIES, mmsi_category

_OPTIONS = re.compile(r"([A-Z]):\s*(.*?)(?=, [A-Z]:|$)", re.DOTALL)


def parse_options(question: str) -> list[str]:
    """Letters after the last "Options:" (MMSI's "A: ..., B: ..." form)."""
    head, sep, tail = str(question).rpartition("Options:")
    if not sep:
        return []
    letters = [m.group(1) for m in _OPTIONS.finditer(tail.strip())]
    expected = [chr(ord("A") + i) for i in range(len(letters))]
    return letters if len(letters) >= 2 and letters == expected else []


def mmsi_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def mmsi_samples(path: Path, bad: BadInputLog) -> Iterator[Sample]:
    return parquet_samples(path, ("id", "images", "question_type", "question", "answer"), "MMSI_Bench.parquet", "mmsi", mmsi_sample, bad)


def mmsi_sample(row: dict[str, Any], *, where: str) -> Sample:
    category = mmsi_category(row["question_type"])
    if category not in MMSI_CATEGORIES:
        raise BadInput(where, f"unknown task type (question_type) {row['question_type']!r}")
    images = row["images"] or []
    refs = []
    for i, data in enumerate(images):
        data = data.get("bytes") if isinstance(data, dict) else data  # tolerate {bytes, path} copies
        if not data:
            raise BadInput(where, f"image {i} has no bytes")
        refs.append(ImageRef(label=f"mmsi/{row['id']}/{i}", data=data))
    options = parse_options(row["question"])
    if not options:
        raise BadInput(where, "no 'Options: A: ..., B: ...' in the question")
    gt = choice_ground_truth(str(row["answer"]), options, category, [], where)
    question = with_placeholders(str(row["question"]), len(refs), where)
    return Sample(
        data_source="mmsi",
        origin="mmsi",
        task=category,
        question_id=str(row["id"]),
        question=question,
        images=refs,
        ground_truth=gt,
        group=str(row["id"]),
        where=where,
    )
