"""Reading data files: parquet, JSON or JSON lines, as veRL's RL dataset accepts them, and the
columns the row checks read."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from star_verl.data.settings import DatasetError

# What the row checks read besides the text (prompt / messages) and image columns.
MEASURED_COLUMNS = ("data_source", "reward_model", "extra_info")
_JSON = (".json", ".jsonl")


def load_frame(path: str | os.PathLike):
    """One data file as a `datasets.Dataset`, loaded the way RLHFDataset loads it."""
    import datasets
    import pyarrow.parquet as pq

    path = os.fspath(path)
    if path.endswith(".parquet"):
        if pq.read_metadata(path).num_rows == 0:  # `datasets` would fail with "corresponds to no data"
            raise DatasetError(f"{path}: no rows")
        return datasets.load_dataset("parquet", data_files=path)["train"]
    if path.endswith(_JSON):
        return datasets.load_dataset("json", data_files=path)["train"]
    raise DatasetError(f"{path}: unsupported file format (expected .parquet, .json or .jsonl)")


def measured_columns(path: str | os.PathLike, text_key: str, image_key: str) -> list[str]:
    """The columns the row checks read from `path`; a DatasetError when a required one is missing
    (the image column is optional: a text-only file has none)."""
    if os.fspath(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        names = list(pq.ParquetFile(path).schema_arrow.names)
    else:
        names = list(load_frame(path).column_names)
    missing = [c for c in (text_key, *MEASURED_COLUMNS) if c not in names]
    if missing:
        raise DatasetError(f"{os.fspath(path)}: missing column(s) {missing}; columns are {sorted(names)}")
    return [c for c in (text_key, image_key, *MEASURED_COLUMNS) if c in names]


def iter_rows(path: str | os.PathLike, columns: Sequence[str], batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """The file's rows (only `columns`), one batch in memory at a time."""
    if os.fspath(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=list(columns)):
            yield from batch.to_pylist()
        return
    frame = load_frame(path).select_columns(list(columns))
    for batch in frame.iter(batch_size=batch_size):
        for values in zip(*(batch[c] for c in columns), strict=True):
            yield dict(zip(columns, values, strict=True))
