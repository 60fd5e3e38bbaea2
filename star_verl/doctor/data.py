"""doctor's data checks: the `data.*` settings the dataset class refuses, the model's processor, each
data file against the dataset's own row validation and length limit, the training steps per epoch,
the chat template with the recipe's prompt template, and `rollout.limit_images` against the data.

The one module of doctor that uses `star_verl.data` and the prompt assembly: the dataset's settings,
checks, file reader, patch-size rule and length measure, so that doctor checks what training runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from star_verl.data.files import file_list
from star_verl.data.validation import validation_files_left_out
from star_verl.doctor.context import FAIL, PASS, SKIP, Check, Context, DataSample, Model, short


def _star_dataset(ctx: Context) -> bool:
    custom = ctx.recipe.cfg.data.get("custom_cls") or {}
    return str(custom.get("path") or "").startswith("pkg://star_verl.data.")


def check_data_settings(ctx: Context) -> tuple[Any, Check]:
    """Stage "data settings": `data.star` and the other keys the dataset class checks before it reads a file."""
    if not _star_dataset(ctx):
        return None, Check("data settings", SKIP, "data.custom_cls is not a star-verl dataset")
    from star_verl.data.settings import DatasetError, StarDataSettings, check_data_config

    data = ctx.recipe.cfg.data
    try:
        settings = check_data_config(data) if ctx.recipe.rl else StarDataSettings.from_config(data)
    except DatasetError as exc:
        return None, Check("data settings", FAIL, str(exc), "fix the data.* key named in the message")
    total = f", {settings.total_max_pixels} per sample" if settings.total_max_pixels else ""
    overlong = "dropped" if settings.drop_overlong else "an error"
    return settings, Check(
        "data settings",
        PASS,
        f"template {settings.template}; {settings.min_pixels}..{settings.max_pixels} pixels per image{total}; overlong prompts are {overlong}",
    )


def load_model(ctx: Context) -> tuple[Model | None, Check]:
    """Stage "model processor": the tokenizer and processor veRL loads from the recipe's model path."""
    key = f"{ctx.recipe.model_key}.path"
    try:
        path = str(ctx.recipe.model.path)
    except Exception as exc:  # noqa: BLE001 - MissingMandatoryValue for '???', an unset ${oc.env:...}
        return None, Check(
            "model processor",
            FAIL,
            f"{key} is not set ({short(exc, 150)})",
            f"pass {key}=<checkpoint> (star_r1_mv: the SFT checkpoint's huggingface folder)",
        )
    from transformers import AutoProcessor, AutoTokenizer

    from star_verl.model_path import model_source

    problem, local_only = model_source(path)
    if problem is not None:
        return None, Check(
            "model processor", FAIL, problem, f"set {key} to a local Hugging Face folder (star-verl tiny-model DIR writes a tiny one for CPU checks)"
        )
    trust = bool(ctx.recipe.cfg.data.get("trust_remote_code", False))
    tokenizer = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust, local_files_only=local_only)
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - veRL's hf_processor would swallow this and return None
        if "torchvision" in str(exc).lower():
            fix = "install torchvision (see its row); veRL's hf_processor returns None on this error and image samples are dropped"
        else:
            fix = f"set {key} to a local Hugging Face folder, or a hub id this node can download (or find in HF_HOME's cache)"
        return Model(tokenizer), Check("model processor", FAIL, f"{path}: {short(exc, 400)}", fix)
    if getattr(processor, "image_processor", None) is None:
        return Model(tokenizer), Check(
            "model processor",
            FAIL,
            f"{path}: {type(processor).__name__} has no image processor (not a vision-language model)",
            "use a Qwen2.5-VL checkpoint",
        )
    return Model(tokenizer, processor), Check(
        "model processor", PASS, f"{path}: {type(processor).__name__} / {type(processor.image_processor).__name__}"
    )


def _processor(ctx: Context) -> Any:
    return ctx.model.processor if ctx.model is not None else None


# ---------------------------------------------------------------------------------------------
# data files


def _layout(ctx: Context) -> tuple[str, str, str, str]:
    """(kind, text column, image column, length key) of the recipe's dataset."""
    data = ctx.recipe.cfg.data
    if ctx.recipe.rl:
        return "rl", str(data.get("prompt_key", "prompt")), str(data.get("image_key", "images")), "data.max_prompt_length"
    return "sft", str(data.get("messages_key", "messages")), str(data.get("image_key", "images")), "data.max_length"


