"""`StarRLDataset`: veRL's `RLHFDataset` with the recipe's template, pixel budget, validation and a
cached prompt-length filter (recipes: `data.custom_cls` = `pkg://star_verl.data.rl_dataset` / `StarRLDataset`).

- Rows hold the raw question (`prompt` = one user message); `data.star.template` is applied at load
  time, so one parquet serves every template.
- The AgentLoop loads a sample's images through `process_multi_modal_info` (in its own worker, with
  the data config): the pixel budget is applied there, per image and per sample.
- At start every row is validated (placeholders == images, every image decodes, the ground truth
  parses for its data source) and its prompt length computed with the budget's arithmetic, once per
  file and settings (cached next to the parquet). A prompt over `data.max_prompt_length` is an error,
  or dropped and counted with `data.star.drop_overlong=true`. veRL's `filter_overlong_prompts` is
  refused: it turns every per-sample error into "too long" and can empty a dataset silently.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pyarrow.parquet as pq
from verl.utils.dataset.rl_dataset import RLHFDataset

from star_verl.data.common import (
    DatasetError,
    MeasureContext,
    StarDataSettings,
    apply_length_limit,
    budget_images,
    cached_lengths,
    expand_placeholders,
    image_item,
    image_patch_size,
    raw_question,
    select_samples,
    template_messages,
)
from star_verl.data.files import check_file_format

_MEASURED_COLUMNS = ("data_source", "reward_model", "extra_info")
# Processor kwargs that would resize images behind the budget's back (and the cached lengths).
_PIXEL_KWARGS = ("min_pixels", "max_pixels", "size", "resized_height", "resized_width")


def _check_mm_processor_kwargs(config: Any) -> None:
    clash = sorted(set(config.get("mm_processor_kwargs") or {}) & set(_PIXEL_KWARGS))
    if clash:
        raise DatasetError(f"data.mm_processor_kwargs sets {clash}: set the pixel budget with data.star.min_pixels / max_pixels / total_max_pixels instead")


def _load_file(path: str) -> datasets.Dataset:
    """One data file, loaded the way RLHFDataset loads it."""
    if check_file_format(path) == ".parquet":
        if pq.read_metadata(path).num_rows == 0:  # `datasets` would fail with "corresponds to no data"
            raise DatasetError(f"{path}: no rows")
        return datasets.load_dataset("parquet", data_files=path)["train"]
    return datasets.load_dataset("json", data_files=path)["train"]


def _iter_rows(ds: datasets.Dataset, columns: list[str], batch_size: int = 256):
    for batch in ds.select_columns(columns).iter(batch_size=batch_size):
        for values in zip(*(batch[c] for c in columns), strict=True):
            yield dict(zip(columns, values, strict=True))


def check_data_config(config: Any) -> StarDataSettings:
    """The data-config checks StarRLDataset makes before it reads a file (`star-verl doctor` runs them too)."""
    settings = StarDataSettings.from_config(config)
    if config.get("filter_overlong_prompts", False):
        raise DatasetError(
            "data.filter_overlong_prompts=true: StarRLDataset measures every prompt itself (veRL's filter turns any "
            "per-sample error into 'too long' and can empty a dataset); set data.filter_overlong_prompts=false and "
            "choose with data.star.drop_overlong whether overlong prompts are an error (false) or dropped (true)"
        )
    _check_mm_processor_kwargs(config)
    return settings


class StarRLDataset(RLHFDataset):
    """RLHFDataset with star-verl's template, pixel budget, validation and cached length filter.
    Constructed as `verl.trainer.ppo.utils.create_rl_dataset` does."""

    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        self.star = check_data_config(config)
        super().__init__(data_files=data_files, tokenizer=tokenizer, config=config, processor=processor, max_samples=max_samples)

    def _measure_context(self) -> MeasureContext:
        patch = image_patch_size("rl", self.processor, self.config)
        return MeasureContext("rl", self.star, self.tokenizer, self.processor, self.prompt_key, self.image_key, dict(self.apply_chat_template_kwargs or {}), patch)

    def _read_files_and_tokenize(self) -> None:
        ctx = self._measure_context()
        frames, lengths, origins = [], [], []
        for file_index, path in enumerate(self.data_files):
            frame = _load_file(path)
            missing = [c for c in (self.prompt_key, *_MEASURED_COLUMNS) if c not in frame.column_names]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {missing}; columns are {frame.column_names}")
            columns = [c for c in (self.prompt_key, self.image_key, *_MEASURED_COLUMNS) if c in frame.column_names]
            lengths.append(cached_lengths(ctx, path, lambda frame=frame, columns=columns: _iter_rows(frame, columns)))
            origins.append(np.stack([np.full(len(frame), file_index), np.arange(len(frame))], axis=1))
            frames.append(frame)
        self.dataframe = datasets.concatenate_datasets(frames)
        all_lengths = np.concatenate(lengths)
        origin = np.concatenate(origins)
        total = len(self.dataframe)
        print(f"dataset len: {total}")
        if total == 0:
            raise DatasetError(f"StarRLDataset: no rows in {list(self.data_files)}")

        positions = select_samples(total, self.max_samples, self.shuffle, self.seed)
        if len(positions) < total:
            print(f"selected {len(positions)} random samples out of {total}")

        def describe(p: int) -> str:
            return f"{self.data_files[origin[p][0]]} row {origin[p][1]}"

        kept = apply_length_limit(positions, all_lengths, describe, int(self.max_prompt_length), "data.max_prompt_length", self.star.drop_overlong, "StarRLDataset")
        if not np.array_equal(kept, np.arange(total)):
            self.dataframe = self.dataframe.select(kept.tolist())
        self.prompt_lengths = all_lengths[kept]

    def maybe_filter_out_long_prompts(self, dataframe: datasets.Dataset = None):
        """Replaced by the measured filter of `_read_files_and_tokenize` (never veRL's error-swallowing one)."""
        return dataframe

    def _build_messages(self, example: dict, key: str):
        """The templated [system, user] messages, with RLHFDataset's content lists when the row has
        images. The image items stay undecoded (no `Image.open` per sample here, and only the PNG
        bytes travel to the AgentLoop): `process_multi_modal_info` decodes them at the budget."""
        question = raw_question(example[key], f"StarRLDataset sample with extra_info {example.get('extra_info')}")
        messages = template_messages(question, example["data_source"], self.star)
        images = example.get(self.image_key) or []
        if not images:
            return messages
        items = [image_item(entry) for entry in images]
        return [{"role": m["role"], "content": expand_placeholders(m["content"], items)} for m in messages]

    @classmethod
    def _process_multi_modal_info(cls, messages: list[dict], image_patch_size, config):
        """The sample's images at the recipe's pixel budget (the AgentLoop's multimodal step, and the
        processor then leaves them unchanged): per image, and the sample's total split over its images."""
        items = [
            item
            for message in messages
            if isinstance(message.get("content"), list)
            for item in message["content"]
            if isinstance(item, dict) and item.get("type") in ("image", "video", "audio")
        ]
        other = sorted({item["type"] for item in items} - {"image"})
        if other:
            raise DatasetError(f"StarRLDataset handles image prompts only, got {other} items")
        if not items:
            return None, None, None
        return budget_images(items, StarDataSettings.from_config(config), image_patch_size), None, None
