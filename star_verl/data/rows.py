"""Row checks: every row of a data file is validated at start, and a bad row is named by file, row
and question id, with every bad row of the file listed together."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from star_verl.data.settings import DatasetError, StarDataSettings
from star_verl.pixels import BudgetError
from star_verl.prompts import IMAGE_PART, PromptError, open_image, prompt_messages, raw_conversation, raw_question
from star_verl.rewards import GroundTruthError, validate_ground_truth

MAX_LISTED_PROBLEMS = 20


def row_where(file: str | os.PathLike, row: int, extra_info: Any = None) -> str:
    where = f"{os.fspath(file)} row {row}"
    if isinstance(extra_info, Mapping) and extra_info.get("question_id") not in (None, ""):
        where += f" (question_id {extra_info['question_id']!r})"
    return where


def problem_report(headline: str, problems: Sequence[str]) -> str:
    shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
    more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
    return f"{headline}:\n  {shown}{more}"


def check_row(
    kind: str, row: Mapping[str, Any], where: str, settings: StarDataSettings, *, text_key: str, image_key: str, has_processor: bool
) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """(messages as the chat template renders them, each image's decoded size) of a valid row, for
    `kind` "rl" (prompt) or "sft" (the whole conversation); else a DatasetError naming the row."""
    data_source = row.get("data_source")
    reward_model = row.get("reward_model")
    if not isinstance(reward_model, Mapping) or "ground_truth" not in reward_model:
        raise DatasetError(f"{where}: reward_model must be a struct with a ground_truth, got {reward_model!r:.120}")
    try:
        validate_ground_truth(data_source, reward_model["ground_truth"], row.get("extra_info"))
    except GroundTruthError as exc:
        raise DatasetError(f"{where}: {exc.problem}") from None
    images = list(row.get(image_key) or [])
    try:
        if kind == "rl":
            question, response = raw_question(row.get(text_key)), None
        else:
            question, response = raw_conversation(row.get(text_key))
        messages = prompt_messages(settings.template_for(data_source), question, [IMAGE_PART] * len(images), response=response)
        settings.budget.image_range(len(images))
    except (PromptError, BudgetError) as exc:
        raise DatasetError(f"{where}: {exc}") from None
    if images and not has_processor:
        raise DatasetError(f"{where}: the row has images but the model has no multimodal processor (verl.utils.hf_processor returned None)")
    return messages, decode_sizes(images, where)


def decode_sizes(entries: Sequence[Any], where: str) -> list[tuple[int, int]]:
    sizes = []
    for k, entry in enumerate(entries):
        try:
            image = open_image(entry)
            image.load()  # decode every pixel: a truncated file fails here, not in a rollout
        except Exception as exc:  # noqa: BLE001 - any decoder error is the same data bug
            raise DatasetError(f"{where}: image {k} does not decode ({type(exc).__name__}: {exc})") from None
        sizes.append(image.size)
    return sizes
