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


def file_list(files: Any) -> list[str]:
    """A `data.*_files` value (one path, a list or ListConfig of paths, or None) as a list of path strings."""
    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        return [os.fspath(files)]
    return [os.fspath(f) if isinstance(f, os.PathLike) else str(f) for f in files]


def is_built(path: str) -> bool:
    """Whether a data file is there to read: it exists, or it is a remote URL (veRL fetches it)."""
    return "://" in path or os.path.exists(path)


def check_file_format(path: str | os.PathLike) -> str:
    """The suffix (one of FILE_SUFFIXES) of a data file that exists and is not empty; else a DatasetError
    naming the file and the cause: a directory, no such file, an empty file, an unsupported format.
    Every reader below starts here."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise DatasetError(f"{name}: is a directory, not a data file (give the .parquet, .json or .jsonl file itself)")
    suffix = next((s for s in FILE_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise DatasetError(f"{name}: unsupported file format (expected .parquet, .json or .jsonl)")
    if not os.path.exists(name):
        raise DatasetError(f"{name}: no such file")
    if os.path.getsize(name) == 0:
        raise DatasetError(f"{name}: empty file (0 bytes)")
    return suffix


def parquet_file(path: str | os.PathLike):
    """`pyarrow.parquet.ParquetFile` of a checked path; a corrupt file is a DatasetError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_file_format(path)
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{os.fspath(path)}: not a readable parquet file ({exc})") from None


def load_frame(path: str | os.PathLike):
    """One data file as a `datasets.Dataset`, loaded the way RLHFDataset loads it."""
    import datasets

    path = os.fspath(path)
    if check_file_format(path) == ".parquet":
        file_row_count(path, require_rows=True)  # `datasets` would fail with "corresponds to no data"
        return datasets.load_dataset("parquet", data_files=path)["train"]
    try:
        return datasets.load_dataset("json", data_files=path)["train"]
    except Exception as exc:  # noqa: BLE001 - datasets wraps the JSON parser's error in its own
        cause = exc
        while cause.__cause__ is not None or cause.__context__ is not None:  # the parser's own words
            cause = cause.__cause__ or cause.__context__
        raise DatasetError(f"{path}: not readable as JSON ({' '.join(f'{type(cause).__name__}: {cause}'.split())})") from None


def file_columns(path: str | os.PathLike) -> list[str]:
    if check_file_format(path) == ".parquet":
        return list(parquet_file(path).schema_arrow.names)
    return list(load_frame(path).column_names)


def file_row_count(path: str | os.PathLike, *, require_rows: bool = False) -> int:
    """The file's row count; with `require_rows`, no rows is a DatasetError naming the file."""
    n = parquet_file(path).metadata.num_rows if check_file_format(path) == ".parquet" else load_frame(path).num_rows
    if require_rows and n == 0:
        raise DatasetError(f"{os.fspath(path)}: no rows")
    return n


def measured_columns(path: str | os.PathLike, text_key: str, image_key: str) -> list[str]:
    """The columns the row checks read from `path`; a DatasetError when a required one is missing
    (the image column is optional: a text-only file has none)."""
    names = require_columns(path, (text_key, *MEASURED_COLUMNS))
    return [c for c in (text_key, image_key, *MEASURED_COLUMNS) if c in names]


def require_columns(path: str | os.PathLike, required: Sequence[str]) -> list[str]:
    """The file's columns; a DatasetError naming the file and every missing one (once for the file, never per row)."""
    names = file_columns(path)
    missing = [c for c in required if c not in names]
    if missing:
        raise DatasetError(f"{os.fspath(path)}: missing column(s) {missing}; columns are {sorted(names)}")
    return names


def iter_rows(path: str | os.PathLike, columns: Sequence[str] | None = None, batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """The file's rows (only `columns`, which the file must have, when given), in file order."""
    if check_file_format(path) == ".parquet":
        selected = None if columns is None else list(columns)
        for batch in parquet_file(path).iter_batches(batch_size=max(batch_size, 1), columns=selected):
            yield from batch.to_pylist()
        return
    frame = load_frame(path)
    names = list(frame.column_names) if columns is None else list(columns)
    for batch in frame.select_columns(names).iter(batch_size=batch_size):
        for values in zip(*(batch[c] for c in names), strict=True):
            yield dict(zip(names, values, strict=True))