def _read_sample(path: str, text_key: str, image_key: str, rows: int | None) -> tuple[list[dict[str, Any]], int, list[int]]:
    """(first `rows` rows, every row when None; row count; placeholder count of every row), with the
    datasets' file reader. Only the text column is read whole."""
    from star_verl.data.files import file_row_count, iter_rows, measured_columns
    from star_verl.templates import IMAGE_PLACEHOLDER

    def count(value: Any) -> int:
        if isinstance(value, str):
            return value.count(IMAGE_PLACEHOLDER)
        if isinstance(value, list):  # chat messages
            return sum(count(m.get("content")) if isinstance(m, Mapping) else 0 for m in value)
        return 0

    total = file_row_count(path, require_rows=True)
    measured_columns(path, text_key, image_key)  # a missing column is one error for the file, not one per row
    sample = list(iter_rows(path)) if rows is None else list(islice(iter_rows(path, batch_size=rows), rows))
    counts = [count(r[text_key]) for r in iter_rows(path, [text_key])]
    return sample, total, counts


def _check_rows(ctx: Context, name: str, path: str, rows: list[dict[str, Any]], total: int, image_counts: list[int]) -> Check:
    """A file's first rows against the dataset's own validation and length limit."""
    kind, text_key, image_key, length_key = _layout(ctx)
    if not _star_dataset(ctx):
        return Check(name, PASS, f"{total} rows; parsed (row validation skipped: data.custom_cls is not a star-verl dataset)")
    processor = _processor(ctx)
    if processor is None and any(image_counts):
        return Check(name, SKIP, f"{total} rows; row validation needs the model's processor, which did not load")
    settings = ctx.data_settings
    if settings is None:
        return Check(name, SKIP, f"{total} rows; row validation needs valid data settings (see above)")
    from star_verl.data.lengths import MeasureContext, measure_rows
    from star_verl.data.settings import DatasetError
    from star_verl.pixels import dataset_patch_size

    data = ctx.recipe.cfg.data
    tokenizer = ctx.model.tokenizer if ctx.model is not None else None
    measure = MeasureContext(
        kind,
        settings,
        tokenizer,
        processor,
        text_key,
        image_key,
        dict(data.get("apply_chat_template_kwargs") or {}),
        dataset_patch_size(kind, processor, data),
    )
    try:
        lengths = measure_rows(measure, rows, path)
    except DatasetError as exc:
        return Check(name, FAIL, str(exc), f"fix the rows named, or rebuild {Path(path).name} with {build_hint(ctx)}")
    limit = int(data.max_prompt_length if kind == "rl" else data.max_length)
    checked = f"all {total} rows" if len(rows) == total else f"a sample: the first {len(rows)} of {total} rows (--rows all checks every row)"
    over = [i for i, n in enumerate(lengths.tolist()) if n > limit]
    if over and not settings.drop_overlong:
        return Check(
            name,
            FAIL,
            f"rows {over[:10]} exceed {length_key}={limit} (longest {int(lengths.max())} tokens); checked {checked}",
            f"raise {length_key}, lower data.star.max_pixels / total_max_pixels, or set data.star.drop_overlong=true",
        )
    if over:
        return Check(name, PASS, f"{len(over)} row(s) over {length_key}={limit} will be dropped (data.star.drop_overlong); checked {checked}")
    return Check(name, PASS, f"valid: {checked}; longest {int(lengths.max()) if len(lengths) else 0} tokens <= {length_key}={limit}")


def build_hint(ctx: Context) -> str:
    """The command(s) that build the recipe's data: SFT conversations come from `star-verl generate-cot`
    on build-multiview's SFT pool, multi-view RL data from build-multiview, TVR from build-tvr."""
    if not ctx.recipe.rl:
        return (
            "star-verl build-multiview ... --out $STAR_VERL_DATA/multiview (writes sft_pool.parquet), then "
            "star-verl generate-cot --in $STAR_VERL_DATA/multiview/sft_pool.parquet --out $STAR_VERL_DATA/sft --base-url URL --model NAME"
        )
    if ctx.data_settings is not None and ctx.data_settings.template == "tvr":
        return "star-verl build-tvr --synthetic 20000 --out $STAR_VERL_DATA/tvr (or --trance DIR)"
    return "star-verl build-multiview --mindcube DIR --spar DIR --out $STAR_VERL_DATA/multiview (--benchmarks for the validation sets)"


