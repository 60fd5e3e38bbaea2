"""Prompt lengths, measured without the image processor, and their cache.

A length is what the AgentLoop (RL: prompt + generation prompt) or the SFT dataset (the whole
conversation) will tokenize: the chat template rendered with one image token per image, the text
tokenized in batches, and each image token then counted as the tokens of the image's fitted size
(`PixelBudget.fitted_sizes`, the arithmetic of the resize the images get at run time). Lengths are
cached per file, keyed by the file's fingerprint and every setting a length depends on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from star_verl.data.rows import check_row, problem_report, row_where
from star_verl.data.settings import DatasetError, StarDataSettings, sha256_json, sha256_text
from star_verl.pixels import image_tokens, merge_factor, processor_pixel_range

# Bump when the length arithmetic or the validation changes: old cache files then miss.
CACHE_FORMAT = 1
CACHE_SUBDIR = ".star_verl_cache"
# The file fingerprint hashes this many bytes at each end (the parquet footer holds every column
# chunk's offsets and statistics) together with the size and the modification time.
FINGERPRINT_BYTES = 1 << 20


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
            "processor": None
            if self.processor is None
            else {
                "class": type(self.processor).__name__,
                "image_processor": type(ip).__name__ if ip is not None else None,
                "patch_size": self.image_patch_size,
                "pixel_range": processor_pixel_range(self.processor),
                "image_token": getattr(self.processor, "image_token", None),
                "chat_template": sha256_text(getattr(self.processor, "chat_template", None) or ""),
            },
            "tokenizer": tokenizer_fingerprint(tok),
            "chat_template_kwargs": sha256_json(dict(self.chat_template_kwargs)),
        }


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's identity by content (its serialized model and chat template), so a checkpoint
    copied elsewhere (an SFT output) still hits the cache."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return {"class": type(tokenizer).__name__, "size": len(tokenizer), "sha256": sha256_text(body + (tokenizer.chat_template or ""))}


def _render_lengths(
    ctx: MeasureContext, conversations: list[list[dict[str, Any]]], image_sizes: list[list[tuple[int, int]]], wheres: list[str]
) -> list[int]:
    """Token lengths as the AgentLoop / SFT dataset will see them, without the image processor: the
    chat template is rendered with one image token per image, the text tokenized in one batch, and
    each image token then counts as the `image_tokens` of its fitted size (the processor's expansion)."""
    from verl.utils.tokenizer.chat_template import apply_chat_template

    texts = []
    for messages in conversations:
        rendered = apply_chat_template(
            ctx.renderer, messages, tokenize=False, add_generation_prompt=ctx.kind == "rl", **dict(ctx.chat_template_kwargs)
        )
        texts.append(rendered)
    tok = getattr(ctx.processor, "tokenizer", None) or ctx.tokenizer
    ids = tok(texts)["input_ids"]
    image_token = getattr(ctx.processor, "image_token", None)
    lengths = []
    proc_range = processor_pixel_range(ctx.processor)
    factor = merge_factor(ctx.image_patch_size)
    budget = ctx.settings.budget
    for text, row_ids, sizes, where in zip(texts, ids, image_sizes, wheres, strict=True):
        n = len(row_ids)
        if sizes:
            if image_token is None:
                raise DatasetError(f"{where}: the row has images but the model has no multimodal processor")
            rendered_images = text.count(image_token)
            if rendered_images != len(sizes):
                raise DatasetError(f"{where}: the chat template rendered {rendered_images} image tokens for {len(sizes)} images")
            n += sum(image_tokens(w, h, factor) - 1 for w, h in budget.fitted_sizes(sizes, ctx.image_patch_size, proc_range))
        lengths.append(n)
    return lengths


def measure_rows(ctx: MeasureContext, rows: Iterable[Mapping[str, Any]], file: str | os.PathLike, batch_size: int = 512) -> np.ndarray:
    """Validate every row of a file and return its prompt lengths (int64). Problems are collected
    over the whole file and raised together, each naming the file, row and problem."""
    problems: list[str] = []
    checked: list[tuple[list[dict[str, Any]], list[tuple[int, int]], str]] = []
    has_processor = ctx.processor is not None
    for row_number, row in enumerate(rows):
        where = row_where(file, row_number, row.get("extra_info"))
        try:
            checked.append(
                (*check_row(ctx.kind, row, where, ctx.settings, text_key=ctx.prompt_key, image_key=ctx.image_key, has_processor=has_processor), where)
            )
        except DatasetError as exc:
            problems.append(str(exc))
    if problems:
        raise DatasetError(problem_report(f"{os.fspath(file)}: {len(problems)} bad row(s)", problems))
    lengths: list[int] = []
    for start in range(0, len(checked), batch_size):
        conversations, sizes, wheres = zip(*checked[start : start + batch_size], strict=True)
        lengths.extend(_render_lengths(ctx, list(conversations), list(sizes), list(wheres)))
    return np.asarray(lengths, dtype=np.int64)


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
    return folder / f"{file.name}.{sha256_json(key)[:16]}.lengths.json"


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
