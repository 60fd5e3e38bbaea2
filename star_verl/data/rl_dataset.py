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
- The validation set (the one built from `data.val_files`; `star_verl.data.validation`): files not
  built are left out with `data.star.skip_missing_val_files=true`, `data.star.val_subset` bounds it
  to a fixed stratified subset, and every row's `extra_info` gets `view_rows` (the set's TVR rows
  per view), from which `compute_score` weights the TAcc / ID / OOD reward keys. This is the one
  key beyond the parquet contract's seven (`star_verl.prep.schema.EXTRA_INFO_KEYS`): added at load
  time, never stored, and only on validation rows.
"""

from __future__ import annotations

import datasets
import numpy as np
from verl.utils.dataset.rl_dataset import RLHFDataset

from star_verl.data.files import file_list, load_frame
from star_verl.data.lengths import MeasureContext
from star_verl.data.loading import LengthLimit, select_measured
from star_verl.data.settings import DatasetError, StarDataSettings, check_data_config
from star_verl.data.validation import VAL_SUBSET_SEED, file_strata, is_validation_set, present_validation_files, stratified_subset, view_rows
from star_verl.pixels import dataset_patch_size
from star_verl.prompts import PromptError, budget_images, image_part, prompt_messages, raw_question
from star_verl.tasks.tvr import VIEW_ROWS_KEY


class StarRLDataset(RLHFDataset):
    """RLHFDataset with star-verl's template, pixel budget, validation and cached length filter.
    Constructed as `verl.trainer.ppo.utils.create_rl_dataset` does."""

    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        self.star = check_data_config(config, "rl")
        self.is_validation = is_validation_set(data_files, config, self.star)
        self.view_rows: dict[str, int] | None = None  # validation only: TVR rows per view of the kept rows
        if self.is_validation:
            if self.star.skip_missing_val_files:
                data_files = present_validation_files(file_list(data_files))
            if self.star.val_subset is not None and max_samples > 0:
                raise DatasetError(
                    f"data.val_max_samples={max_samples} and data.star.val_subset={self.star.val_subset} both bound the validation set: "
                    "set data.val_max_samples=-1 (data.star.val_subset picks a fixed stratified subset)"
                )
        super().__init__(data_files=data_files, tokenizer=tokenizer, config=config, processor=processor, max_samples=max_samples)

    def _read_files_and_tokenize(self) -> None:
        self.dataframe = datasets.concatenate_datasets([load_frame(path) for path in self.data_files])
        print(f"dataset len: {len(self.dataframe)}")
        ctx = MeasureContext("rl", self.star, self.tokenizer, self.processor, self.prompt_key, self.image_key,
                             dict(self.apply_chat_template_kwargs or {}), dataset_patch_size("rl", self.processor, self.config))  # fmt: skip
        limit = LengthLimit(int(self.max_prompt_length), "data.max_prompt_length", self.star.drop_overlong)
        strata = file_strata(self.data_files) if self.is_validation else None
        kept, self.prompt_lengths = select_measured(
            ctx,
            self.data_files,
            len(self.dataframe),
            max_samples=self.max_samples,
            shuffle=self.shuffle,
            seed=self.seed,
            limit=limit,
            owner="StarRLDataset",
            subset=(lambda: self._validation_subset(strata)) if self.is_validation and self.star.val_subset is not None else None,
        )
        if not np.array_equal(kept, np.arange(len(self.dataframe))):
            self.dataframe = self.dataframe.select(kept.tolist())
        if strata is not None:
            self.view_rows = view_rows(strata[p] for p in kept)

    def _validation_subset(self, strata) -> np.ndarray:
        positions = stratified_subset(strata, self.star.val_subset)
        print(
            f"[star-verl] StarRLDataset: validation on {len(positions)} of {len(strata)} rows (data.star.val_subset={self.star.val_subset}: "
            f"a fixed subset, stratified by data source, origin, view and number of transformations or task; seed {VAL_SUBSET_SEED})"
        )
        return positions

    def __getitem__(self, item):
        row = super().__getitem__(item)
        if self.view_rows is not None:
            row["extra_info"] = {**row["extra_info"], VIEW_ROWS_KEY: self.view_rows}
        return row

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