def read_data(ctx: Context) -> tuple[DataSample | None, list[Check]]:
    """Stage "data files": each train and val file once: it exists, its rows are counted (and the
    images of each), its first rows validated. A file's unexpected error is its own failure."""
    from star_verl.data.settings import DatasetError

    data = ctx.recipe.cfg.data
    files = {"data.train_files": file_list(data.get("train_files")), "data.val_files": file_list(data.get("val_files"))}
    if not any(files.values()):
        return None, [Check("data files", FAIL, "data.train_files is not set", "pass data.train_files=PATH (and data.val_files=PATH)")]
    _, text_key, image_key, _ = _layout(ctx)
    checks: list[Check] = []
    file_rows: dict[str, int] = {}
    max_images: int | None = None
    sources: set[str] = set()
    first_key: dict[str, str] = {}  # a file named twice is read once, under the key it came with first
    for key, paths in files.items():
        for path in paths:
            first_key.setdefault(path, key)
    # StarRLDataset leaves out the validation files that were not built (data.star.skip_missing_val_files), none left is an error
    left_out = validation_files_left_out(files["data.val_files"]) if getattr(ctx.data_settings, "skip_missing_val_files", False) else []
    for path, key in first_key.items():
        name = f"data {key.split('.')[-1].removesuffix('_files')}: {Path(path).name}"
        if key == "data.val_files" and path in left_out:
            checks.append(Check(name, PASS, f"{path} was not built: left out of validation (data.star.skip_missing_val_files=true)"))
            continue
        if not os.path.exists(path):
            checks.append(
                Check(
                    name,
                    FAIL,
                    f"{path} does not exist ({key})",
                    f"build it with {build_hint(ctx)}; or set STAR_VERL_DATA / {key}",
                )
            )
            continue
        try:
            rows, total, image_counts = _read_sample(path, text_key, image_key, ctx.options.rows)
            file_rows[path] = total
            if image_counts:
                max_images = max(max_images or 0, max(image_counts))
            sources |= {str(r.get("data_source")) for r in rows}
            checks.append(_check_rows(ctx, name, path, rows, total, image_counts))
        except DatasetError as exc:  # the file as a whole: a directory, empty, corrupt, a missing column
            checks.append(Check(name, FAIL, str(exc), f"give {key} the data file itself, or rebuild it with {build_hint(ctx)}"))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            checks.append(Check(name, FAIL, f"{path}: {short(exc)}", f"fix {path}, or rebuild it with {build_hint(ctx)}"))
    return DataSample(file_rows, max_images, frozenset(sources)), checks


def batch_sizes_for(rows: int, batch: int, mini_batch: int, group: int, gpus: int) -> tuple[int, int] | None:
    """(data.train_batch_size, actor.ppo_mini_batch_size) for a train set of `rows`, the largest at most
    the current ones that veRL 0.9.1 accepts together: the batch at most the rows (one step at least),
    batch x rollout.n divisible by the GPUs (validate_config), the mini-batch at most the batch, dividing
    it, and mini-batch x rollout.n divisible by the GPUs (the actor's data-parallel split). None: no
    batch fits the rows."""
    for b in range(min(rows, batch), 0, -1):
        if b * group % gpus:
            continue
        for m in range(min(mini_batch, b), 0, -1):
            if b % m == 0 and m * group % gpus == 0:
                return b, m
    return None


def check_training_steps(ctx: Context) -> list[Check]:
    """veRL's trainers run len(dataset) // data.train_batch_size steps per epoch (the last partial
    batch is dropped): a train set smaller than one batch trains nothing, without an error. The fix
    names every setting that must change with the batch, with values veRL accepts together."""
    if ctx.data is None:
        return []  # no data files named: "data files" says so
    cfg = ctx.recipe.cfg
    train_files = file_list(cfg.data.get("train_files"))
    if not train_files or any(f not in ctx.data.file_rows for f in train_files):
        return [Check("training steps", SKIP, "a train file could not be read")]
    rows = sum(ctx.data.file_rows[f] for f in train_files)
    limit = int(cfg.data.get("train_max_samples") or -1)
    if limit > 0:
        rows = min(rows, limit)
    batch, epochs = int(cfg.data.train_batch_size), int(cfg.trainer.total_epochs)
    steps = rows // batch
    detail = f"{rows} train rows // data.train_batch_size={batch} = {steps} step(s) per epoch x {epochs} epoch(s)"
    if steps > 0:
        return [Check("training steps", PASS, detail + (f"; {rows - steps * batch} row(s) left over each epoch" if rows % batch else ""))]
    if not ctx.recipe.rl:
        return [Check("training steps", FAIL, detail + ": nothing would be trained", f"lower data.train_batch_size to at most {rows}, or add data")]
    actor = cfg.actor_rollout_ref.actor
    group, gpus = int(cfg.actor_rollout_ref.rollout.n), int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    rule = (
        f"data.train_batch_size and actor_rollout_ref.actor.ppo_mini_batch_size (which divides it) times "
        f"actor_rollout_ref.rollout.n={group} must be divisible by the {gpus} GPU(s) of trainer.n_gpus_per_node x trainer.nnodes"
    )
    sizes = batch_sizes_for(rows, batch, int(actor.ppo_mini_batch_size), group, gpus)
    if sizes is None:
        fix = f"add data ({rule}: no batch of at most {rows} rows fits), or lower trainer.n_gpus_per_node"
    else:
        fix = f"set data.train_batch_size={sizes[0]} actor_rollout_ref.actor.ppo_mini_batch_size={sizes[1]} ({rule}), or add data"
    return [Check("training steps", FAIL, detail + ": nothing would be trained", fix)]


