"""Reading data files: parquet, JSON or JSON lines, as veRL's datasets accept them, one batch in
memory at a time; and the columns the row checks read. The datasets and `star-verl doctor` read
with it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from star_verl.data.settings import DatasetError

FILE_SUFFIXES = (".parquet", ".json", ".jsonl")
# What the row checks read besides the text (prompt / messages) and image columns.
MEASURED_COLUMNS = ("data_source", "reward_model", "extra_info")


def check_file_format(path: str | os.PathLike) -> str:
    """The file's suffix, one of FILE_SUFFIXES; anything else is a DatasetError naming the file."""
    name = os.fspath(path)
    for suffix in FILE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise DatasetError(f"{name}: unsupported file format (expected .parquet, .json or .jsonl)")


def load_frame(path: str | os.PathLike):
    """One data file as a `datasets.Dataset`, loaded the way RLHFDataset loads it."""
    import datasets
    import pyarrow.parquet as pq

    path = os.fspath(path)
    if check_file_format(path) == ".parquet":
        if pq.read_metadata(path).num_rows == 0:  # `datasets` would fail with "corresponds to no data"
            raise DatasetError(f"{path}: no rows")
        return datasets.load_dataset("parquet", data_files=path)["train"]
    return datasets.load_dataset("json", data_files=path)["train"]


def file_columns(path: str | os.PathLike) -> list[str]:
    if check_file_format(path) == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    return list(load_frame(path).column_names)


def file_row_count(path: str | os.PathLike) -> int:
    if check_file_format(path) == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return load_frame(path).num_rows


def measured_columns(path: str | os.PathLike, text_key: str, image_key: str) -> list[str]:
    """The columns the row checks read from `path`; a DatasetError when a required one is missing
    (the image column is optional: a text-only file has none)."""
    names = file_columns(path)
    missing = [c for c in (text_key, *MEASURED_COLUMNS) if c not in names]
    if missing:
        raise DatasetError(f"{os.fspath(path)}: missing column(s) {missing}; columns are {sorted(names)}")
    return [c for c in (text_key, image_key, *MEASURED_COLUMNS) if c in names]


def iter_rows(path: str | os.PathLike, columns: Sequence[str] | None = None, batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """The file's rows (only `columns`, which the file must have, when given), in file order."""
    if check_file_format(path) == ".parquet":
        import pyarrow.parquet as pq

        selected = None if columns is None else list(columns)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=max(batch_size, 1), columns=selected):
            yield from batch.to_pylist()
        return
    frame = load_frame(path)
    names = list(frame.column_names) if columns is None else list(columns)
    for batch in frame.select_columns(names).iter(batch_size=batch_size):
        for values in zip(*(batch[c] for c in names), strict=True):
            yield dict(zip(names, values, strict=True))
