"""The one loading pipeline of `StarRLDataset` and `StarSFTDataset`: once the veRL base class has read
the files, every row of every file is validated and measured (cached), `max_samples` is applied
with veRL's rule, and the length limit decides what stays: an overlong row is an error, or dropped
and counted with `data.star.drop_overlong=true`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from star_verl.data.files import iter_rows, measured_columns
from star_verl.data.lengths import MeasureContext, cached_lengths
from star_verl.data.rows import problem_report
from star_verl.data.settings import DatasetError


@dataclass(frozen=True)
class LengthLimit:
    """The dataset's length rule: `value` tokens (`name`, the recipe key), over it an error unless `drop`."""

    value: int
    name: str  # data.max_prompt_length (RL) or data.max_length (SFT)
    drop: bool


def select_measured(ctx: MeasureContext, files: Sequence[str | os.PathLike], n_read: int, *, max_samples: int, shuffle: bool, seed: int | None,
                    limit: LengthLimit, owner: str, log=print, subset: Callable[[], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(positions kept among the `n_read` rows the base class read from `files`, in order; their lengths).
    `subset`, when given, picks the positions (once every row is validated) instead of `max_samples`."""
    lengths, origin = [], []
    for path in files:
        columns = measured_columns(path, ctx.prompt_key, ctx.image_key)
        file_lengths = cached_lengths(ctx, path, lambda path=path, columns=columns: iter_rows(path, columns), log=log)
        lengths.append(file_lengths)
        origin.extend((os.fspath(path), row) for row in range(len(file_lengths)))
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    if n_read != len(all_lengths):
        raise DatasetError(f"{owner}: read {n_read} rows but measured {len(all_lengths)} in {list(map(os.fspath, files))}")
    if n_read == 0:
        raise DatasetError(f"{owner}: no rows in {list(map(os.fspath, files))}")
    if subset is not None:
        positions = subset()
    else:
        positions = select_samples(n_read, max_samples, shuffle, seed)
        if len(positions) < n_read:
            log(f"selected {len(positions)} random samples out of {n_read}")
    kept = apply_length_limit(positions, all_lengths, lambda p: f"{origin[p][0]} row {origin[p][1]}", limit, owner, log=log)
    return kept, all_lengths[kept]


def select_samples(total: int, max_samples: int, shuffle: bool, seed: int | None) -> np.ndarray:
    """Row positions kept by `max_samples`, with veRL's rule (RLHFDataset / MultiTurnSFTDataset)."""
    if max_samples > 0 and max_samples < total:
        if shuffle:
            rng = np.random.default_rng(*((seed,) if seed is not None else ()))
            return rng.choice(total, size=max_samples, replace=False)
        return np.arange(max_samples)
    return np.arange(total)


def apply_length_limit(
    positions: np.ndarray, lengths: np.ndarray, describe: Callable[[int], str], limit: LengthLimit, owner: str, log=print
) -> np.ndarray:
    """The positions whose length fits the limit. An overlong row is an error listing every offender,
    unless `limit.drop` (data.star.drop_overlong), which drops them and prints the count. An empty
    result is always an error."""
    over = [int(p) for p in positions if lengths[p] > limit.value]
    if over:
        offenders = [f"{describe(p)}: {int(lengths[p])} tokens > {limit.name}={limit.value}" for p in over]
        headline = f"{owner}: {len(over)} of {len(positions)} sample(s) exceed {limit.name}={limit.value} after the pixel budget"
        if not limit.drop:
            raise DatasetError(
                problem_report(
                    headline + " (raise the limit, lower data.star.max_pixels / total_max_pixels, or set data.star.drop_overlong=true)", offenders
                )
            )
        log(problem_report(headline + "; dropped (data.star.drop_overlong=true)", offenders))
    kept = positions[lengths[positions] <= limit.value] if len(positions) else positions
    if len(kept) == 0:
        raise DatasetError(f"{owner}: no samples left ({len(positions)} selected, {len(over)} over {limit.name}={limit.value})")
    if not over:
        log(f"[star-verl] {owner}: {len(kept)} samples, all within {limit.name}={limit.value} (longest {int(lengths[kept].max())} tokens)")
    else:
        log(f"[star-verl] {owner}: dropped {len(over)} overlong sample(s), {len(kept)} left")
    return kept
