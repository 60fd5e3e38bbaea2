"""`StarSFTDataset`: veRL's `MultiTurnSFTDataset` with the same template, pixel budget and validation
as `StarRLDataset` (recipe `star_r1_sft`: `data.custom_cls` = `pkg://star_verl.data.sft_dataset` / `StarSFTDataset`).

Rows hold `messages` = [raw user question, assistant chain of thought]; the system and user text come
from `star_verl.prompts.prompt_messages`, the builder the RL dataset uses, so the prompt the model is
trained on here is the prompt it is given in RL and evaluation. Every row is validated and its full
length (prompt + response) measured at start by the RL dataset's pipeline (`star_verl.data.loading`),
cached like the RL lengths; a row over `data.max_length` is an error (veRL would only fail when the
batch reaches it, or truncate image tokens away), or dropped and counted with `data.star.drop_overlong=true`.
"""

from __future__ import annotations

from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
from verl.utils.py_functional import convert_nested_value_to_list_recursive

from star_verl.data.files import measured_columns
from star_verl.data.lengths import MeasureContext
from star_verl.data.loading import LengthLimit, select_measured
from star_verl.data.settings import DatasetError, check_data_config
from star_verl.pixels import dataset_patch_size
from star_verl.prompts import PromptError, budget_images, prompt_messages, raw_conversation


class StarSFTDataset(MultiTurnSFTDataset):
    """MultiTurnSFTDataset with star-verl's template, pixel budget, validation and length check.
    Constructed as `verl.trainer.sft_trainer.create_sft_dataset` does (`parquet_files=`)."""

    def __init__(self, parquet_files, tokenizer, config, processor=None, max_samples: int = -1):
        config = config or {}
        self.star = check_data_config(config, "sft")
        self.star_patch_size = dataset_patch_size("sft", processor, config)
        super().__init__(parquet_files, tokenizer, config, processor=processor, max_samples=max_samples)

    def _read_files_and_process(self) -> None:
        # Each file checked as a whole first (a directory, empty, corrupt, a missing column: one error
        # naming it), since veRL's pandas reader would fail on it with a bare KeyError or pyarrow's text.
        for path in self.parquet_files:
            measured_columns(path, self.messages_key, self.image_key)
        # veRL's reader, on every row (max_samples is applied below, after validation, with veRL's rule).
        requested, self.max_samples = self.max_samples, -1
        try:
            super()._read_files_and_process()
        finally:
            self.max_samples = requested
        ctx = MeasureContext("sft", self.star, self.tokenizer, self.processor, self.messages_key, self.image_key,
                             dict(self.apply_chat_template_kwargs or {}), self.star_patch_size)  # fmt: skip
        limit = LengthLimit(int(self.max_length), "data.max_length", self.star.drop_overlong)
        kept, self.sample_lengths = select_measured(
            ctx,
            self.parquet_files,
            len(self.messages),
            max_samples=self.max_samples,
            shuffle=self.shuffle,
            seed=self.seed,
            limit=limit,
            owner="StarSFTDataset",
        )
        self.dataframe = self.dataframe.iloc[kept]
        self.messages = [self.messages[i] for i in kept]
        if self.tools is not None:
            self.tools = [self.tools[i] for i in kept]
        if self.enable_thinking is not None:
            self.enable_thinking = [self.enable_thinking[i] for i in kept]

    def _build_messages(self, example: dict):
        """[system, user, assistant] from the shared builder (text form), images decoded at the pixel
        budget, then MultiTurnSFTDataset's own placeholder expansion."""
        try:
            question, response = raw_conversation(convert_nested_value_to_list_recursive(example[self.messages_key]))
            messages = prompt_messages(self.star.template_for(example["data_source"]), question, response=response)
        except PromptError as exc:
            raise DatasetError(f"StarSFTDataset sample with extra_info {example.get('extra_info')}: {exc}") from None
        images = budget_images(list(example.get(self.image_key) or []), self.star.budget, self.star_patch_size)
        return super()._build_messages({**example, self.messages_key: messages, self.image_key: images})
