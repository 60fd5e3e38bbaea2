"""What `StarRLDataset` does for the validation set only: leave out validation files that were not
built, bound in-training validation to a fixed stratified subset, and count the set's TVR rows per
view for the TAcc reward keys.

The validation set is the one built from `data.val_files`: veRL's trainer calls
`create_rl_dataset(config.data.val_files, config.data, ...)` (`_init_dataloader` of
`verl/trainer/ppo/v1/trainer_base.py`), so a file list equal to `data.val_files` and different from
`data.train_files` is the validation set. When both lists are the same, the set is taken as the
training set (nothing here applies) and one line says so.

- `data.star.skip_missing_val_files` (bool, default false): a validation file that does not exist
  is left out with one printed line naming it; none left is an error. The multi-view recipe lists
  every converted benchmark, so a run validates on the benchmarks that were built.
- `data.star.val_subset` (int or null, default null): in-training validation on a fixed stratified
  subset of that many rows (`stratified_subset`, seed `VAL_SUBSET_SEED`): the same rows at every
  validation and every run. `star-verl eval generate` / `eval score` still score the full test split.
  veRL's own `data.val_max_samples` (a random or leading subset) is refused beside it.
- `view_rows`: the kept rows' TVR rows per view; every validation row gets it in its
  `extra_info` (`star_verl.tasks.tvr.VIEW_ROWS_KEY`), which veRL passes to `compute_score`
  (`star_verl.rewards.benchmark`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from star_verl.data.files import file_list, is_built, iter_rows
from star_verl.data.settings import DatasetError, StarDataSettings
from star_verl.rewards import parse_ground_truth
from star_verl.tasks.ground_truth import GroundTruthError
from star_verl.tasks.tvr import VIEWS, TVRGroundTruth

VAL_SUBSET_SEED = 0
STRATUM_COLUMNS = ("data_source", "reward_model", "extra_info")


def is_validation_set(data_files: Any, data_config: Mapping[str, Any], settings: StarDataSettings, log: Callable[[str], None] = print) -> bool:
    """Whether `data_files` is the validation set (see the module docstring)."""
    files = file_list(data_files)
    if data_config.get("val_files") is None or files != file_list(data_config.get("val_files")):
        return False
    if files == file_list(data_config.get("train_files")):
        if settings.skip_missing_val_files or settings.val_subset is not None:
            log(
                "[star-verl] StarRLDataset: data.val_files is data.train_files, so this set is the training set: "
                "data.star.skip_missing_val_files and data.star.val_subset apply to a separate validation set only"
            )
        return False
    return True


def validation_files_left_out(files: Sequence[str]) -> list[str]:
    """The validation files `data.star.skip_missing_val_files` leaves out: those not built (`is_built`),
    when at least one is; none when none is (that is an error, which `present_validation_files` raises).
    smoke and doctor ask it which missing files are no error."""
    left_out = [path for path in files if not is_built(path)]
    return left_out if len(left_out) < len(files) else []


def present_validation_files(files: Sequence[str], log: Callable[[str], None] = print) -> list[str]:
    """The validation files that are built (`is_built`), one line per file left out."""
    left_out = validation_files_left_out(files)
    for path in left_out:
        log(f"[star-verl] StarRLDataset: validation file {path} was not built: left out of validation (data.star.skip_missing_val_files=true)")
    if not any(is_built(path) for path in files):
        raise DatasetError(
            f"StarRLDataset: none of data.val_files exists ({list(files)}); data.star.skip_missing_val_files leaves out the files "
            "that were not built, but validation needs at least one: build one or point data.val_files at an existing file"
        )
    return [path for path in files if path not in left_out]


def row_stratum(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """(data source, origin, view, number of transformations) of a TVR row; (data source, origin, task) otherwise."""
    info = row.get("extra_info") or {}
    source = row["data_source"]
    gt = parse_ground_truth(source, row["reward_model"]["ground_truth"], info)
    if isinstance(gt, TVRGroundTruth):
        return (source, str(info.get("origin", "")), gt.view, len(gt.transformations))
    return (source, str(info.get("origin", "")), gt.task)


def file_strata(files: Sequence[str]) -> list[tuple[Any, ...]]:
    """Every row's stratum, in the order the dataset concatenates the files."""
    out = []
    for path in files:
        for row_no, row in enumerate(iter_rows(path, STRATUM_COLUMNS)):
            try:
                out.append(row_stratum(row))
            except GroundTruthError as exc:
                raise DatasetError(f"{path} row {row_no}: {exc.problem}") from None
    return out


def _equal_shares(sizes: Mapping[Any, int], total: int) -> dict[Any, int]:
    """`total` split as evenly as the group sizes allow (a group smaller than its share gives the rest away)."""
    shares, left = {}, total
    ordered = sorted(sizes, key=lambda g: (sizes[g], str(g)))
    for i, group in enumerate(ordered):
        shares[group] = min(sizes[group], left // (len(ordered) - i))
        left -= shares[group]
    return shares


def _proportional(sizes: Mapping[Any, int], total: int) -> dict[Any, int]:
    """`total` (at most the sum of `sizes`) split in proportion to `sizes`, largest remainders first."""
    whole = sum(sizes.values())
    exact = {s: total * n / whole for s, n in sizes.items()}
    counts = {s: int(x) for s, x in exact.items()}
    for s in sorted(sizes, key=lambda s: (-(exact[s] - counts[s]), str(s)))[: total - sum(counts.values())]:
        counts[s] += 1
    return counts


def stratified_subset(strata: Sequence[tuple[Any, ...]], size: int, seed: int = VAL_SUBSET_SEED) -> np.ndarray:
    """Sorted positions of a stratified sample of `size` rows (all rows when there are not more).

    Each data source (a stratum's first element: each is one curve of veRL's validation) gets an
    equal share; within a data source the strata (origin and view and number of transformations,
    or origin and task) get rows in proportion to their size, so the subset keeps the split's
    composition; within a stratum the rows are drawn at random with `seed`. The same file gives
    the same subset every time."""
    n = len(strata)
    if size >= n:
        return np.arange(n)
    members: dict[tuple[Any, ...], list[int]] = {}
    for pos, stratum in enumerate(strata):
        members.setdefault(stratum, []).append(pos)
    by_source = Counter(stratum[0] for stratum in strata)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for source, share in sorted(_equal_shares(by_source, size).items(), key=lambda item: str(item[0])):
        keys = sorted((k for k in members if k[0] == source), key=str)
        for key, k in zip(keys, _proportional({key: len(members[key]) for key in keys}, share).values(), strict=True):
            chosen.extend(np.asarray(members[key])[rng.choice(len(members[key]), size=k, replace=False)].tolist())
    return np.sort(np.asarray(chosen, dtype=np.int64))


def view_rows(strata: Iterable[tuple[Any, ...]]) -> dict[str, int]:
    """TVR rows per view among the given strata (every view, 0 where absent)."""
    counts = Counter(stratum[2] for stratum in strata if stratum[0] == "tvr")
    return {view: counts.get(view, 0) for view in VIEWS}
