"""A data file's rows without loading it whole: parquet streamed in batches, JSON lines, or a JSON
list of rows (the formats veRL's datasets read). The SFT dataset and `star-verl doctor` read with it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow.parquet as pq

from star_verl.data.common import DatasetError

FILE_SUFFIXES = (".parquet", ".json", ".jsonl")


def check_file_format(path: str | os.PathLike) -> str:
    """The file's suffix, one of FILE_SUFFIXES; anything else is a DatasetError naming the file."""
    name = os.fspath(path)
    for suffix in FILE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise DatasetError(f"{name}: unsupported file format (expected .parquet, .json or .jsonl)")


def _json_rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        if path.endswith(".jsonl"):
            return [json.loads(line) for line in f if line.strip()]
        rows = json.load(f)
    if not isinstance(rows, list):
        raise DatasetError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    return rows


def file_columns(path: str | os.PathLike) -> list[str]:
    path = os.fspath(path)
    if check_file_format(path) == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    return list(dict.fromkeys(key for row in _json_rows(path) for key in row))


def file_row_count(path: str | os.PathLike) -> int:
    path = os.fspath(path)
    if check_file_format(path) == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return len(_json_rows(path))


def iter_file_rows(path: str | os.PathLike, columns: Sequence[str] | None = None, batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """Each row as a dict, in file order; only `columns` (which the file must have) when given."""
    path = os.fspath(path)
    if check_file_format(path) == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=max(batch_size, 1), columns=None if columns is None else list(columns)):
            yield from batch.to_pylist()
        return
    for row in _json_rows(path):
        yield row if columns is None else {c: row[c] for c in columns}
