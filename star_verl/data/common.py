"""What the RL and SFT dataset classes share: the `data.star` settings, the one function that turns a
raw question into the model's messages, the pixel budget, row validation, and the prompt-length cache.

The RL prompt and the SFT prompt of a question are built by the same call (`template_messages`), so
SFT, RL and evaluation see byte-identical text. Images are resized to the budget in one place
(`budget_images`): the RL AgentLoop calls it through `StarRLDataset.process_multi_modal_info`, the SFT
dataset in `__getitem__`, and the prompt lengths are computed with the same arithmetic (`fitted_sizes`)
without running the image processor.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from star_verl.pixels import fit_size, image_tokens, per_image_max_pixels, resize_to_budget
from star_verl.rewards import GroundTruthError, sample_name, validate_ground_truth
from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE, IMAGE_PLACEHOLDER, TEMPLATES, PromptTemplate, get_template

# Bump when the length arithmetic or the validation changes: old cache files then miss.
CACHE_FORMAT = 1
CACHE_SUBDIR = ".star_verl_cache"
# The file fingerprint hashes this many bytes at each end (the parquet footer holds every column
# chunk's offsets and statistics) together with the size and the modification time.
FINGERPRINT_BYTES = 1 << 20
SPATIAL_MERGE_SIZE = 2  # Qwen2-VL / 2.5-VL / 3-VL merge 2x2 patches into one token
MAX_LISTED_PROBLEMS = 20
_SEGMENTS = re.compile(f"({re.escape(IMAGE_PLACEHOLDER)})")


class DatasetError(ValueError):
    """Bad input data or settings, with the file, row and problem named."""


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class StarDataSettings:
    """`data.star` of a recipe. Defaults are Qwen2.5-VL's processor defaults (no budget)."""

    template: str = "auto"  # a name in star_verl.templates.TEMPLATES, or auto (per data_source)
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 16384 * 28 * 28
    total_max_pixels: int | None = None  # per sample, over all its images
    drop_overlong: bool = False
    cache_dir: str | None = None

    @classmethod
    def from_config(cls, data_config: Mapping[str, Any] | None) -> StarDataSettings:
        star = (data_config or {}).get("star") or {}
        if hasattr(star, "items") and not isinstance(star, dict):
            from omegaconf import OmegaConf

            star = OmegaConf.to_container(star, resolve=True)
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(star) - fields)
        if unknown:
            raise DatasetError(f"unknown data.star key(s) {unknown}; valid: {sorted(fields)}")
        values = {k: v for k, v in star.items() if v is not None or k in ("total_max_pixels", "cache_dir")}
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.template != "auto" and self.template not in TEMPLATES:
            raise DatasetError(f"data.star.template={self.template!r}: expected 'auto' or one of {sorted(TEMPLATES)}")
        for key in ("min_pixels", "max_pixels"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) <= 0:
                raise DatasetError(f"data.star.{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.min_pixels > self.max_pixels:
            raise DatasetError(f"data.star.min_pixels={self.min_pixels} > data.star.max_pixels={self.max_pixels}")
        if not isinstance(self.drop_overlong, bool):
            raise DatasetError(f"data.star.drop_overlong must be true or false, got {self.drop_overlong!r}")
        if self.total_max_pixels is not None and (not isinstance(self.total_max_pixels, int) or self.total_max_pixels < self.min_pixels):
            raise DatasetError(f"data.star.total_max_pixels must be null or an integer >= min_pixels, got {self.total_max_pixels!r}")

    def template_for(self, data_source: str) -> PromptTemplate:
        if self.template != "auto":
            return get_template(self.template)
        if data_source not in DEFAULT_TEMPLATE_FOR_SOURCE:
            raise DatasetError(f"data.star.template=auto has no template for data_source {data_source!r} (known: {sorted(DEFAULT_TEMPLATE_FOR_SOURCE)})")
        return get_template(DEFAULT_TEMPLATE_FOR_SOURCE[data_source])

    def image_pixel_range(self, n_images: int) -> tuple[int, int]:
        """(min_pixels, max_pixels) of each image of a sample with `n_images` images."""
        cap = per_image_max_pixels(n_images, self.max_pixels, self.total_max_pixels)
        if cap < self.min_pixels:
            raise DatasetError(
                f"data.star.total_max_pixels={self.total_max_pixels} over {n_images} images leaves {cap} pixels per image, "
                f"below data.star.min_pixels={self.min_pixels}"
            )
        return self.min_pixels, cap

    def template_fingerprint(self) -> dict[str, Any]:
        names = sorted(set(DEFAULT_TEMPLATE_FOR_SOURCE.values())) if self.template == "auto" else [self.template]
        texts = {name: asdict(TEMPLATES[name]) for name in names}
        mapping = DEFAULT_TEMPLATE_FOR_SOURCE if self.template == "auto" else None
        return {"template": self.template, "sha256": _sha256_json({"texts": texts, "mapping": mapping})}


# ---------------------------------------------------------------------------------------------
# messages


def template_messages(question: str, data_source: str, settings: StarDataSettings) -> list[dict[str, str]]:
    """The [system, user] messages of a raw question (string contents, `<image>` placeholders in
    order): the prompt RL, SFT and evaluation all give the model."""
    return settings.template_for(data_source).messages(question)


def expand_placeholders(content: str, image_items: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A string content as the processor's content list: text items, and for the k-th `<image>` the
    k-th of `image_items` (or a bare `{"type": "image"}` when None: enough to render the template)."""
    items: list[dict[str, Any]] = []
    k = 0
    for segment in _SEGMENTS.split(content):
        if segment == IMAGE_PLACEHOLDER:
            items.append({"type": "image"} if image_items is None else image_items[k])
            k += 1
        elif segment:
            items.append({"type": "text", "text": segment})
    return items


def image_item(entry: Any) -> dict[str, Any]:
    """A row's image entry as a content item, left undecoded (`process_multi_modal_info` decodes it
    at the budget): `{"type": "image", "bytes": ..., "path": ...}` for the schema's entries."""
    if isinstance(entry, Mapping):
        return {"type": "image", **entry}
    return {"type": "image", "image": os.fspath(entry) if isinstance(entry, os.PathLike) else entry}


def raw_question(prompt: Any, where: str) -> str:
    """The raw question of an RL row's `prompt` (exactly one user message: rows are never templated)."""
    messages = list(prompt) if prompt is not None else []
    if len(messages) != 1 or not isinstance(messages[0], Mapping) or messages[0].get("role") != "user" or not isinstance(messages[0].get("content"), str):
        roles = [m.get("role") if isinstance(m, Mapping) else type(m).__name__ for m in messages]
        raise DatasetError(f"{where}: prompt must be one user message with the raw question (the template is applied at load time), got roles {roles}")
    return messages[0]["content"]


def raw_conversation(messages: Any, where: str) -> tuple[str, str]:
    """(question, response) of an SFT row's `messages`: [user, assistant]."""
    messages = list(messages) if messages is not None else []
    roles = [m.get("role") if isinstance(m, Mapping) else type(m).__name__ for m in messages]
    if roles != ["user", "assistant"] or not all(isinstance(m.get("content"), str) for m in messages):
        raise DatasetError(f"{where}: messages must be [user (raw question), assistant (response)] with string contents, got roles {roles}")
    if not messages[1]["content"].strip():
        raise DatasetError(f"{where}: the assistant response is empty")
    return messages[0]["content"], messages[1]["content"]


# ---------------------------------------------------------------------------------------------
# images


def open_image(entry: Any) -> Image.Image:
    """A row's image entry (`{"bytes", "path"}`, `{"image": PIL or path}`, PIL, or a path) as a PIL image."""
    if isinstance(entry, Image.Image):
        return entry
    if isinstance(entry, Mapping):
        if entry.get("image") is not None:
            return open_image(entry["image"])
        if entry.get("bytes"):
            return Image.open(BytesIO(entry["bytes"]))
        if entry.get("path"):
            return Image.open(entry["path"])
        raise DatasetError(f"image entry has neither bytes nor a path: keys {sorted(entry)}")
    if isinstance(entry, (str, os.PathLike)):
        path = os.fspath(entry)
        return Image.open(path[7:] if path.startswith("file://") else path)
    raise DatasetError(f"unsupported image entry of type {type(entry).__name__}")


def merge_factor(image_patch_size: int) -> int:
    """Pixels per side of one image token: the patch size times the 2x2 spatial merge."""
    return int(image_patch_size) * SPATIAL_MERGE_SIZE


def budget_images(entries: Sequence[Any], settings: StarDataSettings, image_patch_size: int) -> list[Image.Image]:
    """The sample's images decoded, in RGB, resized to the budget (per image, and the per-sample total
    split evenly): what the processor receives, and what `fitted_sizes` predicts."""
    if not entries:
        return []
    low, high = settings.image_pixel_range(len(entries))
    factor = merge_factor(image_patch_size)
    return [resize_to_budget(open_image(e), min_pixels=low, max_pixels=high, factor=factor) for e in entries]


def processor_pixel_range(processor: Any) -> tuple[int, int] | None:
    """(min_pixels, max_pixels) the image processor itself resizes to, or None without one."""
    ip = getattr(processor, "image_processor", None)
    if ip is None:
        return None
    size = getattr(ip, "size", None) or {}
    low = size.get("shortest_edge") if hasattr(size, "get") else None
    high = size.get("longest_edge") if hasattr(size, "get") else None
    low = low if low is not None else getattr(ip, "min_pixels", None)
    high = high if high is not None else getattr(ip, "max_pixels", None)
    if low is None or high is None:
        raise DatasetError(f"cannot read the pixel range of image processor {type(ip).__name__} (size={size!r})")
    return int(low), int(high)


def fitted_sizes(sizes: Sequence[tuple[int, int]], settings: StarDataSettings, image_patch_size: int, processor_range: tuple[int, int] | None) -> list[tuple[int, int]]:
    """The (width, height) each image reaches the model at: the budget's fit, then the processor's
    own fit of that (a no-op whenever the budget lies inside the processor's range)."""
    low, high = settings.image_pixel_range(len(sizes))
    factor = merge_factor(image_patch_size)
    out = []
    for w, h in sizes:
        w, h = fit_size(w, h, min_pixels=low, max_pixels=high, factor=factor)
        if processor_range is not None:
            w, h = fit_size(w, h, min_pixels=processor_range[0], max_pixels=processor_range[1], factor=factor)
        out.append((w, h))
    return out


# ---------------------------------------------------------------------------------------------
# row validation and prompt lengths


@dataclass(frozen=True)
class MeasureContext:
    """Everything a prompt length depends on besides the row: also the cache key."""

    kind: str  # "rl" (prompt + generation prompt) or "sft" (the whole conversation)
    settings: StarDataSettings
    tokenizer: Any
    processor: Any
    prompt_key: str
    image_key: str
    chat_template_kwargs: Mapping[str, Any]
    image_patch_size: int  # the one the images are resized with at run time

    @property
    def renderer(self):
        return self.processor if self.processor is not None else self.tokenizer

    def key(self) -> dict[str, Any]:
        tok = getattr(self.processor, "tokenizer", None) or self.tokenizer
        ip = getattr(self.processor, "image_processor", None)
        return {
            "format": CACHE_FORMAT,
            "kind": self.kind,
            "prompt_key": self.prompt_key,
            "image_key": self.image_key,
            "template": self.settings.template_fingerprint(),
            "pixels": [self.settings.min_pixels, self.settings.max_pixels, self.settings.total_max_pixels],
            "processor": None if self.processor is None else {
                "class": type(self.processor).__name__,
                "image_processor": type(ip).__name__ if ip is not None else None,
                "patch_size": self.image_patch_size,
                "pixel_range": processor_pixel_range(self.processor),
                "image_token": getattr(self.processor, "image_token", None),
                "chat_template": _sha256_text(getattr(self.processor, "chat_template", None) or ""),
            },
            "tokenizer": tokenizer_fingerprint(tok),
            "chat_template_kwargs": _sha256_json(dict(self.chat_template_kwargs)),
        }


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's identity by content (its serialised model and chat template), so a checkpoint
    copied elsewhere (an SFT output) still hits the cache."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return {"class": type(tokenizer).__name__, "size": len(tokenizer), "sha256": _sha256_text(body + (tokenizer.chat_template or ""))}


def row_where(file: str | os.PathLike, row: int, extra_info: Any = None) -> str:
    where = f"{os.fspath(file)} row {row}"
    if isinstance(extra_info, Mapping) and extra_info.get("question_id") not in (None, ""):
        where += f" (question_id {extra_info['question_id']!r})"
    return where


def _decode_sizes(entries: Sequence[Any], where: str) -> list[tuple[int, int]]:
    sizes = []
    for k, entry in enumerate(entries):
        try:
            image = open_image(entry)
            image.load()  # decode every pixel: a truncated file fails here, not in a rollout
        except Exception as exc:  # noqa: BLE001 - any decoder error is the same data bug
            raise DatasetError(f"{where}: image {k} does not decode ({type(exc).__name__}: {exc})") from None
        sizes.append(image.size)
    return sizes


def _render_lengths(ctx: MeasureContext, conversations: list[list[dict[str, Any]]], image_sizes: list[list[tuple[int, int]]], wheres: list[str]) -> list[int]:
    """Token lengths as the AgentLoop / SFT dataset will see them, without the image processor: the
    chat template is rendered with one image token per image, the text tokenised in one batch, and
    each image token then counts as the `image_tokens` of its fitted size (the processor's expansion)."""
    from verl.utils.tokenizer.chat_template import apply_chat_template

    texts = []
    for messages, where in zip(conversations, wheres, strict=True):
        rendered = apply_chat_template(ctx.renderer, messages, tokenize=False, add_generation_prompt=ctx.kind == "rl", **dict(ctx.chat_template_kwargs))
        texts.append(rendered)
    tok = getattr(ctx.processor, "tokenizer", None) or ctx.tokenizer
    ids = tok(texts)["input_ids"]
    image_token = getattr(ctx.processor, "image_token", None)
    lengths = []
    proc_range = processor_pixel_range(ctx.processor)
    factor = merge_factor(ctx.image_patch_size)
    for text, row_ids, sizes, where in zip(texts, ids, image_sizes, wheres, strict=True):
        n = len(row_ids)
        if sizes:
            if image_token is None:
                raise DatasetError(f"{where}: the row has images but the model has no multimodal processor")
            rendered_images = text.count(image_token)
            if rendered_images != len(sizes):
                raise DatasetError(f"{where}: the chat template rendered {rendered_images} image tokens for {len(sizes)} images")
            n += sum(image_tokens(w, h, factor) - 1 for w, h in fitted_sizes(sizes, ctx.settings, ctx.image_patch_size, proc_range))
        lengths.append(n)
    return lengths


def measure_rows(ctx: MeasureContext, rows: Iterable[Mapping[str, Any]], file: str | os.PathLike, batch_size: int = 512) -> np.ndarray:
    """Validate every row of a file and return its prompt lengths (int64). Problems are collected
    over the whole file and raised together, each naming the file, row and problem."""
    problems: list[str] = []
    checked: list[tuple[list[dict[str, Any]], list[tuple[int, int]], str]] = []
    for row_number, row in enumerate(rows):
        where = row_where(file, row_number, row.get("extra_info"))
        try:
            checked.append((*_check_row(ctx, row, where), where))
        except DatasetError as exc:
            problems.append(str(exc))
    if problems:
        raise DatasetError(_problem_report(f"{os.fspath(file)}: {len(problems)} bad row(s)", problems))
    lengths: list[int] = []
    for start in range(0, len(checked), batch_size):
        conversations, sizes, wheres = zip(*checked[start : start + batch_size], strict=True)
        lengths.extend(_render_lengths(ctx, list(conversations), list(sizes), list(wheres)))
    return np.asarray(lengths, dtype=np.int64)


def _check_row(ctx: MeasureContext, row: Mapping[str, Any], where: str) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    data_source = row.get("data_source")
    reward_model = row.get("reward_model")
    if not isinstance(reward_model, Mapping) or "ground_truth" not in reward_model:
        raise DatasetError(f"{where}: reward_model must be a struct with a ground_truth, got {reward_model!r:.120}")
    try:
        validate_ground_truth(data_source, reward_model["ground_truth"], row.get("extra_info"))
    except GroundTruthError as exc:
        raise DatasetError(f"{where}: {str(exc).removeprefix(sample_name(row.get('extra_info')) + ': ')}") from None
    images = list(row.get(ctx.image_key) or [])
    if ctx.kind == "rl":
        question = raw_question(row.get(ctx.prompt_key), where)
        messages = template_messages(question, data_source, ctx.settings)
    else:
        question, response = raw_conversation(row.get(ctx.prompt_key), where)
        messages = template_messages(question, data_source, ctx.settings) + [{"role": "assistant", "content": response}]
    n_placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in messages)
    n_question = question.count(IMAGE_PLACEHOLDER)
    if n_placeholders != n_question:
        raise DatasetError(f"{where}: the template or response adds {IMAGE_PLACEHOLDER} placeholders ({n_placeholders} in all, {n_question} in the question)")
    if n_placeholders != len(images):
        raise DatasetError(f"{where}: {n_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but {len(images)} image(s)")
    if images and ctx.processor is None:
        raise DatasetError(f"{where}: the row has images but the model has no multimodal processor (verl.utils.hf_processor returned None)")
    sizes = _decode_sizes(images, where)
    if images:
        messages = [{"role": m["role"], "content": expand_placeholders(m["content"], None)} for m in messages]
    return messages, sizes


