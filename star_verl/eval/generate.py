"""`star-verl eval generate`: run a model on a star-verl parquet and write a generations file for
`eval score`.

The prompt is built exactly as training builds it: the raw question of the row, rendered by the
same `star_verl.templates` object (`--template auto` = the data source's default), `<image>`
placeholders replaced by the row's images in order (as veRL's `RLHFDataset._build_messages` does),
and each image resized with `star_verl.pixels` to the recipe's pixel budget (per-image cap,
lowered so a multi-view sample stays within `total_max_pixels`). The template, the pixel budget,
the decoding length and the validation decoding (`rollout.val_kwargs`) default to the recipe the
data source trains with (`star_r1_tvr` for TVR, `star_r1_mv` otherwise) or to `--recipe`; flags
override them. Every output line records the settings it was generated with (`generation`).

Backends: vLLM when it is installed (offline `LLM.generate`, batched); otherwise transformers'
`generate`, one row at a time (slow: small models and tests).
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from star_verl.pixels import per_image_max_pixels, resize_to_budget
from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE, IMAGE_PLACEHOLDER, PromptTemplate, get_template

DEFAULT_RECIPE_FOR_SOURCE = {"tvr": "star_r1_tvr", "mindcube": "star_r1_mv", "spar": "star_r1_mv", "mmsi": "star_r1_mv"}
DEFAULT_MIN_PIXELS = 3136  # 4 x 28 x 28, Qwen2.5-VL's floor


@dataclass
class GenerationSettings:
    """What one output line was generated with (stored in the line's `generation`)."""

    model: str
    backend: str
    template: str  # the template's name, or "auto" resolved per row (the line stores the resolved one)
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 2048
    seed: int = 0
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int | None = None
    total_max_pixels: int | None = None
    recipe: str | None = None


@functools.lru_cache(maxsize=None)
def recipe_defaults(name: str) -> dict[str, Any]:
    """The evaluation-relevant values of a shipped recipe, as veRL composes it (inherited recipes and
    veRL's defaults included): `data.star` (template, pixel budget), `data.max_response_length`,
    and `actor_rollout_ref.rollout.val_kwargs` (the validation decoding: temperature, top_p, n)."""
    from omegaconf import OmegaConf

    from star_verl.recipes import compose_recipe

    cfg = compose_recipe(name)
    star = OmegaConf.to_container(OmegaConf.select(cfg, "data.star") or {}, resolve=False)
    val = OmegaConf.to_container(OmegaConf.select(cfg, "actor_rollout_ref.rollout.val_kwargs") or {}, resolve=False)
    out: dict[str, Any] = {"recipe": name}
    for key in ("template", "min_pixels", "max_pixels", "total_max_pixels"):
        if key in star:
            out[key] = star[key]
    length = OmegaConf.select(cfg, "data.max_response_length")  # SFT recipes have none
    if isinstance(length, int):
        out["max_new_tokens"] = length
    for key in ("temperature", "top_p", "n"):
        if isinstance(val.get(key), (int, float)):
            out[key] = val[key]
    if val.get("do_sample") is False:
        out["temperature"] = 0.0
    return out


# ------------------------------------------------------------------------------------------- rows


_COLUMNS = ("data_source", "prompt", "images", "reward_model", "extra_info")


def open_rows(parquet: str | Path, limit: int | None = None, batch_size: int = 64) -> tuple[int, set[str], int, Iterator[list[dict[str, Any]]]]:
    """(rows, data sources, most images in a row, batches of rows) of a star-verl RL parquet; the rows
    are streamed batch by batch, so a benchmark with thousands of images is never all in memory."""
    import pyarrow.parquet as pq

    path = Path(parquet)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parquet file")
    file = pq.ParquetFile(path)
    missing = [c for c in _COLUMNS if c not in file.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: not a star-verl RL parquet, missing column(s) {missing} (has {file.schema_arrow.names})")
    head = file.read(columns=["data_source", "extra_info"]).slice(0, limit).to_pylist()
    sources = {r["data_source"] for r in head}
    max_images = max((int((r["extra_info"] or {}).get("n_images") or 0) for r in head), default=0)

    def batches() -> Iterator[list[dict[str, Any]]]:
        left = len(head)
        for batch in file.iter_batches(batch_size=max(1, batch_size), columns=list(_COLUMNS)):
            rows = batch.to_pylist()[:left]
            left -= len(rows)
            if rows:
                yield rows
            if left <= 0:
                return

    return len(head), sources, max_images, batches()


def row_question(row: Mapping[str, Any], where: str) -> str:
    prompt = row["prompt"]
    users = [m["content"] for m in prompt if m.get("role") == "user"] if isinstance(prompt, list) else []
    if len(users) != 1:
        raise ValueError(f"{where}: prompt must hold exactly one user message, got {prompt!r:.200}")
    return users[0]


def load_image(entry: Any, where: str):
    """A row's image entry ({"bytes"}, {"image": path}, {"path"}) as a PIL image."""
    from PIL import Image

    if isinstance(entry, Mapping):
        if entry.get("bytes"):
            return Image.open(io.BytesIO(entry["bytes"]))
        for key in ("image", "path"):
            if entry.get(key):
                return Image.open(entry[key])
    raise ValueError(f"{where}: image entry has neither bytes nor a path: {str(entry)[:120]}")


def prepare_row(row: Mapping[str, Any], where: str, template: PromptTemplate, settings: GenerationSettings) -> tuple[list[dict[str, Any]], list[Any]]:
    """(chat messages with image parts, resized PIL images) for one row."""
    question = row_question(row, where)
    images = [load_image(e, f"{where} image {i}") for i, e in enumerate(row.get("images") or [])]
    if question.count(IMAGE_PLACEHOLDER) != len(images):
        raise ValueError(f"{where}: {question.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} placeholders but {len(images)} images")
    if settings.max_pixels is not None:  # None: the processor's own budget
        cap = per_image_max_pixels(len(images), settings.max_pixels, settings.total_max_pixels)
        images = [resize_to_budget(im, min_pixels=settings.min_pixels, max_pixels=cap) for im in images]
    messages: list[dict[str, Any]] = []
    for message in template.messages(question):
        parts: list[dict[str, Any]] = []
        pieces = message["content"].split(IMAGE_PLACEHOLDER)
        for i, piece in enumerate(pieces):
            if piece:
                parts.append({"type": "text", "text": piece})
            if i < len(pieces) - 1:
                parts.append({"type": "image"})
        messages.append({"role": message["role"], "content": parts})
    return messages, images


def sample_id(row: Mapping[str, Any], row_no: int) -> str:
    info = row.get("extra_info") or {}
    key = info.get("question_id") or info.get("index", row_no)
    return f"{info.get('origin') or row.get('data_source')}/{info.get('split', '')}/{key}"


# -------------------------------------------------------------------------------------- backends


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, max_images: int, seed: int):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(model)
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).eval()
        if torch.cuda.is_available():
            self.model = self.model.to("cuda")
        torch.manual_seed(seed)

    def generate(self, batch: list[tuple[list[dict[str, Any]], list[Any]]], s: GenerationSettings) -> list[list[str]]:
        outputs = []
        for messages, images in batch:
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            inputs = self.processor(text=[text], images=images or None, return_tensors="pt").to(self.model.device)
            sample = s.temperature > 0
            kwargs = {"do_sample": sample, "max_new_tokens": s.max_new_tokens, "num_return_sequences": s.n}
            if sample:
                kwargs.update(temperature=s.temperature, top_p=s.top_p)
            else:  # greedy: unset the checkpoint's sampling defaults so transformers does not warn
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with self.torch.no_grad():
                ids = self.model.generate(**inputs, **kwargs)
            new = ids[:, inputs["input_ids"].shape[1] :]
            outputs.append(self.processor.batch_decode(new, skip_special_tokens=True))
        return outputs


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, max_images: int, seed: int):
        from transformers import AutoProcessor
        from vllm import LLM

        self.processor = AutoProcessor.from_pretrained(model)
        self.llm = LLM(model=model, limit_mm_per_prompt={"image": max(1, max_images)}, seed=seed)

    def generate(self, batch: list[tuple[list[dict[str, Any]], list[Any]]], s: GenerationSettings) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p if s.temperature > 0 else 1.0, max_tokens=s.max_new_tokens, seed=s.seed)
        prompts = []
        for messages, images in batch:
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompts.append({"prompt": text, "multi_modal_data": {"image": images}} if images else {"prompt": text})
        results = self.llm.generate(prompts, params, use_tqdm=False)
        return [[o.text for o in r.outputs] for r in results]


