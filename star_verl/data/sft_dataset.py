"""`StarSFTDataset`: veRL's `MultiTurnSFTDataset` with the same template, pixel budget and validation
as `StarRLDataset` (recipe `star_r1_sft`: `data.custom_cls` = `pkg://star_verl.data.sft_dataset` / `StarSFTDataset`).

Rows hold `messages` = [raw user question, assistant chain of thought]; the system and user text come
from `star_verl.data.common.template_messages`, the function the RL dataset uses, so the prompt the
model is trained on here is the prompt it is given in RL and evaluation. Every row is validated and
its full length (prompt + response) measured at start, cached like the RL lengths; a row over
`data.max_length` is an error (veRL would only fail when the batch reaches it, or truncate image
tokens away), or dropped and counted with `data.star.drop_overlong=true`.
"""

from __future__ import annotations

import numpy as np
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
from verl.utils.py_functional import convert_nested_value_to_list_recursive

from star_verl.data.common import (
    DatasetError,
    MeasureContext,
    StarDataSettings,
    apply_length_limit,
    budget_images,
    cached_lengths,
    image_patch_size,
    raw_conversation,
    select_samples,
    template_messages,
)
from star_verl.data.files import file_columns, iter_file_rows
from star_verl.data.rl_dataset import _check_mm_processor_kwargs

_MEASURED_COLUMNS = ("data_source", "reward_model", "extra_info")


class StarSFTDataset(MultiTurnSFTDataset):
    """MultiTurnSFTDataset with star-verl's template, pixel budget, validation and length check.
    Constructed as `verl.trainer.sft_trainer.create_sft_dataset` does (`parquet_files=`)."""

    def __init__(self, parquet_files, tokenizer, config, processor=None, max_samples: int = -1):
        config = config or {}
        self.star = StarDataSettings.from_config(config)
        self.measured_patch_size = image_patch_size("sft", processor, config)  # veRL's image_patch_size rule, without None
        _check_mm_processor_kwargs(config)
        super().__init__(parquet_files, tokenizer, config, processor=processor, max_samples=max_samples)

    def _read_files_and_process(self) -> None:
        # veRL's reader, on every row (max_samples is applied below, after validation, with veRL's rule).
        requested, self.max_samples = self.max_samples, -1
        try:
            super()._read_files_and_process()
        finally:
            self.max_samples = requested
        ctx = MeasureContext("sft", self.star, self.tokenizer, self.processor, self.messages_key, self.image_key, dict(self.apply_chat_template_kwargs or {}), self.measured_patch_size)
        lengths, origin = [], []
        for path in self.parquet_files:
            names = set(file_columns(path))
            missing = [c for c in (self.messages_key, *_MEASURED_COLUMNS) if c not in names]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {missing}; columns are {sorted(names)}")
            columns = [c for c in (self.messages_key, self.image_key, *_MEASURED_COLUMNS) if c in names]
            file_lengths = cached_lengths(ctx, path, lambda path=path, columns=columns: iter_file_rows(path, columns))
            lengths.extend(file_lengths.tolist())
            origin.extend((path, row) for row in range(len(file_lengths)))
        total = len(self.messages)
        if total != len(lengths):
            raise DatasetError(f"StarSFTDataset: read {total} rows but measured {len(lengths)} in {list(self.parquet_files)}")
        if total == 0:
            raise DatasetError(f"StarSFTDataset: no rows in {list(self.parquet_files)}")
        positions = select_samples(total, self.max_samples, self.shuffle, self.seed)
        if len(positions) < total:
            print(f"selected {len(positions)} random samples out of {total}")
        kept = apply_length_limit(
            positions, np.asarray(lengths), lambda p: f"{origin[p][0]} row {origin[p][1]}", int(self.max_length), "data.max_length",
            self.star.drop_overlong, "StarSFTDataset",
        )
        self.sample_lengths = np.asarray(lengths)[kept]
        self.dataframe = self.dataframe.iloc[kept]
        self.messages = [self.messages[i] for i in kept]
        if self.tools is not None:
            self.tools = [self.tools[i] for i in kept]
        if self.enable_thinking is not None:
            self.enable_thinking = [self.enable_thinking[i] for i in kept]

    def _build_messages(self, example: dict):
        """[system, user, assistant] from the shared template, images decoded at the pixel budget,
        then MultiTurnSFTDataset's own placeholder expansion."""
        question, response = raw_conversation(
            convert_nested_value_to_list_recursive(example[self.messages_key]), f"StarSFTDataset sample with extra_info {example.get('extra_info')}"
        )
        messages = template_messages(question, example["data_source"], self.star) + [{"role": "assistant", "content": response}]
        images = budget_images(list(example.get(self.image_key) or []), self.star, self.image_patch_size)
        return super()._build_messages({**example, self.messages_key: messages, self.image_key: images})
