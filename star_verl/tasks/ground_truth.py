"""The ground truth of a row (`reward_model.ground_truth`, a JSON string): one schema for writing and
reading it.

- `parse_ground_truth(data_source, value)`: the typed ground truth of the data source's family
  (`TVRGroundTruth` or `MultiViewGroundTruth`, both immutable), from the JSON string, its decoded
  object or an already typed value; a bad one raises `GroundTruthError`.
- `ground_truth_json(value)`: the string a row stores. A typed ground truth is serialized from its
  fields (`to_dict`), so what a converter writes is exactly what the reward parses back.
- `GroundTruthError` carries the `problem` and the `sample` (its origin, split, index and question
  id) as fields: a caller that names the sample its own way (a file and row) uses the problem alone.
- The category fields a ground truth names (every ground truth's `task`, TVR's `view`) are read
  from the row's `extra_info` (`task`, `view`) when the ground truth lacks them: star-verl's
  converters write both places, rows written by other tools usually only `extra_info`. The ground
  truth wins where both are present. A multi-view ground truth without any task is scored (the
  reward does not depend on it; its task is then ""), except SPAR's numeric ones: SPAR-Bench's
  scorer reads the last number of the answer for the `_mv` tasks and the first for the others, so
  without the task there is no official score; that is an error naming the field to add.

Each family's JSON form (both directions) lives with its dataclass: `star_verl.tasks.tvr`,
`star_verl.tasks.multiview`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from star_verl.tasks.multiview import MultiViewGroundTruth, parse_multiview_ground_truth
from star_verl.tasks.registry import DATA_SOURCES
from star_verl.tasks.tvr import TVRGroundTruth, parse_tvr_ground_truth

GroundTruth = TVRGroundTruth | MultiViewGroundTruth


class GroundTruthError(ValueError):
    """A ground truth that cannot be scored: always a data bug, never a model's fault."""

    def __init__(self, problem: str, sample: str | None = None):
        super().__init__(f"{sample}: {problem}" if sample else problem)
        self.problem = problem
        self.sample = sample  # `sample_name` of the row, None where the caller did not say

    def __reduce__(self):  # pickled across processes (Ray workers) with both fields
        return type(self), (self.problem, self.sample)


def sample_name(extra_info: Mapping[str, Any] | None) -> str:
    """How errors name a row: its origin, split, index and question id, where given.

    >>> sample_name({"origin": "toy", "split": "train", "index": 3, "question_id": ""}), sample_name(None)
    ("sample(origin='toy', split='train', index=3)", 'sample(without extra_info)')
    """
    info = dict(extra_info or {})
    parts = [f"{key}={info[key]!r}" for key in ("origin", "split", "index", "question_id") if info.get(key) not in (None, "")]
    return "sample(" + ", ".join(parts) + ")" if parts else "sample(without extra_info)"


def _load(ground_truth: Any) -> dict[str, Any]:
    if isinstance(ground_truth, (TVRGroundTruth, MultiViewGroundTruth)):
        return ground_truth.to_dict()
    if isinstance(ground_truth, Mapping):
        return dict(ground_truth)
    if isinstance(ground_truth, (bytes, str)):
        try:
            value = json.loads(ground_truth)
        except json.JSONDecodeError as exc:
            raise GroundTruthError(f"ground truth is not JSON ({exc}): {str(ground_truth)[:200]!r}") from None
        if isinstance(value, dict):
            return value
    raise GroundTruthError(f"ground truth must be a JSON object, got {type(ground_truth).__name__}: {str(ground_truth)[:200]!r}")