def _problem_report(headline: str, problems: Sequence[str]) -> str:
    shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
    more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
    return f"{headline}:\n  {shown}{more}"


# ---------------------------------------------------------------------------------------------
# the cache


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size, modification time and a hash of the first and last MiB: cheap at any file size, and any
    rewrite of a parquet file changes its footer (offsets, statistics) or its mtime."""
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if st.st_size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, st.st_size - FINGERPRINT_BYTES))
            digest.update(f.read())
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_head_tail": digest.hexdigest()}


def cache_path(file: str | os.PathLike, key: Mapping[str, Any], cache_dir: str | None) -> Path:
    file = Path(file)
    folder = Path(os.path.expanduser(cache_dir)) if cache_dir else file.parent / CACHE_SUBDIR
    return folder / f"{file.name}.{_sha256_json(key)[:16]}.lengths.json"


def cached_lengths(ctx: MeasureContext, file: str | os.PathLike, rows_factory, log=print) -> np.ndarray:
    """The file's prompt lengths: from the cache when its key matches (file fingerprint + every
    setting a length depends on), else measured (validating every row) and written to the cache."""
    key = {"file": file_fingerprint(file), **ctx.key()}
    path = cache_path(file, key, ctx.settings.cache_dir)
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = None
        if stored is not None and stored.get("key") == json.loads(json.dumps(key)):
            log(f"[star-verl] {os.fspath(file)}: {len(stored['lengths'])} prompt lengths from cache {path}")
            return np.asarray(stored["lengths"], dtype=np.int64)
    start = time.perf_counter()
    lengths = measure_rows(ctx, rows_factory(), file)
    elapsed = time.perf_counter() - start
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "lengths": lengths.tolist()}), encoding="utf-8")
        os.replace(tmp, path)
        where = f"cached at {path}"
    except OSError as exc:
        where = f"not cached ({exc}); set data.star.cache_dir to a writable folder"
    log(f"[star-verl] {os.fspath(file)}: validated and measured {len(lengths)} rows in {elapsed:.1f}s, {where}")
    return lengths


# ---------------------------------------------------------------------------------------------
# selection and the overlong rule


def select_samples(total: int, max_samples: int, shuffle: bool, seed: int | None) -> np.ndarray:
    """Row positions kept by `max_samples`, with veRL's rule (RLHFDataset / MultiTurnSFTDataset)."""
    if max_samples > 0 and max_samples < total:
        if shuffle:
            rng = np.random.default_rng(*((seed,) if seed is not None else ()))
            return rng.choice(total, size=max_samples, replace=False)
        return np.arange(max_samples)
    return np.arange(total)


