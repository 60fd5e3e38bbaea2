"""The benchmark metrics every `compute_score` call returns beside its family's reward
(`BENCHMARK_KEYS`), so that veRL's validation logs the numbers the paper reports, computed by the
per-sample code of `star-verl eval score` (`star_verl.tasks.tvr.tvr_sample_metrics`,
`star_verl.tasks.official.official_score`): the two agree exactly on the same generations.

- `official`: the benchmark's official per-sample score. TVR: TVR's strict accuracy (predictions
  applied in order, overlap and range checked at each step); MindCube: its extractor's verdict on
  the whole response; MMSI: the README extractor's verdict; SPAR: lmms-eval's accuracy, MRA or
  view-change metric. Its validation mean is the benchmark's micro accuracy (MindCube-Tiny's and
  MMSI-Bench's official overall; SPAR-Bench's official overall is the mean over its 20 tasks, which
  `eval score` reports).
- `ndiff` (TVR): diff / n_gt; its mean over a set is TVR's NDiff.
- `tacc`, `acc_id`, `acc_ood` (TVR): strict times the row's weight (`star_verl.tasks.tvr.view_weights`),
  from `extra_info["view_rows"]`, the validation set's TVR rows per view, which `StarRLDataset` adds
  to its validation rows. The weights make veRL's plain row mean equal TAcc (the mean of the three
  per-view accuracies), the center accuracy and the mean of the left and right accuracies, for any
  number of rows per view. Without `view_rows` (training rows, rows of other loaders) they are 0.0:
  they mean something only as validation means. Only their `mean@N` is the metric (a weighted row
  is no accuracy, so veRL's best@/worst@ statistics of them mean nothing).

What veRL 0.9.1 logs (`_val_metrics_update` in `verl/trainer/ppo/v1/trainer_base.py`): the mean of
every reward key per data source as `val-aux/<data_source>/<key>/mean@<n>` (`val-core/...` for
`acc`), `n` being `actor_rollout_ref.rollout.val_kwargs.n`: `validation_metric` names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from star_verl.rewards.base import BENCHMARK_KEYS
from star_verl.tasks.ground_truth import GroundTruth
from star_verl.tasks.official import official_score
from star_verl.tasks.tvr import VIEW_ROWS_KEY, TVRGroundTruth, tvr_sample_metrics, view_weights

# The keys whose validation means carry the paper's TVR numbers (TAcc, ID, OOD, NDiff, strict Acc).
TVR_VALIDATION_KEYS = ("tacc", "acc_id", "acc_ood", "ndiff", "official")
CORE_KEY = "acc"  # veRL's `val-core` variable (`_val_metrics_update`: "acc" when the reward returns it)


def validation_metric(data_source: str, key: str, n: int = 1) -> str:
    """The name veRL 0.9.1's validation logs the mean of reward key `key` over the rows of
    `data_source` under, with `n` responses per prompt (`val_kwargs.n`); e.g. `val-aux/tvr/tacc/mean@1`."""
    section = "val-core" if key == CORE_KEY else "val-aux"
    return f"{section}/{data_source}/{key}/mean@{n}"


def benchmark_terms(data_source: str, solution_str: Any, gt: GroundTruth, extra_info: Mapping[str, Any] | None) -> dict[str, float]:
    """BENCHMARK_KEYS for one response (0.0 where a key does not apply). Never raises on the response."""
    out = dict.fromkeys(BENCHMARK_KEYS, 0.0)
    if isinstance(gt, TVRGroundTruth):
        metrics = tvr_sample_metrics(solution_str, gt)
        strict = metrics["strict"]
        out.update(official=strict, ndiff=metrics["ndiff"])
        view_rows = (extra_info or {}).get(VIEW_ROWS_KEY)
        if view_rows:
            tacc, acc_id, acc_ood = view_weights(gt.view, view_rows)
            out.update(tacc=tacc * strict, acc_id=acc_id * strict, acc_ood=acc_ood * strict)
        return out
    out["official"] = official_score(data_source, solution_str, gt).value
    return out
