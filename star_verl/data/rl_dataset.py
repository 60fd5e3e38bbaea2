"""`StarRLDataset`: veRL's `RLHFDataset` with the recipe's template, pixel budget, validation and a
cached prompt-length filter (recipes: `data.custom_cls` = `pkg://star_verl.data.rl_dataset` / `StarRLDataset`).

- Rows hold the raw question (`prompt` = one user message); `data.star.template` is applied at load
  time (`star_verl.prompts`), so one parquet serves every template.
- The AgentLoop loads a sample's images through `process_multi_modal_info` (in its own worker, with
  the data config): the pixel budget is applied there, per image and per sample.
- At start every row is validated (placeholders == images, every image decodes, the ground truth
  parses for its data source) and its prompt length computed with the budget's arithmetic, once per
  file and settings (cached next to the parquet). A prompt over `data.max_prompt_length` is an error,
  or dropped and counted with `data.star.drop_overlong=true`. veRL's `filter_overlong_prompts` is
  refused: it turns every per-sample error into "too long" and can empty a dataset silently.
"""

from __future__ import annotations

import datasets
import numpy as np
from verl.utils.dataset.rl_dataset import RLHFDataset

from star_verl.data.files import load_frame
from star_verl.data.lengths import MeasureContext
from star_verl.data.loading import LengthLimit, select_measured
from star_verl.data.settings import DatasetError, StarDataSettings, check_data_config
from star_verl.pixels import dataset_patch_size
from star_verl.prompts import PromptError, budget_images, image_part, prompt_messages, raw_question


class StarRLDataset(RLHFDataset):
    """RLHFDataset with star-verl's template, pixel budget, validation and cached length filter.
    Constructed as `verl.trainer.ppo.utils.create_rl_dataset` does."""

    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        self.star = check_data_config(config, "rl")
        super().__init__(data_files=data_files, tokenizer=tokenizer, config=config, processor=processor, max_samples=max_samples)

    def _read_files_and_tokenize(self) -> None:
        self.dataframe = datasets.concatenate_datasets([load_frame(path) for path in self.data_files])
        print(f"dataset len: {len(self.dataframe)}")
        ctx = MeasureContext("rl", self.star, self.tokenizer, self.processor, self.prompt_key, self.image_key,
                             dict(self.apply_chat_template_kwargs or {}), dataset_patch_size("rl", self.processor, self.config))  # fmt: skip
        limit = LengthLimit(int(self.max_prompt_length), "data.max_prompt_length", self.star.drop_overlong)
        kept, self.prompt_lengths = select_measured(
            ctx,
            self.data_files,
            len(self.dataframe),
            max_samples=self.max_samples,
            shuffle=self.shuffle,
            seed=self.seed,
            limit=limit,
            owner="StarRLDataset",
        )
        if not np.array_equal(kept, np.arange(len(self.dataframe))):
            self.dataframe = self.dataframe.select(kept.tolist())

    def maybe_filter_out_long_prompts(self, dataframe: datasets.Dataset = None):
        """Replaced by the measured filter of `_read_files_and_tokenize` (never veRL's error-swallowing one)."""
        return dataframe

    def _build_messages(self, example: dict, key: str):
        """The templated [system, user] messages, with RLHFDataset's content lists when the row has
        images. The image items stay undecoded (no `Image.open` per sample here, and only the PNG
        bytes travel to the AgentLoop): `process_multi_modal_info` decodes them at the budget."""
        try:
            question = raw_question(example[key])
            images = example.get(self.image_key) or []
            return prompt_messages(self.star.template_for(example["data_source"]), question, [image_part(entry) for entry in images])
        except PromptError as exc:
            raise DatasetError(f"StarRLDataset sample with extra_info {example.get('extra_info')}: {exc}") from None

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
        return budget_images(items, StarDataSettings.from_config(config).budget, image_patch_size), None, None