def apply_length_limit(positions: np.ndarray, lengths: np.ndarray, describe: Callable[[int], str], limit: int, limit_name: str, drop: bool, owner: str, log=print) -> np.ndarray:
    """The positions whose length fits `limit`. An overlong row is an error listing every offender,
    unless `drop` (data.star.drop_overlong), which drops them and prints the count. An empty result
    is always an error."""
    over = [int(p) for p in positions if lengths[p] > limit]
    if over:
        offenders = [f"{describe(p)}: {int(lengths[p])} tokens > {limit_name}={limit}" for p in over]
        headline = f"{owner}: {len(over)} of {len(positions)} sample(s) exceed {limit_name}={limit} after the pixel budget"
        if not drop:
            raise DatasetError(_problem_report(headline + " (raise the limit, lower data.star.max_pixels / total_max_pixels, or set data.star.drop_overlong=true)", offenders))
        log(_problem_report(headline + "; dropped (data.star.drop_overlong=true)", offenders))
    kept = positions[lengths[positions] <= limit] if len(positions) else positions
    if len(kept) == 0:
        raise DatasetError(f"{owner}: no samples left ({len(positions)} selected, {len(over)} over {limit_name}={limit})")
    if not over:
        log(f"[star-verl] {owner}: {len(kept)} samples, all within {limit_name}={limit} (longest {int(lengths[kept].max())} tokens)")
    else:
        log(f"[star-verl] {owner}: dropped {len(over)} overlong sample(s), {len(kept)} left")
    return kept


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256_json(value: Any) -> str:
    return _sha256_text(json.dumps(value, sort_keys=True, default=str))


__all__ = [
    "DatasetError", "StarDataSettings", "template_messages", "expand_placeholders", "raw_question", "raw_conversation",
    "image_item", "open_image", "budget_images", "fitted_sizes", "processor_pixel_range", "MeasureContext", "measure_rows",
    "cached_lengths", "file_fingerprint", "cache_path", "select_samples", "apply_length_limit",
]