# ---------------------------------------------------------------------------------------------
# prompts


def _templates(ctx: Context) -> dict[str, Any]:
    """template name -> PromptTemplate for the data sources seen (every default one for `auto` without data)."""
    from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE

    settings = ctx.data_settings
    sources = ctx.data.sources if ctx.data is not None else frozenset()
    known = sorted(s for s in (sources or DEFAULT_TEMPLATE_FOR_SOURCE) if s in DEFAULT_TEMPLATE_FOR_SOURCE)
    templates = [settings.template_for(s) for s in known] if settings.template == "auto" else [settings.template_for("")]
    return {t.name: t for t in templates}


def check_chat_template(ctx: Context) -> Check:
    processor = _processor(ctx)
    if processor is None:
        return Check("chat template", SKIP, "the processor did not load")
    if ctx.data_settings is None:
        return Check("chat template", SKIP, "no valid star-verl data settings (data.star)")
    from verl.utils.tokenizer.chat_template import apply_chat_template

    from star_verl.prompts import IMAGE_PART, prompt_messages

    image_token = getattr(processor, "image_token", None)
    problems, names = [], []
    for name, template in _templates(ctx).items():
        names.append(name)
        messages = prompt_messages(template, "<image>Question?", [IMAGE_PART])
        kwargs = dict(ctx.recipe.cfg.data.get("apply_chat_template_kwargs") or {})
        try:
            text = apply_chat_template(processor, messages, tokenize=False, add_generation_prompt=True, **kwargs)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: does not render ({short(exc, 200)})")
            continue
        if template.system.strip() and template.system.strip() not in text:
            problems.append(f"{name}: the rendered prompt lacks the template's system text")
        if image_token and text.count(image_token) != 1:
            problems.append(f"{name}: one <image> rendered {text.count(image_token)} {image_token} tokens")
        if "Question?" not in text:
            problems.append(f"{name}: the question text is missing from the rendered prompt")
    if problems:
        return Check(
            "chat template",
            FAIL,
            "; ".join(problems),
            "use the model's own chat template (Qwen2.5-VL), or fix actor_rollout_ref.model.custom_chat_template / data.apply_chat_template_kwargs",
        )
    return Check("chat template", PASS, f"renders {', '.join(names)} (system text, 1 image, generation prompt)")


def check_limit_images(ctx: Context) -> Check:
    if not ctx.recipe.rl:
        return Check("rollout.limit_images", SKIP, "not an RL recipe")
    max_images = ctx.data.max_images if ctx.data is not None else None
    if max_images is None:
        return Check("rollout.limit_images", SKIP, "no data read")
    rollout = ctx.recipe.cfg.actor_rollout_ref.rollout
    limit = rollout.get("limit_images")
    if str(rollout.name) != "vllm":
        return Check("rollout.limit_images", SKIP, f"only vLLM uses it (rollout.name={rollout.name}); largest image count {max_images}")
    if limit is None and max_images > 1:
        return Check(
            "rollout.limit_images",
            FAIL,
            f"unset (vLLM's default limit applies); the data has up to {max_images} images per prompt",
            f"set actor_rollout_ref.rollout.limit_images={max_images}",
        )
    if limit is not None and int(limit) < max_images:
        return Check(
            "rollout.limit_images",
            FAIL,
            f"{limit} < {max_images}, the largest image count in the data",
            f"set actor_rollout_ref.rollout.limit_images={max_images}",
        )
    return Check("rollout.limit_images", PASS, f"{limit} >= {max_images}, the largest image count in the data")