# ------------------------------------------------------------------------------------------- main


def _settings_for(source: str, recipe: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Recipe defaults for the row's data source (or --recipe), then the explicit flags."""
    values = dict(recipe_defaults(recipe or DEFAULT_RECIPE_FOR_SOURCE[source]))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def generate(model: str, data: str | Path, out: str | Path, *, template: str = "auto", recipe: str | None = None, n: int | None = None,
             temperature: float | None = None, top_p: float | None = None, max_new_tokens: int | None = None, min_pixels: int | None = None,
             max_pixels: int | None = None, total_max_pixels: int | None = None, limit: int | None = None, batch_size: int = 64,
             backend: str = "auto", seed: int = 0, overwrite: bool = False, progress: bool = True) -> int:  # fmt: skip
    """Generate for every row of `data` (or the first `limit`); write `out` (JSON lines). Returns the lines written."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    n_rows, sources, max_images, batches = open_rows(data, limit, batch_size)
    if not n_rows:
        raise ValueError(f"{data}: no rows")
    if backend == "auto":
        backend = "vllm" if vllm_available() else "transformers"
    overrides = {"template": None if template == "auto" else template, "n": n, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                 "min_pixels": min_pixels, "max_pixels": max_pixels, "total_max_pixels": total_max_pixels}  # fmt: skip
    per_source: dict[str, GenerationSettings] = {}
    for source in sorted(sources):
        if source not in DEFAULT_RECIPE_FOR_SOURCE:
            raise ValueError(f"{data}: unknown data_source {source!r}")
        values = _settings_for(source, recipe, overrides)
        name = values.get("template") or "auto"
        name = DEFAULT_TEMPLATE_FOR_SOURCE[source] if name == "auto" else name
        get_template(name)  # fails early on an unknown name
        per_source[source] = GenerationSettings(
            model=str(model), backend=backend, template=name, n=int(values.get("n", 1)), temperature=float(values.get("temperature", 0.0)),
            top_p=float(values.get("top_p", 1.0)), max_new_tokens=int(values.get("max_new_tokens", 2048)), seed=seed,
            min_pixels=int(values.get("min_pixels") or DEFAULT_MIN_PIXELS), max_pixels=values.get("max_pixels"),
            total_max_pixels=values.get("total_max_pixels"), recipe=values.get("recipe"),
        )  # fmt: skip
        if per_source[source].n > 1 and per_source[source].temperature == 0:
            print(f"warning: {source}: n={per_source[source].n} samples with temperature 0 are identical (greedy)", file=sys.stderr)
    engine = (VLLMBackend if backend == "vllm" else TransformersBackend)(str(model), max_images, seed)
    written = row_no = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=n_rows, desc="generate", unit="row", disable=not progress)
    with open(out, "w", encoding="utf-8") as fh:
        for rows in batches:
            by_source: dict[str, list[tuple[int, dict[str, Any]]]] = {}
            for row in rows:
                by_source.setdefault(row["data_source"], []).append((row_no, row))
                row_no += 1
            for source, items in by_source.items():
                settings = per_source[source]
                template_obj = get_template(settings.template)
                prepared = [prepare_row(row, f"{data} row {i}", template_obj, settings) for i, row in items]
                responses = engine.generate(prepared, settings)
                for (i, row), outs in zip(items, responses, strict=True):
                    for k, text in enumerate(outs):
                        fh.write(json.dumps(_line(row, i, k, text, settings), ensure_ascii=False) + "\n")
                        written += 1
                fh.flush()
            bar.update(len(rows))
    bar.close()
    return written


def _line(row: Mapping[str, Any], row_no: int, k: int, text: str, settings: GenerationSettings) -> dict[str, Any]:
    sid = sample_id(row, row_no)
    return {
        "id": f"{sid}#{k}" if settings.n > 1 else sid,
        "data_source": row["data_source"],
        "response": text,
        "ground_truth": row["reward_model"]["ground_truth"],
        "extra_info": row.get("extra_info") or {},
        "generation": {**asdict(settings), "sample_index": k},
    }
