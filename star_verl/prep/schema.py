"""The one parquet row schema of DESIGN.md, shared by every converter (veRL concatenates files, so
the schemas must match exactly), and a streaming writer.

RL rows: data_source, prompt, images, ability, reward_model, extra_info.
SFT rows: messages instead of prompt, the rest the same.
The ground truth is serialized by `star_verl.tasks.ground_truth` (converters pass the typed object).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from star_verl.tasks.ground_truth import GroundTruth, ground_truth_json
from star_verl.tasks.registry import DATA_SOURCES, ORIGINS

IMAGE_PLACEHOLDER = "<image>"
ABILITY = "spatial"

EXTRA_INFO_FIELDS = (
    ("index", pa.int64()),
    ("split", pa.string()),
    ("origin", pa.string()),
    ("task", pa.string()),
    ("view", pa.string()),
    ("question_id", pa.string()),
    ("n_images", pa.int64()),
)
EXTRA_INFO_KEYS = tuple(name for name, _ in EXTRA_INFO_FIELDS)
# Every stored row has exactly these. At load time StarRLDataset adds one more to the rows of the
# validation set only, never stored: `view_rows` (star_verl.data.validation), from which compute_score
# weights the TAcc / ID / OOD keys that veRL's validation logs.

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_COMMON = [
    ("images", pa.list_(IMAGE_TYPE)),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct(list(EXTRA_INFO_FIELDS))),
]
RL_SCHEMA = pa.schema([("data_source", pa.string()), ("prompt", pa.list_(_MESSAGE)), *_COMMON])
SFT_SCHEMA = pa.schema([("data_source", pa.string()), ("messages", pa.list_(_MESSAGE)), *_COMMON])


class RowError(ValueError):
    """A row that breaks the schema contract."""


def image_entry(data: bytes, path: str | None = None) -> dict[str, Any]:
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise RowError(f"image {path!r}: bytes must be non-empty")
    return {"bytes": bytes(data), "path": path}


def make_extra_info(*, index: int, split: str, origin: str, task: str, view: str = "", question_id: str, n_images: int) -> dict[str, Any]:
    if origin not in ORIGINS:
        raise RowError(f"origin {origin!r} is not one of {tuple(ORIGINS)}")
    return {
        "index": int(index),
        "split": str(split),
        "origin": origin,
        "task": str(task),
        "view": str(view),
        "question_id": str(question_id),
        "n_images": int(n_images),
    }


def _check_common(
    data_source: str, text: str, images: Sequence[Mapping[str, Any]], ground_truth: GroundTruth | Mapping[str, Any], extra_info: Mapping[str, Any]
) -> None:
    where = f"{extra_info.get('origin')}/{extra_info.get('split')} question {extra_info.get('question_id')!r}"
    if data_source not in DATA_SOURCES:
        raise RowError(f"{where}: data_source {data_source!r} is not one of {DATA_SOURCES}")
    if tuple(extra_info) != EXTRA_INFO_KEYS:
        raise RowError(f"{where}: extra_info keys {tuple(extra_info)} != {EXTRA_INFO_KEYS}")
    n_placeholders = text.count(IMAGE_PLACEHOLDER)
    if n_placeholders != len(images) or extra_info["n_images"] != len(images):
        raise RowError(f"{where}: {n_placeholders} {IMAGE_PLACEHOLDER} placeholders, {len(images)} images, n_images={extra_info['n_images']}")
    if isinstance(ground_truth, Mapping) and "task" not in ground_truth:  # a typed ground truth always has one
        raise RowError(f"{where}: ground truth lacks 'task'")


def make_rl_row(
    *,
    data_source: str,
    question: str,
    images: Sequence[Mapping[str, Any]],
    ground_truth: GroundTruth | Mapping[str, Any],
    extra_info: Mapping[str, Any],
) -> dict[str, Any]:
    """One RL row. `question` is the raw question with one <image> per image, never templated."""
    _check_common(data_source, question, images, ground_truth, extra_info)
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": question}],
        "images": list(images),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": ground_truth_json(ground_truth)},
        "extra_info": dict(extra_info),
    }


def make_sft_row(
    *,
    data_source: str,
    question: str,
    response: str,
    images: Sequence[Mapping[str, Any]],
    ground_truth: GroundTruth | Mapping[str, Any],
    extra_info: Mapping[str, Any],
) -> dict[str, Any]:
    """One SFT row: the raw question (template applied at load time) and the assistant's chain of thought."""
    _check_common(data_source, question, images, ground_truth, extra_info)
    return {
        "data_source": data_source,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": response}],
        "images": list(images),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": ground_truth_json(ground_truth)},
        "extra_info": dict(extra_info),
    }


class ParquetRowWriter:
    """Streams rows to a parquet file in row groups, so memory stays flat whatever the input size.

    Dictionary encoding is on for every column with a large dictionary page, so an image repeated
    across rows of a row group is stored once.
    """

    def __init__(self, path: str | Path, schema: pa.Schema = RL_SCHEMA, *, row_group_size: int = 256, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True (--overwrite) to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.row_group_size = row_group_size
        self._buffer: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(self.path, schema, compression="zstd", use_dictionary=True, dictionary_pagesize_limit=256 << 20)
        self.rows_written = 0

    def write(self, row: Mapping[str, Any]) -> None:
        self._buffer.append(dict(row))
        if len(self._buffer) >= self.row_group_size:
            self._flush()

    def write_all(self, rows: Iterable[Mapping[str, Any]]) -> int:
        for row in rows:
            self.write(row)
        return self.rows_written + len(self._buffer)

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self.rows_written += len(self._buffer)
            self._buffer = []

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def __enter__(self) -> ParquetRowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