def load_ground_truth(ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The decoded ground-truth object (from the parquet's JSON string, a decoded dict or a typed
    ground truth), before any check of its family."""
    try:
        return _load(ground_truth)
    except GroundTruthError as exc:
        raise GroundTruthError(exc.problem, sample_name(extra_info)) from None


CategoryFields = tuple[tuple[str, str], ...]  # (("task", ...), ("view", ...)): the row's extra_info values that are strings


def _category_fields(extra_info: Mapping[str, Any] | None) -> CategoryFields:
    info = extra_info or {}
    return tuple((key, info[key]) for key in ("task", "view") if isinstance(info.get(key), str) and info[key])


def _parse(data_source: str, ground_truth: Any, fields: CategoryFields = ()) -> GroundTruth:
    if data_source not in DATA_SOURCES:
        raise GroundTruthError(f"unknown data_source {data_source!r}; expected one of {DATA_SOURCES}")
    family = TVRGroundTruth if data_source == "tvr" else MultiViewGroundTruth
    if isinstance(ground_truth, (TVRGroundTruth, MultiViewGroundTruth)):
        if not isinstance(ground_truth, family):
            raise GroundTruthError(f"a {type(ground_truth).__name__} is not a {data_source} ground truth")
        return ground_truth
    gt = _load(ground_truth)
    from_row = {key: value for key, value in fields if key not in gt and (key == "task" or data_source == "tvr")}
    if from_row:
        gt = {**gt, **from_row}
    if data_source == "tvr" and "view" not in gt:
        raise GroundTruthError(
            f"bad tvr ground truth: no 'view' (keys: {sorted(gt)}); add 'view' (center, left or right) to the ground truth or to extra_info"
        )
    if data_source != "tvr" and "task" not in gt:
        gt = {**gt, "task": ""}
    try:
        parsed = parse_tvr_ground_truth(gt) if data_source == "tvr" else parse_multiview_ground_truth(gt)
    except (KeyError, TypeError, ValueError) as exc:
        raise GroundTruthError(f"bad {data_source} ground truth: {exc}") from None
    if data_source == "spar" and parsed.type == "numeric" and not parsed.task:
        raise GroundTruthError(
            "spar numeric ground truth without a task: add 'task' (the SPAR task, e.g. depth_prediction_oc_mv) to the ground truth "
            "or to extra_info; SPAR-Bench's scorer reads the last number of the answer for the _mv tasks and the first for the others"
        )
    return parsed


@functools.lru_cache(maxsize=4096)
def _parse_text(data_source: str, text: str, fields: CategoryFields) -> GroundTruth:
    return _parse(data_source, text, fields)


def parse_ground_truth(data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> GroundTruth:
    """The typed ground truth of a data source, its category fields (`task`, TVR's `view`) taken from
    `extra_info` where it lacks them; raise GroundTruthError naming the sample.

    The JSON strings of the parquet are parsed once per distinct string (and category fields): a
    GRPO group's responses (and every epoch) share their ground truth.

    >>> parse_ground_truth("mmsi", '{"type": "numeric", "answer": 2, "task": "toy"}').answer
    2.0
    >>> parse_ground_truth("mmsi", '{"type": "numeric", "answer": 2}', {"task": "toy"}).task  # the row's task
    'toy'
    >>> try:
    ...     parse_ground_truth("mmsi", '{"type": "numeric", "answer": "2", "task": "toy"}', {"index": 3})
    ... except GroundTruthError as exc:
    ...     print(exc.sample, "|", exc.problem)
    sample(index=3) | bad mmsi ground truth: numeric answer must be a finite number, got '2'
    """
    fields = _category_fields(extra_info)
    try:
        return _parse_text(data_source, ground_truth, fields) if isinstance(ground_truth, str) else _parse(data_source, ground_truth, fields)
    except GroundTruthError as exc:
        raise GroundTruthError(exc.problem, sample_name(extra_info)) from None


def validate_ground_truth(data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a ground truth for its data source and return it decoded (as written: the category
    fields taken from `extra_info` are not added); raise GroundTruthError naming the sample."""
    parse_ground_truth(data_source, ground_truth, extra_info)
    return load_ground_truth(ground_truth, extra_info)


def ground_truth_json(ground_truth: GroundTruth | Mapping[str, Any]) -> str:
    """The JSON string a row stores: a typed ground truth serialized from its fields; a mapping (a
    ground truth copied from another row) as it is.

    >>> ground_truth_json(MultiViewGroundTruth("numeric", 2, "toy"))
    '{"type": "numeric", "answer": 2.0, "references": [], "task": "toy"}'
    """
    value = ground_truth.to_dict() if isinstance(ground_truth, (TVRGroundTruth, MultiViewGroundTruth)) else ground_truth
    return json.dumps(value, ensure_ascii=False)
